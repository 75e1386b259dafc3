"""Unconditional DDPM training with 🤗 Accelerate, in the conventions of diffusers' ``train_unconditional.py``.

``scripts/train.py`` is a thin wrapper around :func:`parse_args` and :func:`train`.

Resuming loses nothing: the run is a pure function of ``--seed`` and the optimisation step.

* Data order: epoch ``e`` is the permutation drawn from ``seed + e``; a global batch of
  ``train_batch_size × num_processes`` images is split between processes in rank order, and the last
  incomplete global batch of an epoch is dropped, so step ``k`` always sees the same images.
* Noise and timesteps of micro-batch ``m`` on process ``r`` come from a generator seeded by
  ``(seed, m, r)``, so no random state has to survive a restart.
* ``--prediction_type joint`` (seed 004) draws its noise and timesteps from the same keyed generator, in the
  same order, so it resumes exactly too.
* Model, optimizer, LR scheduler and EMA go through ``accelerator.save_state``/``load_state``; a checkpoint is
  written to ``checkpoint-N.tmp`` and renamed when complete, so a run killed mid-save never leaves a
  truncated ``checkpoint-N`` for ``--resume_from_checkpoint latest`` to pick up.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import BUILTIN_DATASETS, RESIZE_MODES, load_training_dataset
from .losses import LOSS_NORMS, JointLoss, joint_trig_loss, trig_noisy_sample
from .models.joint_unet import split_joint_prediction
from .schedulers.scheduling_trig_angle_rk import SOLVERS, TrigAngleRKScheduler, angle_from_logsnr
from .schedules import DISCRETE_SCHEDULES, get_betas


logger = logging.getLogger(__name__)

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "joint")
# Options of --prediction_type joint (seed 004 §3.2-3.3) and their defaults; None on the command line means
# "not given", so that giving one without `joint` is an error rather than silently ignored.
JOINT_DEFAULTS = {"joint_gamma": 1.0, "joint_loss_norm": "mse", "joint_solver": "rk4"}
# Our schedule names whose diffusers spelling reproduces get_betas exactly; others are saved as trained_betas.
DIFFUSERS_NATIVE_SCHEDULES = {
    "linear": "linear",
    "quadratic": "scaled_linear",
    "scaled_linear": "scaled_linear",
    "sigmoid": "sigmoid",
    "cosine": "squaredcos_cap_v2",
    "squaredcos_cap_v2": "squaredcos_cap_v2",
}
CHECKPOINT_PREFIX = "checkpoint-"
# Test hook: stop with SimulatedCrash right after the checkpoint of this step is written (no final save).
CRASH_AFTER_STEP_ENV = "INFOFLOW_CRASH_AFTER_STEP"


class SimulatedCrash(RuntimeError):
    """Raised by the INFOFLOW_CRASH_AFTER_STEP test hook in place of a real failure."""
TRAINING_ARGS_FILE = "infoflow_training_args.json"


# ----------------------------------------------------------------------------------------------- arguments


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
    data.add_argument("--dataloader_num_workers", type=int, default=0)

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
    run.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder, or 'latest' in --output_dir.")
    run.add_argument("--logging_dir", default="logs")
    run.add_argument("--report_to", default="all", help="accelerate trackers: tensorboard, wandb, ..., 'all' (those installed) or 'none'.")
    run.add_argument("--logging_steps", type=int, default=10)
    run.add_argument("--num_card_samples", type=int, default=16, help="images in the model card's sample grid (0: none).")
    run.add_argument("--card_inference_steps", type=int, default=50,
                     help="model calls for the card's sample grid (DDIM; joint: the saved solver, rounded down to whole steps).")
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


def fill_joint_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Sets the unset ``--joint_*`` options of a joint run to :data:`JOINT_DEFAULTS` (in place; returns ``args``)."""
    if args.prediction_type == "joint":
        for name, default in JOINT_DEFAULTS.items():
            if getattr(args, name, None) is None:
                setattr(args, name, default)
    return args


