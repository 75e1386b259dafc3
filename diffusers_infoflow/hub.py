"""Model cards and Hub uploads for trained pipelines.

The card is rendered from ``model_cards/ddpm_model_card.md`` with huggingface_hub's ``ModelCard``; it shows
the training configuration, the schedule with its entropy curve (:func:`diffusers_infoflow.gaussian_entropy`)
and a grid of samples. :func:`push_folder` uploads an output folder with ``HfApi.create_repo`` and
``HfApi.upload_folder``; the token comes from the environment (``HF_TOKEN``) or the local login and is never
printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import torch

MODEL_CARD_TEMPLATE = Path(__file__).resolve().parents[1] / "model_cards" / "ddpm_model_card.md"
SAMPLE_GRID_FILE = "samples.png"
ENTROPY_CURVE_FILE = "entropy.png"
# Never uploaded: resumable training state and tracker logs.
UPLOAD_IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "logs/**", "*.tmp/**"]


def render_sample_grid(output_dir: str, num_samples: int, num_inference_steps: int, seed: int = 0) -> Optional[str]:
    """Samples the saved pipeline with DDIM and writes ``samples.png``; returns the file name, or ``None``
    when the model's output is not a plain ε/x0/v prediction (the joint model) or ``num_samples`` is 0."""
    from diffusers import DDIMScheduler, DiffusionPipeline
    from PIL import Image

    from .data import make_grid

    if num_samples < 1:
        return None
    pipeline = DiffusionPipeline.from_pretrained(output_dir)
    if pipeline.unet.config.out_channels != pipeline.unet.config.in_channels:
        return None
    pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(batch_size=num_samples, num_inference_steps=num_inference_steps,
                      generator=torch.Generator().manual_seed(seed), output_type="np").images
    grid = make_grid(torch.from_numpy(images).permute(0, 3, 1, 2) * 2 - 1)
    Image.fromarray(grid).save(os.path.join(output_dir, SAMPLE_GRID_FILE))
    return SAMPLE_GRID_FILE


def render_entropy_curve(output_dir: str, alphas_cumprod: torch.Tensor, sample_shape, title: str) -> str:
    """Plots ``H(x_t | x0)`` against the step ``t`` into ``entropy.png``; returns the file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .entropy import gaussian_entropy

    entropy = gaussian_entropy(alphas_cumprod.to(torch.float64), tuple(sample_shape))
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(range(1, len(entropy) + 1), entropy.numpy())
    ax.set_xlabel("step t")
    ax.set_ylabel("H(x_t | x_0) [nats]")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, ENTROPY_CURVE_FILE))
    plt.close(fig)
    return ENTROPY_CURVE_FILE


def training_command(argv=None) -> str:
    """The command that launched this process, as a copy-pasteable ``accelerate launch`` line."""
    argv = sys.argv if argv is None else argv
    return "accelerate launch " + shlex.join(argv)


def write_model_card(
    output_dir: str,
    args: argparse.Namespace,
    *,
    final_loss: Optional[float],
    num_processes: int,
    total_steps: int,
    command: Optional[str] = None,
) -> str:
    """Renders ``README.md`` in ``output_dir`` (a saved pipeline) from the template; returns its path."""
    from diffusers import DiffusionPipeline
    from huggingface_hub import ModelCard, ModelCardData

    pipeline = DiffusionPipeline.from_pretrained(output_dir)
    unet, scheduler = pipeline.unet, pipeline.scheduler
    sample_shape = (unet.config.in_channels, args.resolution, args.resolution)
    grid = render_sample_grid(output_dir, args.num_card_samples, args.card_inference_steps, seed=args.seed)
    curve = render_entropy_curve(output_dir, scheduler.alphas_cumprod, sample_shape, f"{args.beta_schedule}, T = {args.num_train_timesteps}")
    dataset = args.dataset_name or args.train_data_dir
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="diffusers",
        tags=["diffusers", "unconditional-image-generation", "diffusers-infoflow", f"schedule-{args.beta_schedule}"],
        pipeline_tag="unconditional-image-generation",
    )
    name = args.hub_model_id or os.path.basename(os.path.normpath(output_dir))
    card = ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE),
        model_name=name,
        repo_or_path=name,
        dataset=os.path.basename(str(dataset)) if os.path.exists(str(dataset)) else dataset,
        prediction_type=args.prediction_type,
        sample_grid=grid,
        sample_caption=f"{args.num_card_samples} samples, DDIM with {args.card_inference_steps} steps, seed {args.seed}.",
        beta_schedule=args.beta_schedule,
        num_train_timesteps=args.num_train_timesteps,
        schedule_params=args.schedule_params,
        sample_dim=int(torch.tensor(sample_shape).prod()),
        entropy_curve=curve,
        resolution=args.resolution,
        resize_mode=args.resize_mode,
        block_out_channels=list(args.block_out_channels),
        layers_per_block=args.layers_per_block,
        attention=args.attention,
        num_parameters=f"{sum(p.numel() for p in unet.parameters()):,}",
        train_batch_size=args.train_batch_size,
        num_processes=num_processes,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        max_train_steps=total_steps,
        learning_rate=args.learning_rate,
        lr_scheduler=args.lr_scheduler,
        lr_warmup_steps=args.lr_warmup_steps,
        use_ema=args.use_ema,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
        final_loss="n/a" if final_loss is None else f"{final_loss:.4f}",
        training_command=command or training_command(),
    )
    path = os.path.join(output_dir, "README.md")
    card.save(path)
    return path


def push_folder(folder: str, repo_id: str, *, private: bool = False, token: Optional[str] = None, commit_message: str = "Upload diffusion model") -> str:
    """Creates ``repo_id`` (if needed) and uploads ``folder`` without checkpoints or logs; returns the commit URL.

    The token is ``token``, else ``HF_TOKEN`` from the environment, else the local ``huggingface-cli login``.
    """
    from huggingface_hub import HfApi

    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise FileNotFoundError(f"{folder!r} has no model_index.json: train into it first (scripts/train.py).")
    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(repo_id=repo_url.repo_id, folder_path=folder, commit_message=commit_message,
                               ignore_patterns=UPLOAD_IGNORE_PATTERNS, repo_type="model")
    return commit.commit_url
