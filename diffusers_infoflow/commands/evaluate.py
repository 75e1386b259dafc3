"""``infoflow evaluate``: FID / KID / IS / digit confidence of an image set (folder, .npy or .npz) or of samples
drawn from a saved pipeline folder, against a reference set (MNIST test by default); prints the scores and writes
them as JSON. Under ``accelerate launch`` the samples (or the image set) and the reference are split between the
processes and their features gathered into one score, e.g. a 50,000-sample FID on 8 GPUs::

    accelerate launch --multi_gpu --num_processes 8 -m diffusers_infoflow.cli evaluate MODEL_DIR --num-images 50000

and on CPUs ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 ...``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from ..metrics.fid import GENERATIVE_METRICS, REFERENCE_METRICS
from ..sampling import DEFAULT_SCHEDULER, DEFAULT_STEPS
from . import DefaultsHelpFormatter, prepare_output


# What each printed score is, in its unit (FID and KID are squared distances in the feature network's space).
SCORE_UNITS = {
    "fid": "Fréchet distance of {network} features (squared feature units; lower is better)",
    "kid_mean": "kernel inception distance, unbiased MMD² of {network} features (squared feature units; lower is better)",
    "kid_std": "its standard deviation over the random subsets",
    "kid_subset_size": "images per KID subset (1000, or fewer when there are fewer images)",
    "is_mean": "Inception score (exp of nats, 1 to the number of classes; higher is better)",
    "is_std": "its standard deviation over the splits",
    "confident_fraction": "share of images the MNIST classifier gives max-softmax > 0.9 (real test digits: 0.965)",
    "min_class_fraction": "share of the rarest predicted digit (0.1 if every digit is as common)",
    "class_fractions": "share of each predicted digit 0-9",
    "fid_floor": "FID of as many real MNIST training digits against the same reference: the best score at this N",
    "kid_mean_floor": "KID of the same real digits",
    "num_images": "images scored",
    "num_reference": "reference images",
}


PIPELINE_DEFAULTS = {"scheduler": DEFAULT_SCHEDULER, "model_calls": DEFAULT_STEPS, "num_images": 1000, "batch_size": 250}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="FID/KID/IS of generated images vs a reference set (offline MNIST feature network by default)",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("images", help="folder of images, .npy array or .npz archive of generated images, or a saved "
                        "pipeline folder (with model_index.json), shipped model name (mnist-ddpm, mnist-joint-trig) or Hub repository "
                        "(owner/name) to sample from")
    # the pipeline-only options default to None, so that one given with an image file is refused, not ignored
    parser.add_argument("--scheduler", default=None, help=f"for a pipeline folder: the `infoflow sample` scheduler name (default: {DEFAULT_SCHEDULER})")
    parser.add_argument("--model-calls", "--steps", dest="model_calls", type=int, default=None,
                        help=f"for a pipeline folder: model calls per sample (--steps is its older name; default: {DEFAULT_STEPS})")
    parser.add_argument("--num-images", type=int, default=None, help=f"for a pipeline folder: samples to draw (default: {PIPELINE_DEFAULTS['num_images']})")
    parser.add_argument("--batch-size", type=int, default=None, help="for a pipeline folder: samples per pipeline call "
                        "(batch b starts from the noise of seed + b·batch-size; under accelerate launch the batches are split "
                        f"between processes; default: {PIPELINE_DEFAULTS['batch_size']})")
    parser.add_argument("--update-card", action="store_true", help="for a pipeline folder: write the scores into its README.md model card")
    parser.add_argument("--key", default=None, help="array name inside an .npz images file")
    parser.add_argument("--input-range", type=float, nargs=2, default=None, metavar=("LO", "HI"), help="value range of float arrays (default 0 1; uint8 is always 0..255)")
    parser.add_argument("--reference", default=None, help="reference set (same formats); default: MNIST test via $INFOFLOW_MNIST or ../shared/data/mnist.npz")
    parser.add_argument("--reference-key", default=None, help="array name inside an .npz reference")
    parser.add_argument("--num-reference", type=int, default=None, help="use the first N reference images (default: 10000)")
    parser.add_argument("--feature-network", choices=["mnist", "inception"], default="mnist", help="feature network (inception needs its weights on disk)")
    parser.add_argument("--metrics", nargs="+", choices=list(GENERATIVE_METRICS), default=None,
                        help="default: all that the feature network supports. 'confident' (MNIST network only): the fraction "
                             "of images the classifier is confident on (max-softmax > 0.9) and the share of the rarest digit")
    parser.add_argument("--seed", type=int, default=0, help="seed of KID/IS subsets")
    parser.add_argument("--output", default="infoflow-evaluate.json", help="JSON file for the scores")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import write_card_evaluation
    from ..metrics.data import load_image_set, load_mnist
    from ..metrics.fid import GenerativeScorer, process_shard
    from ..sampling import (
        SCHEDULERS,
        budget_note,
        generate,
        is_hub_id,
        pipeline_sample_shape,
        process_state,
        resolve_model,
        shipped_model_names,
        training_levels,
    )

    start = time.perf_counter()
    sampling = {}
    try:
        state = process_state()
        prepare_output(args.output, "--output")  # before any work
        if args.update_card and not Path(args.images).exists() and (is_hub_id(args.images) or args.images in shipped_model_names()):
            # the folder would be the Hugging Face cache or the installed package, not the user's copy
            raise ValueError(f"--update-card writes the model card of a folder you name; {args.images!r} is a "
                             f"{'Hub repository' if is_hub_id(args.images) else 'shipped model'} (copy it to a folder, "
                             "e.g. with `hf download REPO --local-dir DIR`, and evaluate the folder).")
        source = resolve_model(args.images)  # a path; args.images stays as given for the report and the card's command
        is_pipeline = (Path(source) / "model_index.json").is_file()
        given = [f"--{name.replace('_', '-')}" for name in PIPELINE_DEFAULTS if getattr(args, name) is not None]
        if not is_pipeline and (given or args.update_card):
            flags = given + (["--update-card"] if args.update_card else [])
            raise ValueError(f"{', '.join(flags)} {'apply' if len(flags) > 1 else 'applies'} only to a pipeline "
                             f"folder (with model_index.json); {source!r} is an image set, scored whole.")
        if is_pipeline and (args.input_range is not None or args.key is not None):
            raise ValueError("--input-range and --key read image arrays; a pipeline folder's samples need neither.")
        for name, default in PIPELINE_DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, default)
        if args.update_card and not (Path(source) / "README.md").is_file():
            raise ValueError(f"--update-card: {source!r} has no README.md model card to update.")
        metrics = args.metrics or (GENERATIVE_METRICS if args.feature_network == "mnist" else ("fid", "kid", "is"))
        reference_flags = [flag for flag, value in (("--reference", args.reference), ("--reference-key", args.reference_key),
                                                    ("--num-reference", args.num_reference)) if value is not None]
        if reference_flags and not set(REFERENCE_METRICS) & set(metrics):
            raise ValueError(f"{', '.join(reference_flags)} {'apply' if len(reference_flags) > 1 else 'applies'} to FID and KID; --metrics {' '.join(metrics)} compare with no reference set.")
        if args.reference_key is not None and args.reference is None:
            raise ValueError("--reference-key picks an array of the --reference archive; the default reference, MNIST test, needs none.")
        if args.num_reference is None:
            args.num_reference = 10000
        if args.num_reference < 2:
            raise ValueError(f"--num-reference must be >= 2 (a covariance), got {args.num_reference}.")
        if is_pipeline and args.scheduler not in SCHEDULERS:
            raise ValueError(f"--scheduler {args.scheduler!r} is not one of {', '.join(SCHEDULERS)}.")
        if is_pipeline and (args.num_images < 2 or args.model_calls < 1 or args.batch_size < 1):
            raise ValueError(f"--num-images must be >= 2, --model-calls and --batch-size >= 1, got {args.num_images}, {args.model_calls} and {args.batch_size}.")
        levels = training_levels(source) if is_pipeline else None
        note = budget_note(args.model_calls, levels, args.scheduler) if is_pipeline else None
        if note:
            state.print(f"infoflow evaluate: {note}")
        reference, reference_name = None, None
        if set(REFERENCE_METRICS) & set(metrics):
            if args.reference is None:
                reference, reference_name = load_mnist("test", args.num_reference), "MNIST test"
            else:
                try:
                    reference = load_image_set(args.reference, key=args.reference_key)[: args.num_reference]
                except ValueError as err:
                    raise ValueError(f"--reference {args.reference!r}: {err}") from None
                reference_name = args.reference
        scorer = GenerativeScorer(reference, feature_network=args.feature_network, metrics=metrics, seed=args.seed,
                                  device=state.device)
        if is_pipeline:
            scorer.check_image_shape(pipeline_sample_shape(source))  # before sampling, not after
            images, steps, calls = generate(source, args.scheduler, args.model_calls, args.num_images, args.seed, args.batch_size,
                                            progress=state.is_main_process, max_steps=levels)
            sampling = {"scheduler": args.scheduler, "steps": steps, "model_calls": calls, "num_images": args.num_images}
            state.print(f"sampled {args.num_images} images on {state.num_processes} process(es): {args.scheduler}, {steps} steps = {calls} model calls")
        else:
            images = process_shard(load_image_set(source, key=args.key, value_range=args.input_range))
        scores = scorer.score(images)
        train = load_mnist("train", scores["num_images"]) if reference_name == "MNIST test" and set(REFERENCE_METRICS) & set(metrics) else None
        if train is not None and len(train) == scores["num_images"]:
            # as many real training digits against the same reference: the best score at this N (FID falls with N)
            real = scorer.score(process_shard(train))
            scores.update({f"{name}_floor": real[name] for name in ("fid", "kid_mean") if name in real})
    except (OSError, ValueError, RuntimeError) as err:  # OSError: missing files, unreadable images or weights
        # an image set's floats in another range: --input-range says which (it applies to `images`, not --reference)
        hint = " Pass --input-range LO HI." if "must lie in" in str(err) and not str(err).startswith("--reference") else ""
        raise SystemExit(f"infoflow evaluate: {err}{hint}") from None
    if not state.is_main_process:
        return 0
    report = {"images": str(args.images), **sampling, "reference": reference_name, "feature_network": args.feature_network,
              "num_processes": state.num_processes, **scores}
    for name, value in scores.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        unit = SCORE_UNITS.get(name, "").format(network=args.feature_network)
        print(f"{name:18s} {text:12s} {unit}".rstrip())
    if args.update_card:
        parts = ["infoflow", "evaluate", str(args.images), "--scheduler", args.scheduler, "--model-calls", str(args.model_calls),
                 "--num-images", str(args.num_images), "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--metrics", *metrics]
        if set(REFERENCE_METRICS) & set(metrics):
            if args.reference is not None:
                parts += ["--reference", str(args.reference)] + (["--reference-key", args.reference_key] if args.reference_key else [])
            parts += ["--num-reference", str(args.num_reference)]
        command = shlex.join(parts + ["--feature-network", args.feature_network, "--update-card"])
        card = write_card_evaluation(source, report, command)
        print(f"updated {card}: its evaluation section now holds this run ({args.num_images} images), replacing any earlier one")
    Path(args.output).write_text(json.dumps(report, indent=1))
    print(f"Wrote {args.output} in {time.perf_counter() - start:.1f} s")
    return 0