def default_norm_groups(widths: Sequence[int]) -> int:
    """The largest of 32, 16, 8, 4, 2, 1 that divides every block width (GroupNorm needs it)."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if all(w % g == 0 for w in widths))


def validate_args(args: argparse.Namespace) -> None:
    """Cross-argument checks that argparse cannot do; raises ``ValueError`` naming the bad value."""
    if (args.dataset_name is None) == (args.train_data_dir is None):
        raise ValueError("give exactly one of --dataset_name and --train_data_dir.")
    for name in ("resolution", "train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "layers_per_block", "num_train_timesteps", "num_epochs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}.")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise ValueError(f"--max_train_steps must be >= 1, got {args.max_train_steps}.")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise ValueError(f"--checkpoints_total_limit must be >= 1, got {args.checkpoints_total_limit}.")
    get_betas(args.beta_schedule, args.num_train_timesteps, **dict(args.schedule_params))  # raises on bad names/params
    if args.init_unet is None:  # otherwise the loaded network's architecture is used (checked when loading)
        groups = args.norm_num_groups or default_norm_groups(args.block_out_channels)
        if any(w % groups for w in args.block_out_channels):
            raise ValueError(f"--norm_num_groups {groups} must divide every --block_out_channels width {args.block_out_channels}.")
        factor = 2 ** (len(args.block_out_channels) - 1)
        if args.resolution % factor:
            raise ValueError(
                f"--resolution {args.resolution} is not divisible by the UNet's downsampling factor {factor} "
                f"({len(args.block_out_channels)} blocks); use a multiple of {factor} or fewer --block_out_channels."
            )
    if args.init_unet is not None and not os.path.isfile(os.path.join(_unet_folder(args.init_unet), "config.json")):
        raise ValueError(f"--init_unet {args.init_unet!r} has no UNet config: give a pipeline folder with unet/ or a unet folder.")
    if args.resume_from_checkpoint not in (None, "latest") and not os.path.isdir(args.resume_from_checkpoint):
        raise ValueError(f"--resume_from_checkpoint {args.resume_from_checkpoint!r} is not a folder; give a checkpoint folder or 'latest'.")
    if args.card_notes is not None and not os.path.isfile(args.card_notes):
        raise ValueError(f"--card_notes {args.card_notes!r} is not a file.")
    validate_joint_args(args)


def validate_joint_args(args: argparse.Namespace) -> None:
    """The checks of ``--prediction_type joint`` and its ``--joint_*`` options (``ValueError`` on a bad combination)."""
    given = [name for name in JOINT_DEFAULTS if getattr(args, name, None) is not None]
    if args.prediction_type != "joint":
        if given:
            raise ValueError(
                f"--{given[0]} applies only to --prediction_type joint (the run has --prediction_type {args.prediction_type}); "
                "drop it or train a joint model."
            )
        return
    gamma = JOINT_DEFAULTS["joint_gamma"] if args.joint_gamma is None else args.joint_gamma
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"--joint_gamma must be a finite number >= 0, got {gamma!r}.")
    solver = args.joint_solver or JOINT_DEFAULTS["joint_solver"]
    if args.num_card_samples > 0:
        from .sampling import steps_within_calls

        scheduler = TrigAngleRKScheduler(**diffusers_schedule_config(args), prediction_type="joint", solver=solver)
        try:
            steps_within_calls(scheduler, args.card_inference_steps)
        except ValueError as err:
            raise ValueError(
                f"--card_inference_steps {args.card_inference_steps} model calls cannot sample the card's grid with "
                f"--joint_solver {solver} ({err}); raise --card_inference_steps, pick another --joint_solver, or set "
                "--num_card_samples 0."
            ) from None


# ----------------------------------------------------------------------------------------------- building blocks


def _unet_folder(path: str) -> str:
    return os.path.join(path, "unet") if os.path.isdir(os.path.join(path, "unet")) else path


def load_init_unet(args: argparse.Namespace, num_channels: int):
    """The ``--init_unet`` model, widened to a joint model for ``--prediction_type joint``; the model flags in
    ``args`` are overwritten with its architecture so that the card and saved arguments describe what was trained."""
    from diffusers import UNet2DModel

    from .models import JointUNet2DModel

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

    from .models import JointUNet2DModel

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
    whose training table also gives the angles of the joint loss."""
    from diffusers import DDPMScheduler

    schedule = diffusers_schedule_config(args)
    if args.prediction_type == "joint":
        solver = getattr(args, "joint_solver", None) or JOINT_DEFAULTS["joint_solver"]
        return TrigAngleRKScheduler(**schedule, prediction_type="joint", solver=solver)
    return DDPMScheduler(**schedule, prediction_type=args.prediction_type, clip_sample=True)


