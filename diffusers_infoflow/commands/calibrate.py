"""``infoflow calibrate``: measures a saved pipeline's mmse curve on a data batch and saves the information-placed
sampler next to it (``MODEL/scheduler_information``), which ``infoflow sample --scheduler trig-information`` and
``TrigAngleRKScheduler.from_pretrained(MODEL, subfolder="scheduler_information")`` load."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from . import DefaultsHelpFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="measure a saved pipeline's mmse curve and save its information-placed sampler",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("model", help="a saved pipeline folder (with model_index.json)")
    p.add_argument("--data", default=None, help="training images: a folder, .npy or .npz (default: MNIST train via "
                   "$INFOFLOW_MNIST or ../shared/data/mnist.npz)")
    p.add_argument("--key", default=None, help="array name inside an .npz (default: x_train where the archive has one, "
                   "else its only array)")
    p.add_argument("--num-images", type=int, default=128, help="images of the calibration batch")
    p.add_argument("--levels", type=int, default=32, help="noise levels of the curve (one batched model call each)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import write_card_information
    from ..metrics.data import load_image_set, load_mnist
    from ..sampling import INFORMATION_SUBFOLDER, calibrate_pipeline, training_levels

    start = time.perf_counter()
    try:
        if args.num_images < 2 or args.levels < 2:
            raise ValueError(f"--num-images and --levels must be >= 2, got {args.num_images} and {args.levels}.")
        if not (Path(args.model) / "model_index.json").is_file():
            raise ValueError(f"model {args.model!r} is not a saved pipeline folder (no model_index.json in it); calibrate "
                             f"writes {INFORMATION_SUBFOLDER}/ into the folder, so copy a shipped or Hub model to one first.")
        levels = training_levels(args.model)
        if args.levels > levels:  # a table has no levels in between to measure
            raise ValueError(f"--levels {args.levels} exceeds the model's {levels} training levels.")
        if args.data is None:
            images = load_mnist("train", args.num_images)
        else:
            images = load_image_set(args.data, key=args.key or _training_key(args.data))[: args.num_images]
            if len(images) < args.num_images:
                print(f"infoflow calibrate: {args.data} holds {len(images)} images, fewer than --num-images {args.num_images}; using them all")
        scheduler = calibrate_pipeline(args.model, images * 2 - 1, num_levels=args.levels, seed=args.seed)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise SystemExit(f"infoflow calibrate: {err}") from None
    curve = scheduler.config.information_curve
    print(f"measured the mmse curve at {len(curve['logsnr'])} levels on {len(images)} images "
          f"({args.levels} batched model calls, {time.perf_counter() - start:.0f} s); saved {args.model}/{INFORMATION_SUBFOLDER}")
    if (Path(args.model) / "README.md").is_file():
        parts = ["infoflow", "calibrate", str(args.model), "--num-images", str(args.num_images), "--levels", str(args.levels), "--seed", str(args.seed)]
        if args.data is not None:
            parts += ["--data", str(args.data)] + (["--key", args.key] if args.key else [])
        print(f"updated {write_card_information(args.model, INFORMATION_SUBFOLDER, len(images), shlex.join(parts))}")
    return 0


def _training_key(path: str):
    """`x_train` for an .npz archive that has one (MNIST-like), else None (the loader's own default)."""
    import numpy as np

    if str(path).endswith(".npz"):
        with np.load(path) as archive:
            return "x_train" if "x_train" in archive.files else None
    return None
