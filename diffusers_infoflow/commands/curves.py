"""``infoflow curves``: MI, MSE, ED, cosine similarity and SSIM between x0 and x_t along the forward process
(seed 000 Figs 5–10) on MNIST-like data; writes ``curves.json`` and ``curves.png``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from . import DefaultsHelpFormatter, prepare_output


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "curves",
        help="forward-process metric curves (MI, MSE, ED, cosine, SSIM vs t) for several schedules (seed 000 Figs 5-10)",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--data", default=None, help="MNIST-like .npz (x_test used), .npy or image folder; default: MNIST via $INFOFLOW_MNIST or ../shared/data/mnist.npz")
    parser.add_argument("--key", default=None, help="array name inside an .npz --data")
    parser.add_argument("--num-images", type=int, default=64, help="images averaged per point (first N)")
    parser.add_argument("--schedules", nargs="+", default=["linear", "cosine", "quadratic", "sigmoid"], help="discrete schedule names")
    parser.add_argument("--num-train-timesteps", type=int, nargs="+", default=[300], help="T values (seed 000: 300 500 1000)")
    parser.add_argument("--num-points", type=int, default=20, help="timesteps per curve")
    parser.add_argument("--mi-bins", type=int, default=64, help="histogram bins per variable for the MI")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared noise")
    parser.add_argument("--output-dir", default="infoflow-curves", help="folder for curves.json and curves.png")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..metrics.curves import (
        forward_process_curves,
        plot_forward_process_curves,
        schedules_from_names,
    )
    from ..metrics.data import load_image_set, load_mnist

    if args.num_images < 1:
        raise SystemExit(f"infoflow curves: --num-images must be >= 1, got {args.num_images}.")
    start = time.perf_counter()
    try:
        prepare_output(args.output_dir, "--output-dir", folder=True)
        if args.data is None:
            images = load_mnist("test", args.num_images)
        else:
            images = load_image_set(args.data, key=args.key)[: args.num_images]
        schedules = schedules_from_names(args.schedules, args.num_train_timesteps)
        curves = forward_process_curves(images, schedules, num_points=args.num_points, mi_bins=args.mi_bins, seed=args.seed)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"infoflow curves: {err}") from None
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    (out / "curves.json").write_text(json.dumps({"settings": settings, "num_images": int(images.shape[0]), "curves": curves}, indent=1))
    plot = plot_forward_process_curves(curves, out / "curves.png", title=f"x0 vs x_t, {images.shape[0]} images")
    for label, curve in curves.items():
        print(f"{label:18s} MI {curve['mutual_information'][0]:.3f} → {curve['mutual_information'][-1]:.3f} nats "
              f"(the estimator's floor, pixels shuffled: {curve['mutual_information_floor'][-1]:.3f}), "
              f"SSIM {curve['ssim'][0]:.3f} → {curve['ssim'][-1]:.3f}")
    print(f"Wrote {out / 'curves.json'} and {plot} in {time.perf_counter() - start:.1f} s")
    return 0