def training_angles(noise_scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """η_t with ``cos² η_t = ᾱ_t`` at training timesteps (float64, on ``timesteps``' device; fractional ``t``
    interpolates in log-SNR): exactly the angle at which ``TrigAngleRKScheduler`` reads a model told timestep
    ``t``, so training and sampling agree."""
    logsnr = noise_scheduler.train_schedule.logsnr(timesteps.detach().cpu().to(torch.float64))
    return angle_from_logsnr(logsnr).to(timesteps.device)


def epoch_batches(num_items: int, epoch: int, seed: int, batch_size: int, num_processes: int, rank: int) -> List[torch.Tensor]:
    """This process's micro-batches of dataset indices for ``epoch``: the permutation drawn from
    ``seed + epoch``, cut into global batches of ``batch_size · num_processes`` (the incomplete tail is
    dropped), each split in rank order."""
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(num_items, generator=generator)
    global_batch = batch_size * num_processes
    n_batches = num_items // global_batch
    return [order[b * global_batch + rank * batch_size : b * global_batch + (rank + 1) * batch_size] for b in range(n_batches)]


def micro_batch_generator(seed: int, micro_step: int, rank: int) -> torch.Generator:
    """The generator of one micro-batch's noise and timesteps: a pure function of (seed, micro-step, rank)."""
    mixed = np.random.SeedSequence([seed, micro_step, rank]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))


def diffusion_loss(model, noise_scheduler, clean: torch.Tensor, prediction_type: str, generator: torch.Generator) -> torch.Tensor:
    """One Monte-Carlo estimate of the training loss on ``clean`` (SPEC §7 for ε; x0 and v targets alike).
    ``prediction_type="joint"`` is :func:`joint_diffusion_loss` with its default options (its total)."""
    if prediction_type == "joint":
        return joint_diffusion_loss(model, noise_scheduler, clean, generator).total
    noise = torch.randn(clean.shape, generator=generator).to(clean.device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (clean.shape[0],), generator=generator).to(clean.device)
    noisy = noise_scheduler.add_noise(clean, noise, timesteps)
    output = model(noisy, timesteps).sample
    if prediction_type == "epsilon":
        return F.mse_loss(output.float(), noise.float())
    if prediction_type == "sample":
        return F.mse_loss(output.float(), clean.float())
    return F.mse_loss(output.float(), noise_scheduler.get_velocity(clean, noise, timesteps).float())


def joint_diffusion_loss(
    model,
    noise_scheduler,
    clean: torch.Tensor,
    generator: torch.Generator,
    gamma: float = JOINT_DEFAULTS["joint_gamma"],
    norm: str = JOINT_DEFAULTS["joint_loss_norm"],
) -> JointLoss:
    """Seed 004's joint loss (eq. 12, :func:`~diffusers_infoflow.losses.joint_trig_loss`) on ``clean``.

    Same draws as :func:`diffusion_loss` (ε first, then integer timesteps ``t ~ U{0..T-1}``, from one keyed
    generator). With ``cos² η_t = ᾱ_t`` of the saved ``TrigAngleRKScheduler``'s training table the input is
    ``x_η = cos η_t·x0 + sin η_t·ε`` (eq. 9; the same point as DDPM's ``add_noise``) and the model is told
    ``t``, exactly as the sampler tells it the timestep of each angle. The velocity term is per radian of η
    (``eta_rate = 1``), the time variable the sampler integrates in; with ``--beta_schedule trig``
    (``η_t = (t/T)·π/2``) this is seed 004's parameterisation exactly, up to the constant η' = π/(2T).
    """
    noise = torch.randn(clean.shape, generator=generator).to(clean.device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (clean.shape[0],), generator=generator).to(clean.device)
    eta = training_angles(noise_scheduler, timesteps).to(clean.dtype)
    noisy = trig_noisy_sample(clean, noise, eta)
    eps_pred, x0_pred = split_joint_prediction(model(noisy, timesteps).sample.float())
    return joint_trig_loss(eps_pred, x0_pred, clean.float(), noise.float(), eta.float(), gamma=gamma, eta_rate=1.0, norm=norm)


def list_checkpoints(output_dir: str) -> List[str]:
    """Complete ``checkpoint-N`` folders in ``output_dir``, oldest first."""
    if not os.path.isdir(output_dir):
        return []
    names = [d for d in os.listdir(output_dir) if d.startswith(CHECKPOINT_PREFIX) and d[len(CHECKPOINT_PREFIX):].isdigit()]
    return [os.path.join(output_dir, d) for d in sorted(names, key=lambda d: int(d[len(CHECKPOINT_PREFIX):]))]


def resolve_checkpoint(resume_from_checkpoint: str, output_dir: str) -> str:
    """The folder to resume from; ``'latest'`` with no checkpoint in ``output_dir`` is an error."""
    if resume_from_checkpoint == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no {CHECKPOINT_PREFIX}N folder in {output_dir!r}.")
        return found[-1]
    if not os.path.isdir(resume_from_checkpoint):
        raise FileNotFoundError(f"--resume_from_checkpoint {resume_from_checkpoint!r} does not exist.")
    return resume_from_checkpoint


