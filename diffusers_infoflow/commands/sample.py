"""``infoflow sample``: a grid of samples from a saved unconditional pipeline (default: the shipped MNIST DDPM)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "models" / "mnist-ddpm"
SCHEDULERS = ("ddpm", "ddim", "entropy-hybrid")


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="write a sample grid PNG from a saved diffusion pipeline")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="a saved pipeline folder (default: the shipped MNIST DDPM).")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="ddim")
    p.add_argument("--steps", type=int, default=50, help="number of model calls.")
    p.add_argument("--num_images", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="samples.png")
    p.set_defaults(func=run)


def build_scheduler(name: str, config):
    """A scheduler of kind ``name`` from the saved (training) scheduler config."""
    from diffusers import DDIMScheduler, DDPMScheduler

    from ..schedulers import EntropyHybridScheduler

    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    return EntropyHybridScheduler.from_config(config)


def run(args: argparse.Namespace) -> int:
    import torch
    from diffusers import DDPMPipeline
    from PIL import Image

    from ..data import make_grid

    if args.steps < 1 or args.num_images < 1:
        raise SystemExit(f"--steps and --num_images must be >= 1, got {args.steps} and {args.num_images}.")
    pipeline = DDPMPipeline.from_pretrained(args.model, local_files_only=True)
    pipeline.scheduler = build_scheduler(args.scheduler, pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(batch_size=args.num_images, num_inference_steps=args.steps,
                      generator=torch.Generator().manual_seed(args.seed), output_type="np").images
    grid = make_grid(torch.from_numpy(images).permute(0, 3, 1, 2) * 2 - 1)
    Image.fromarray(grid).save(args.output)
    print(f"wrote {args.output} ({args.num_images} images, {args.scheduler}, {args.steps} steps)")
    return 0
