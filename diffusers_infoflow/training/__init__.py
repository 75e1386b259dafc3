"""Training of unconditional diffusion UNets with 🤗 Accelerate; ``scripts/train.py`` is its command line.

- ``build``: the UNet (``UNet2DModel``, or ``JointUNet2DModel`` for joint ``[ε, x0]`` prediction) and the saved
  noise scheduler of a run.
- ``losses``: the diffusion losses, DDPM's ε/x0/v objectives and seed 004's joint loss (eq. 12).
- ``checkpointing``: atomic ``checkpoint-N`` folders and the one to resume from.
- ``loop``: :func:`train` and the checks of its arguments; its docstring says how resuming stays exact.
"""

from .build import (
    JOINT_DEFAULTS,
    PREDICTION_TYPES,
    build_noise_scheduler,
    build_unet,
    default_norm_groups,
    diffusers_schedule_config,
    load_init_unet,
)
from .checkpointing import (
    CHECKPOINT_PREFIX,
    CRASH_AFTER_STEP_ENV,
    SimulatedCrash,
    checkpoint_last_loss,
    checkpoint_step,
    list_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from .loop import (
    TRAINING_ARGS_FILE,
    epoch_batches,
    fill_joint_defaults,
    micro_batch_generator,
    save_pipeline,
    train,
    validate_args,
    validate_joint_args,
)
from .losses import (
    LOSS_NORMS,
    JointLoss,
    diffusion_loss,
    joint_diffusion_loss,
    joint_trig_loss,
    min_snr_weights,
    training_angles,
    trig_noisy_sample,
)


__all__ = [
    "CHECKPOINT_PREFIX",
    "CRASH_AFTER_STEP_ENV",
    "JOINT_DEFAULTS",
    "LOSS_NORMS",
    "PREDICTION_TYPES",
    "TRAINING_ARGS_FILE",
    "JointLoss",
    "SimulatedCrash",
    "build_noise_scheduler",
    "build_unet",
    "checkpoint_last_loss",
    "checkpoint_step",
    "default_norm_groups",
    "diffusers_schedule_config",
    "diffusion_loss",
    "epoch_batches",
    "fill_joint_defaults",
    "joint_diffusion_loss",
    "min_snr_weights",
    "joint_trig_loss",
    "list_checkpoints",
    "load_init_unet",
    "micro_batch_generator",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_pipeline",
    "train",
    "training_angles",
    "trig_noisy_sample",
    "validate_args",
    "validate_joint_args",
]