def checkpoint_step(path: str) -> int:
    """The optimisation step encoded in a ``checkpoint-N`` folder name."""
    name = os.path.basename(os.path.normpath(path))
    if not name.startswith(CHECKPOINT_PREFIX) or not name[len(CHECKPOINT_PREFIX):].isdigit():
        raise ValueError(f"{path!r} is not a {CHECKPOINT_PREFIX}N folder written by this script.")
    return int(name[len(CHECKPOINT_PREFIX):])


class _CheckpointableEMA:
    """Adapter so accelerate can checkpoint diffusers' ``EMAModel`` (it wants ``state_dict``/``load_state_dict``)."""

    def __init__(self, ema):
        self.ema = ema

    def state_dict(self):
        return self.ema.state_dict()

    def load_state_dict(self, state):
        self.ema.load_state_dict(state)


def save_checkpoint(accelerator, output_dir: str, step: int, total_limit: Optional[int]) -> str:
    """``accelerator.save_state`` into ``checkpoint-step`` atomically (temporary folder, then rename),
    after removing the oldest checkpoints so at most ``total_limit`` remain."""
    final = os.path.join(output_dir, f"{CHECKPOINT_PREFIX}{step}")
    staging = final + ".tmp"
    if accelerator.is_main_process:
        if total_limit is not None:
            existing = list_checkpoints(output_dir)
            for old in existing[: max(0, len(existing) - total_limit + 1)]:
                logger.info(f"removing old checkpoint {old}")
                shutil.rmtree(old)
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(staging)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
    accelerator.wait_for_everyone()
    return final


# ----------------------------------------------------------------------------------------------- training


