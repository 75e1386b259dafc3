"""``infoflow sample``: a grid of samples from a saved unconditional pipeline (default: the shipped MNIST DDPM).

Any saved single-head model (``DDPMPipeline`` folders from ``scripts/train.py``) or joint ``[ε, x0]`` model
(``JointTrigPipeline`` folders from ``scripts/train.py --prediction_type joint``) runs with every scheduler of
:data:`SCHEDULERS`, each built ``from_config`` of the saved (training) scheduler config (a joint model gives
``trig-rk4``/``trig-multistep`` both heads and every other scheduler its x0 head; see :func:`build_scheduler`). ``--steps`` counts
model calls: multi-call solvers get as many whole steps as fit (counted from the scheduler's timesteps, e.g.
Heun: 2·N − 1 calls for N steps), and the printed line says how many calls were made.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "models" / "mnist-ddpm"
SCHEDULERS = (
    "ddpm", "ddim", "entropy-hybrid", "s2n", "s2n-stochastic", "trig-rk4", "trig-multistep", "dpm++2m", "unipc", "euler", "heun",
)
# Schedulers that read both heads of a joint [ε, x0] output; the others are given its x0 head.
JOINT_AWARE_SCHEDULERS = ("trig-rk4", "trig-multistep")


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="write a sample grid PNG from a saved diffusion pipeline")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="a saved pipeline folder (default: the shipped MNIST DDPM).")
    p.add_argument(
        "--scheduler", choices=SCHEDULERS, default="ddim",
        help="ddpm, ddim, entropy-hybrid; s2n / s2n-stochastic (S2NGeneralizedScheduler presets 'deterministic' / "
             "'stochastic'); trig-rk4 / trig-multistep (TrigAngleRKScheduler, RK4 or the order-3 multistep solver); diffusers' dpm++2m, unipc, euler, heun.",
    )
    p.add_argument("--steps", type=int, default=50, help="number of model calls (rounded down to whole steps of multi-call solvers).")
    p.add_argument("--num_images", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="samples.png")
    p.set_defaults(func=run)


def build_scheduler(name: str, config, joint: bool = False):
    """A scheduler of kind ``name`` from the saved (training) scheduler config.

    The prediction type is the config's (the model's), so an ε, x0 or v model is read as trained. For a joint
    ``[ε, x0]`` model (``joint=True``) the trig solvers read both heads (``prediction_type="joint"``) and the others
    are told ``prediction_type="sample"``: ``JointTrigPipeline`` hands them the x0 head. The x0 head, not the ε
    head, because at the noisy end of a table ε̂ enters x̂0 = (x − σ ε̂)/α divided by a tiny α (≈ 5e-5 at
    t = T − 1 of the trig table, 6e-3 of the linear one): on a joint model trained on triangles every stock
    scheduler (and S2N, whose ``joint`` mode uses only the ε half) gave noise or blobs from the ε head and
    shapes from the x0 head.
    """
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        HeunDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    from ..schedulers import EntropyHybridScheduler, S2NGeneralizedScheduler, TrigAngleRKScheduler

    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}.")
    if joint:
        overrides = {"prediction_type": "joint" if name in JOINT_AWARE_SCHEDULERS else "sample"}
    else:
        overrides = {}
    if name == "s2n":
        return S2NGeneralizedScheduler.from_preset("deterministic", config, **overrides)
    if name == "s2n-stochastic":
        return S2NGeneralizedScheduler.from_preset("stochastic", config, **overrides)
    if name in ("trig-rk4", "trig-multistep"):
        return TrigAngleRKScheduler.from_config(config, solver=name.split("-")[1], **overrides)
    if name == "dpm++2m":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2, **overrides)
    classes = {
        "ddpm": DDPMScheduler,
        "ddim": DDIMScheduler,
        "entropy-hybrid": EntropyHybridScheduler,
        "unipc": UniPCMultistepScheduler,
        "euler": EulerDiscreteScheduler,
        "heun": HeunDiscreteScheduler,
    }
    return classes[name].from_config(config, **overrides)


def is_joint_model(pipeline) -> bool:
    """Whether a loaded pipeline's model predicts ``[ε, x0]`` (a ``JointUNet2DModel``, or a joint scheduler config)."""
    from ..models import JointUNet2DModel

    return isinstance(pipeline.unet, JointUNet2DModel) or pipeline.scheduler.config.get("prediction_type") == "joint"


def generate(model: str, scheduler_name: str, model_calls: int, num_images: int, seed: int = 0, batch_size: int = 250):
    """``(images, steps, calls)``: ``num_images`` samples in [0, 1] (``(N, C, H, W)`` float) from the saved pipeline
    folder ``model`` with the scheduler ``scheduler_name`` in at most ``model_calls`` model calls. Batch ``b`` starts
    from the noise of ``seed + b·batch_size``, so every scheduler sees the same noise.

    Raises ``ValueError`` when not even one step fits in ``model_calls``.
    """
    from diffusers import DiffusionPipeline

    # (importing this package registered JointTrigPipeline with diffusers, so from_pretrained finds joint folders)
    from ..ablations import steps_within_calls
    from ..pipelines.joint_trig import JointTrigPipeline

    saved = DiffusionPipeline.from_pretrained(model, local_files_only=True)
    scheduler = build_scheduler(scheduler_name, saved.scheduler.config, joint=is_joint_model(saved))
    steps, calls = steps_within_calls(scheduler, model_calls)
    # JointTrigPipeline runs diffusers' standard loop (init_noise_sigma, scale_model_input, step), which the
    # sigma-space schedulers (euler, heun) need and DDPMPipeline skips; a single-head model's output passes
    # through unchanged, a joint model's is split for schedulers that want one head.
    pipeline = JointTrigPipeline(unet=saved.unet, scheduler=scheduler)
    return sample_batches(pipeline, steps, num_images, seed, batch_size), steps, calls


def sample_batches(pipeline, num_inference_steps: int, num_images: int, seed: int = 0, batch_size: int = 250):
    """``num_images`` samples in [0, 1] (``(N, C, H, W)`` float) from ``pipeline`` (any pipeline that takes
    ``output_type="pt"``), ``batch_size`` at a time; batch ``b`` starts from the noise of ``seed + b·batch_size``."""
    import torch

    pipeline.set_progress_bar_config(disable=True)
    chunks = []
    for start in range(0, num_images, batch_size):
        generator = torch.Generator().manual_seed(seed + start)
        n = min(batch_size, num_images - start)
        chunks.append(pipeline(batch_size=n, num_inference_steps=num_inference_steps, generator=generator, output_type="pt").images)
    return torch.cat(chunks)


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..data import make_grid

    if args.steps < 1 or args.num_images < 1:
        raise SystemExit(f"--steps and --num_images must be >= 1, got {args.steps} and {args.num_images}.")
    try:
        images, steps, calls = generate(args.model, args.scheduler, args.steps, args.num_images, args.seed, batch_size=args.num_images)
    except ValueError as err:
        raise SystemExit(f"--steps {args.steps}: {err}")
    Image.fromarray(make_grid(images * 2 - 1)).save(args.output)
    step_text = f"{steps} step{'s' if steps != 1 else ''}"
    note = "" if calls == args.steps else f" of {args.steps} requested"
    call_text = f"{calls} model call{'s' if calls != 1 else ''}"
    print(f"wrote {args.output} ({args.num_images} images, {args.scheduler}, {step_text} = {call_text}{note})")
    return 0
