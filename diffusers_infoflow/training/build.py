"""The model and the saved noise scheduler of a training run, built from its arguments."""

from __future__ import annotations

import argparse
import json
import os
from typing import Dict, Sequence

from ..sampling import MULTISTEP_SAMPLER
from ..schedulers.scheduling_trig_angle_rk import TrigAngleRKScheduler
from ..schedules import get_betas


PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "joint")
# Options of --prediction_type joint (seed 004 §3.2-3.3) and their defaults; None on the command line means
# "not given", so that giving one without `joint` is an error rather than silently ignored.
JOINT_DEFAULTS = {"joint_gamma": 1.0, "joint_loss_norm": "mse", "joint_solver": "rk4"}
# Our schedule names whose diffusers spelling reproduces get_betas exactly and every diffusers scheduler reads;
# others are saved as trained_betas ("sigmoid" too: only DDPMScheduler and its kin know that name).
DIFFUSERS_NATIVE_SCHEDULES = {
    "linear": "linear",
    "quadratic": "scaled_linear",
    "scaled_linear": "scaled_linear",
    "cosine": "squaredcos_cap_v2",
    "squaredcos_cap_v2": "squaredcos_cap_v2",
}


def default_norm_groups(widths: Sequence[int]) -> int:
    """The largest of 32, 16, 8, 4, 2, 1 that divides every block width (GroupNorm needs it)."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if all(w % g == 0 for w in widths))


def _unet_folder(path: str) -> str:
    return os.path.join(path, "unet") if os.path.isdir(os.path.join(path, "unet")) else path


def load_init_unet(args: argparse.Namespace, num_channels: int):
    """The ``--init_unet`` model, widened to a joint model for ``--prediction_type joint``; the model flags in
    ``args`` are overwritten with its architecture so that the card and saved arguments describe what was trained."""
    from diffusers import UNet2DModel

    from ..models import JointUNet2DModel

    folder = _unet_folder(args.init_unet)
    with open(os.path.join(folder, "config.json")) as f:
        is_joint = json.load(f).get("_class_name") == "JointUNet2DModel"
    unet = (JointUNet2DModel if is_joint else UNet2DModel).from_pretrained(folder)
    cfg = unet.config
    if cfg.in_channels != num_channels or cfg.sample_size != args.resolution:
        raise ValueError(
            f"--init_unet {args.init_unet!r} takes {cfg.in_channels}-channel images of size {cfg.sample_size}, but the "
            f"data has {num_channels} channel(s) at --resolution {args.resolution}."
        )
    if args.prediction_type == "joint" and not is_joint:
        unet = JointUNet2DModel.from_unet(unet)
    elif (args.prediction_type == "joint") != is_joint:
        raise ValueError(f"--init_unet {args.init_unet!r} is a joint model; it cannot be trained with --prediction_type {args.prediction_type}.")
    args.block_out_channels = list(cfg.block_out_channels)
    args.layers_per_block = cfg.layers_per_block
    args.attention = "on" if any("Attn" in b for b in cfg.down_block_types) else "off"
    args.norm_num_groups = cfg.norm_num_groups
    return unet


def build_unet(args: argparse.Namespace, num_channels: int):
    """A ``UNet2DModel`` sized by the flags; for ``--prediction_type joint`` a ``JointUNet2DModel`` (same
    network, ``2·C`` output channels ordered ``[ε, x0]``)."""
    from diffusers import UNet2DModel

    from ..models import JointUNet2DModel

    joint = args.prediction_type == "joint"
    n_blocks = len(args.block_out_channels)
    down = ["DownBlock2D"] * n_blocks
    up = ["UpBlock2D"] * n_blocks
    if args.attention == "on":
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return (JointUNet2DModel if joint else UNet2DModel)(
        sample_size=args.resolution,
        in_channels=num_channels,
        out_channels=2 * num_channels if joint else num_channels,
        layers_per_block=args.layers_per_block,
        block_out_channels=tuple(args.block_out_channels),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=args.norm_num_groups or default_norm_groups(args.block_out_channels),
    )


def diffusers_schedule_config(args: argparse.Namespace) -> Dict:
    """The training schedule in diffusers' scheduler keys: diffusers' own name when it reproduces ``get_betas``
    exactly, explicit ``trained_betas`` otherwise (so any core schedule round-trips through save_pretrained and
    every diffusers scheduler can be built ``from_config`` of the saved one)."""
    params = dict(args.schedule_params)
    native = DIFFUSERS_NATIVE_SCHEDULES.get(args.beta_schedule)
    native_params = set() if native == "squaredcos_cap_v2" else {"beta_start", "beta_end"}
    if native is not None and set(params) <= native_params:
        return dict(num_train_timesteps=args.num_train_timesteps, beta_schedule=native, **params)
    betas = get_betas(args.beta_schedule, args.num_train_timesteps, **params)
    return {"num_train_timesteps": args.num_train_timesteps, "trained_betas": betas.tolist()}


def build_noise_scheduler(args: argparse.Namespace):
    """The saved scheduler of the training schedule (:func:`diffusers_schedule_config`): a ``DDPMScheduler``,
    or for ``--prediction_type joint`` a ``TrigAngleRKScheduler(prediction_type="joint", solver=--joint_solver)``,
    whose training table also gives the angles of the joint loss; the multistep solver with the rungs of
    `infoflow sample`'s ``trig-multistep`` (:data:`~diffusers_infoflow.sampling.MULTISTEP_SAMPLER`)."""
    from diffusers import DDPMScheduler

    schedule = diffusers_schedule_config(args)
    if args.prediction_type == "joint":
        solver = getattr(args, "joint_solver", None) or JOINT_DEFAULTS["joint_solver"]
        sampler = MULTISTEP_SAMPLER if solver == "multistep" else {"solver": solver}
        return TrigAngleRKScheduler(**schedule, prediction_type="joint", **sampler)
    return DDPMScheduler(**schedule, prediction_type=args.prediction_type, clip_sample=True)