def train(args: argparse.Namespace) -> str:
    """Runs training and writes a ``DiffusionPipeline`` folder (plus model card) to ``args.output_dir``.

    Returns the output folder.
    """
    from accelerate import Accelerator
    from accelerate.logging import get_logger
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    validate_args(args)
    fill_joint_defaults(args)
    joint = args.prediction_type == "joint"
    acc_logger = get_logger(__name__)
    project_config = ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir))
    report_to = None if args.report_to == "none" else args.report_to
    if report_to == "all":
        from accelerate.tracking import get_available_trackers

        # accelerate warns on every run when "all" finds no tracker installed; then log to the console only
        report_to = "all" if get_available_trackers() else None
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=report_to,
        project_config=project_config,
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    acc_logger.info(accelerator.state, main_process_only=False)
    set_seed(args.seed)  # model initialisation; data and noise use their own keyed generators

    resume_path = resolve_checkpoint(args.resume_from_checkpoint, args.output_dir) if args.resume_from_checkpoint else None
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)

    dataset = load_training_dataset(
        args.dataset_name, args.train_data_dir, resolution=args.resolution, resize_mode=args.resize_mode,
        image_column=args.image_column, dataset_config_name=args.dataset_config_name,
        dataset_options=args.dataset_options, cache_dir=args.cache_dir, max_train_samples=args.max_train_samples, seed=args.seed,
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    micro_per_epoch = len(dataset) // (args.train_batch_size * world)
    steps_per_epoch = micro_per_epoch // args.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(dataset)} images give no full optimisation step of train_batch_size {args.train_batch_size} × "
            f"{world} process(es) × gradient_accumulation_steps {args.gradient_accumulation_steps}."
        )
    max_steps = args.max_train_steps or args.num_epochs * steps_per_epoch
    num_epochs = math.ceil(max_steps / steps_per_epoch)

    model = load_init_unet(args, dataset.num_channels) if args.init_unet else build_unet(args, dataset.num_channels)
    noise_scheduler = build_noise_scheduler(args)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay, eps=args.adam_epsilon,
    )
    # A prepared LR scheduler steps once per process per optimisation step, hence the factor `world`.
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer=optimizer, num_warmup_steps=args.lr_warmup_steps * world,
                                 num_training_steps=max_steps * world)
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    ema = None
    if args.use_ema:
        ema = EMAModel(accelerator.unwrap_model(model).parameters(), decay=args.ema_max_decay, use_ema_warmup=True,
                       inv_gamma=args.ema_inv_gamma, power=args.ema_power)
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(_CheckpointableEMA(ema))

    if accelerator.is_main_process:
        accelerator.init_trackers(os.path.basename(os.path.normpath(args.output_dir)) or "train",
                                  config={k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in vars(args).items()})

    global_step, last_loss = 0, None
    if resume_path is not None:
        accelerator.print(f"resuming from {resume_path}")
        accelerator.load_state(resume_path)
        global_step = checkpoint_step(resume_path)

    total_batch = args.train_batch_size * world * args.gradient_accumulation_steps
    acc_logger.info(f"***** training: {len(dataset)} images, {max_steps} steps of {total_batch} images, "
                    f"{num_epochs} epoch(s), starting at step {global_step} *****")
    progress = tqdm(total=max_steps, initial=global_step, disable=not accelerator.is_local_main_process, desc="steps")
    crash_after = os.environ.get(CRASH_AFTER_STEP_ENV)
    first_epoch = global_step // steps_per_epoch
    for epoch in range(first_epoch, num_epochs):
        model.train()
        batches = epoch_batches(len(dataset), epoch, args.seed, args.train_batch_size, world, rank)
        batches = batches[: steps_per_epoch * args.gradient_accumulation_steps]
        skip = (global_step - epoch * steps_per_epoch) * args.gradient_accumulation_steps if epoch == first_epoch else 0
        for micro_in_epoch in range(skip, len(batches)):
            if global_step >= max_steps:  # resuming a finished run only re-exports it
                break
            micro_step = epoch * len(batches) + micro_in_epoch
            clean = torch.stack([dataset[int(i)]["input"] for i in batches[micro_in_epoch]]).to(accelerator.device)
            with accelerator.accumulate(model):
                generator = micro_batch_generator(args.seed, micro_step, rank)
                if joint:
                    terms = joint_diffusion_loss(model, noise_scheduler, clean, generator, gamma=args.joint_gamma, norm=args.joint_loss_norm)
                    loss = terms.total
                else:
                    loss = diffusion_loss(model, noise_scheduler, clean, args.prediction_type, generator)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            if ema is not None:
                ema.step(accelerator.unwrap_model(model).parameters())
            global_step += 1
            progress.update(1)
            last_loss = loss.detach().item()
            logs = {"loss": last_loss, "lr": lr_scheduler.get_last_lr()[0], "step": global_step}
            if joint:  # the three terms of eq. 12 (last micro-batch), velocity unweighted
                logs.update(loss_x0=terms.x0.item(), loss_epsilon=terms.epsilon.item(), loss_velocity=terms.velocity.item())
            if ema is not None:
                logs["ema_decay"] = ema.cur_decay_value
            progress.set_postfix(loss=f"{logs['loss']:.4f}")
            if global_step % args.logging_steps == 0 or global_step == max_steps:
                accelerator.log(logs, step=global_step)
            if global_step % args.checkpointing_steps == 0:
                path = save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
                acc_logger.info(f"saved {path}")
                if crash_after is not None and global_step == int(crash_after):
                    raise SimulatedCrash(f"{CRASH_AFTER_STEP_ENV}={crash_after}: stopping after the step-{global_step} checkpoint")
        if global_step >= max_steps:
            break
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unet = accelerator.unwrap_model(model)
        if ema is not None:
            ema.copy_to(unet.parameters())
        save_pipeline(unet, noise_scheduler, args)
        from .hub import write_model_card

        write_model_card(args.output_dir, args, final_loss=last_loss, num_processes=world, total_steps=max_steps)
        accelerator.print(f"saved the pipeline and its model card to {args.output_dir} (load it with "
                          f"DiffusionPipeline.from_pretrained({args.output_dir!r}))")
        if args.push_to_hub:
            from .hub import push_folder

            push_folder(args.output_dir, args.hub_model_id or os.path.basename(os.path.normpath(args.output_dir)), private=args.hub_private_repo)
    accelerator.end_training()
    return args.output_dir


def save_pipeline(unet, noise_scheduler, args: argparse.Namespace) -> None:
    """Writes ``unet/``, ``scheduler/`` and ``model_index.json`` plus the training arguments: a ``DDPMPipeline``,
    or for ``--prediction_type joint`` a ``JointTrigPipeline`` (``JointUNet2DModel`` + ``TrigAngleRKScheduler``),
    which ``DiffusionPipeline.from_pretrained`` loads once ``diffusers_infoflow`` is imported."""
    from diffusers import DDPMPipeline

    from .pipelines.joint_trig import JointTrigPipeline

    pipeline_class = JointTrigPipeline if args.prediction_type == "joint" else DDPMPipeline
    pipeline_class(unet=unet, scheduler=noise_scheduler).save_pretrained(args.output_dir)
    record = {k: v for k, v in vars(args).items() if k not in ("push_to_hub",)}
    with open(os.path.join(args.output_dir, TRAINING_ARGS_FILE), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True, default=str)
