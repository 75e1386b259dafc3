#!/usr/bin/env python
"""Train an unconditional diffusion UNet; run with ``accelerate launch scripts/train.py --help``.

The command line is parsed here, as in diffusers' example scripts; the training is
:func:`diffusers_infoflow.training.train` (see :mod:`diffusers_infoflow.training.loop` for how resuming stays exact).
"""

from __future__ import annotations

import argparse
import json
from typing import Dict, List, Optional, Sequence

from diffusers_infoflow.data import BUILTIN_DATASETS, RESIZE_MODES
from diffusers_infoflow.hub import CARD_SCHEDULERS
from diffusers_infoflow.schedulers.scheduling_trig_angle_rk import SOLVERS
from diffusers_infoflow.schedules import DISCRETE_SCHEDULES
from diffusers_infoflow.training import (
    JOINT_DEFAULTS,
    LOSS_NORMS,
    PREDICTION_TYPES,
    fill_joint_defaults,
    train,
    validate_args,
)


def _int_list(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _schedule_params(text: str) -> Dict[str, float]:
    try:
        params = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--schedule_params must be a JSON object, e.g. '{{\"s\": 0.008}}': {err}")
    if not isinstance(params, dict):
        raise argparse.ArgumentTypeError(f"--schedule_params must be a JSON object, got {text!r}")
    return params


def build_arg_parser() -> argparse.ArgumentParser:
    """The training command line (names as in diffusers' ``train_unconditional.py`` where they overlap)."""
    p = argparse.ArgumentParser(description="Train an unconditional diffusion UNet (diffusers-infoflow).")
    data = p.add_argument_group("data")
    data.add_argument("--dataset_name", default=None, help=f"built-in {BUILTIN_DATASETS}, a FILE.npz, or a Hub dataset id.")
    data.add_argument("--dataset_config_name", default=None, help="the Hub dataset's config name.")
    data.add_argument("--dataset_options", default=None, help="built-in generator options, e.g. 'count=1000,supersample=4'.")
    data.add_argument("--train_data_dir", default=None, help="a local folder of images, or an .npz file.")
    data.add_argument("--image_column", default=None, help="image column (Hub/folder) or array key (.npz); guessed if unset.")
    data.add_argument("--max_train_samples", type=int, default=None)
    data.add_argument("--cache_dir", default=None)
    data.add_argument("--resolution", type=int, default=32)
    data.add_argument("--resize_mode", choices=RESIZE_MODES, default="resize", help="'pad' keeps pixels (MNIST 28 → 32).")

    model = p.add_argument_group("model")
    model.add_argument("--block_out_channels", type=_int_list, default=[64, 128, 128, 256])
    model.add_argument("--layers_per_block", type=int, default=2)
    model.add_argument("--attention", choices=("on", "off"), default="on", help="self-attention in the lowest-resolution block.")
    model.add_argument(
        "--init_unet", default=None,
        help="start from the weights of a saved UNet2DModel (a pipeline folder with unet/, or the unet folder itself) "
             "instead of a random one; its architecture replaces the model flags. With --prediction_type joint an ε "
             "model is widened by JointUNet2DModel.from_unet (x0 head starts at zero).",
    )
    model.add_argument("--norm_num_groups", type=int, default=None, help="default: the largest of 32, 16, 8, ... dividing all widths.")

    diffusion = p.add_argument_group("diffusion")
    diffusion.add_argument("--beta_schedule", default="linear", help=f"any of {DISCRETE_SCHEDULES} or diffusers' aliases.")
    diffusion.add_argument("--schedule_params", type=_schedule_params, default={}, help="JSON family parameters, e.g. '{\"p\": 1.5}'.")
    diffusion.add_argument("--num_train_timesteps", type=int, default=1000)
    diffusion.add_argument("--prediction_type", choices=PREDICTION_TYPES, default="epsilon",
                           help="'joint': a JointUNet2DModel predicting [ε, x0], trained with seed 004's loss (eq. 12) and "
                                "saved as a JointTrigPipeline with a TrigAngleRKScheduler.")
    diffusion.add_argument("--snr_gamma", type=float, default=None,
                           help="Min-SNR-γ loss weighting (Hang et al. 2023; 5.0 is their choice) for epsilon, sample and "
                                "v_prediction; default: the unweighted loss.")
    diffusion.add_argument("--joint_gamma", type=float, default=None,
                           help=f"joint only: γ_g, the weight of the velocity term (per radian of η); default {JOINT_DEFAULTS['joint_gamma']}.")
    diffusion.add_argument("--joint_loss_norm", choices=LOSS_NORMS, default=None,
                           help=f"joint only: the distance of each loss term; default {JOINT_DEFAULTS['joint_loss_norm']}.")
    diffusion.add_argument("--joint_solver", choices=SOLVERS, default=None,
                           help=f"joint only: the saved TrigAngleRKScheduler's solver (pipeline default, card samples); default {JOINT_DEFAULTS['joint_solver']}.")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--train_batch_size", type=int, default=16, help="per process.")
    opt.add_argument("--num_epochs", type=int, default=100)
    opt.add_argument("--max_train_steps", type=int, default=None, help="overrides --num_epochs.")
    opt.add_argument("--gradient_accumulation_steps", type=int, default=1)
    opt.add_argument("--learning_rate", type=float, default=1e-4)
    opt.add_argument("--lr_scheduler", default="cosine", help="diffusers.optimization.get_scheduler name.")
    opt.add_argument("--lr_warmup_steps", type=int, default=500)
    opt.add_argument("--adam_beta1", type=float, default=0.95)
    opt.add_argument("--adam_beta2", type=float, default=0.999)
    opt.add_argument("--adam_weight_decay", type=float, default=1e-6)
    opt.add_argument("--adam_epsilon", type=float, default=1e-8)
    opt.add_argument("--use_ema", action="store_true")
    opt.add_argument("--ema_inv_gamma", type=float, default=1.0)
    opt.add_argument("--ema_power", type=float, default=3 / 4)
    opt.add_argument("--ema_max_decay", type=float, default=0.9999)
    opt.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default="no")
    opt.add_argument("--seed", type=int, default=0)

    run = p.add_argument_group("run")
    run.add_argument("--output_dir", default="ddpm-model")
    run.add_argument("--overwrite_output_dir", action="store_true")
    run.add_argument("--checkpointing_steps", type=int, default=500)
    run.add_argument("--checkpoints_total_limit", type=int, default=None)
    run.add_argument("--save_model_steps", type=int, default=None,
                     help="also save the (EMA) pipeline and its card to --output_dir every N steps, to sample or evaluate a running run.")
    run.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder, or 'latest' in --output_dir.")
    run.add_argument("--logging_dir", default="logs")
    run.add_argument("--report_to", default="all", help="accelerate trackers: tensorboard, wandb, ..., 'all' (those installed) or 'none'.")
    run.add_argument("--logging_steps", type=int, default=10)
    run.add_argument("--num_card_samples", type=int, default=16, help="images in the model card's sample grid (0: none).")
    run.add_argument("--card_inference_steps", type=int, default=50,
                     help="model calls for the card's sample grid (as many whole steps of --card_scheduler as fit).")
    run.add_argument("--card_scheduler", choices=CARD_SCHEDULERS, default=None,
                     help="the `infoflow sample` scheduler of the card's grid and its `infoflow sample` line; default: "
                          "ddim, or for a joint model its saved trig solver (--joint_solver).")
    run.add_argument("--card_notes", default=None,
                     help="a Markdown file whose text becomes the model card's 'Training recipe' section (why this recipe, "
                          "how the run went, e.g. a horizon changed on resume).")
    run.add_argument("--push_to_hub", action="store_true")
    run.add_argument("--hub_model_id", default=None, help="repo id; default: the output folder's name. Token: HF_TOKEN.")
    run.add_argument("--hub_private_repo", action="store_true")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses and validates the command line (errors exit with argparse's message)."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    try:
        validate_args(args)
    except ValueError as err:
        parser.error(str(err))
    return fill_joint_defaults(args)


def main(argv: Optional[Sequence[str]] = None) -> None:
    try:
        train(parse_args(argv))
    except (ValueError, FileNotFoundError, ConnectionError) as err:  # bad data, paths or checkpoints: one line, no traceback
        raise SystemExit(f"scripts/train.py: {err}") from None


if __name__ == "__main__":
    main()
