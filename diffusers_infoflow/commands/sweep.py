"""``infoflow sweep``: seed 001's γ sweep (deterministic) and (γ, δ) grid (stochastic) of the S2N sampler."""

from __future__ import annotations

import argparse
import time

from . import DefaultsHelpFormatter, prepare_output


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="sample quality of S2NGeneralizedScheduler versus γ (and δ) on an exact denoiser (offline, about a minute)",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--output-dir", default="infoflow-sweep", help="folder for s2n_gamma_sweep.json and .png")
    parser.add_argument(
        "--gammas",
        type=float,
        nargs="+",
        default=[-0.1, -0.05, -0.025, 0.0, 0.013, 0.026, 0.05, 0.1, 0.2],
        help="γ of the deterministic sweep",
    )
    parser.add_argument("--model-calls", "--nfe", dest="nfe", type=int, default=18, help="model calls of the deterministic sweep")
    parser.add_argument(
        "--grid-gammas", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.25, 1.5], help="γ of the stochastic grid"
    )
    parser.add_argument("--grid-deltas", type=float, nargs="+", default=[0.8, 0.9, 0.95, 1.0], help="δ of the stochastic grid")
    parser.add_argument("--grid-model-calls", "--grid-nfe", dest="grid_nfe", type=int, default=50, help="model calls of the stochastic grid")
    parser.add_argument("--noise-family", default="edm", help="schedule of the sampler: discrete, vp, ve, iddpm, fm-ot or edm")
    parser.add_argument("--num-samples", type=int, default=512, help="samples per setting")
    parser.add_argument("--num-points", type=int, default=256, help="data points of the exact denoiser")
    parser.add_argument("--image-size", type=int, default=14, help="side of the (downsampled) images")
    parser.add_argument("--reference-model-calls", "--reference-nfe", dest="reference_nfe", type=int, default=500, help="model calls (steps) of the ODE-endpoint reference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="mnist.npz, or 'random' for random images (default: $INFOFLOW_MNIST "
                        "or ../shared/data/mnist.npz, random images when neither exists)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.sweep import run_sweep

    flags = {"nfe": "--model-calls", "grid_nfe": "--grid-model-calls", "reference_nfe": "--reference-model-calls"}
    for name in ("nfe", "grid_nfe", "num_samples", "num_points", "image_size", "reference_nfe"):
        if getattr(args, name) < 1:
            raise SystemExit(f"infoflow sweep: {flags.get(name, '--' + name.replace('_', '-'))} must be >= 1, got {getattr(args, name)}.")
    start = time.perf_counter()
    try:
        prepare_output(args.output_dir, "--output-dir", folder=True)
        results = run_sweep(
            args.output_dir,
            gammas=args.gammas,
            nfe=args.nfe,
            grid_gammas=args.grid_gammas,
            grid_deltas=args.grid_deltas,
            grid_nfe=args.grid_nfe,
            scheduler_config={"noise_family": args.noise_family, "preconditioning": "none"},
            num_samples=args.num_samples,
            num_points=args.num_points,
            image_size=args.image_size,
            reference_nfe=args.reference_nfe,
            seed=args.seed,
            data_path=args.data,
        )
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"infoflow sweep: {err}") from None
    exact = results["frechet_distance_of_exact_draws"]
    print(f"data: {results['data']}; Fréchet distance of {args.num_samples} exact draws: {exact:.4f}")
    measures = ("frechet_distance", "nearest_data_distance", "out_of_range")
    print(f"deterministic (ρ = 0), {args.nfe} model calls:  γ | ODE-endpoint RMS | Fréchet (PCA-32) | nearest-data RMS | out-of-range")
    for p in results["deterministic"]:
        print(f"  {p['gamma']:7.3f} | {p['ode_error']:8.4f} | " + " | ".join(f"{p[m]:8.4f}" for m in measures))
    print(f"stochastic (ρ = 1), {args.grid_nfe} model calls:  γ  δ | Fréchet (PCA-32) | nearest-data RMS | out-of-range")
    for p in results["stochastic"]:
        print(f"  {p['gamma']:6.3f} {p['delta']:5.2f} | " + " | ".join(f"{p[m]:8.4f}" for m in measures))
    print(f"Wrote {args.output_dir}/s2n_gamma_sweep.json and .png in {time.perf_counter() - start:.1f} s")
    return 0
