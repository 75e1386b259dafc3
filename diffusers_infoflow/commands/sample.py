"""``infoflow sample``: a grid of samples from a saved unconditional pipeline (default: the shipped MNIST DDPM),
with any scheduler of :data:`diffusers_infoflow.sampling.SCHEDULERS`. ``--model-calls`` counts model calls: multi-call
solvers get as many whole steps as fit, and the printed line says how many calls were made."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..sampling import DEFAULT_MODEL, DEFAULT_SCHEDULER, DEFAULT_STEPS, SCHEDULERS
from . import prepare_output


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="write a sample grid PNG from a saved diffusion pipeline")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="a saved pipeline folder, the name of a shipped one (mnist-ddpm, the default, or mnist-joint-trig), or a "
                        "Hub repository owner/name (downloaded to the Hugging Face cache).")
    p.add_argument(
        "--scheduler", choices=SCHEDULERS, default=DEFAULT_SCHEDULER,
        help="ddpm, ddim, entropy-hybrid; s2n / s2n-stochastic (S2NGeneralizedScheduler presets 'deterministic' / "
             "'stochastic'); trig-euler / trig-rk2 / trig-rk4 / trig-ddim / trig-multistep (TrigAngleRKScheduler's solvers); "
             "trig-information (the multistep solver on rungs placed by the model's mmse curve, saved by `infoflow calibrate`); "
             "diffusers' dpm++2m, unipc, euler, heun. Default: entropy-hybrid, the measured best for the default model.",
    )
    p.add_argument("--model-calls", "--steps", dest="model_calls", type=int, default=DEFAULT_STEPS,
                   help="number of model calls (rounded down to whole steps of multi-call solvers); --steps is its older name.")
    p.add_argument("--num-images", "--num_images", dest="num_images", type=int, default=16, help="tiles of the grid.")
    p.add_argument("--zoom", type=int, default=4,
                   help="draw each pixel as a zoom×zoom block (nearest neighbour), so 28-px digits are readable on a screen; "
                        "1 writes the samples' own pixels. Default: 4.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="samples.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..images import make_grid, to_model_range
    from ..sampling import budget_note, generate, resolve_model, training_levels

    if args.model_calls < 1 or args.num_images < 1 or args.zoom < 1:
        raise SystemExit(f"infoflow sample: --model-calls, --num-images and --zoom must be >= 1, "
                         f"got {args.model_calls}, {args.num_images} and {args.zoom}.")
    if Path(args.output).suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise SystemExit(f"infoflow sample: --output {args.output!r} must end in .png, .jpg or .webp.")
    try:
        args.model = resolve_model(args.model)
        levels = training_levels(args.model)
        note = budget_note(args.model_calls, levels, args.scheduler)
        if note:
            print(f"infoflow sample: {note}")
        prepare_output(args.output, "--output")  # before sampling, so no work is lost at the end
        images, steps, calls = generate(args.model, args.scheduler, args.model_calls, args.num_images, args.seed,
                                        batch_size=args.num_images, progress=True, max_steps=levels)
    except (ValueError, OSError) as err:  # OSError: a pipeline folder with missing or unreadable weights
        raise SystemExit(f"infoflow sample: {err}") from None
    grid = Image.fromarray(make_grid(to_model_range(images)))
    grid.resize((grid.width * args.zoom, grid.height * args.zoom), Image.Resampling.NEAREST).save(args.output)
    step_text = f"{steps} step{'s' if steps != 1 else ''}"
    note = "" if calls == args.model_calls else f" of {args.model_calls} requested"
    call_text = f"{calls} model call{'s' if calls != 1 else ''}"
    print(f"wrote {args.output} ({args.num_images} images, {args.scheduler}, {step_text} = {call_text}{note})")
    return 0
