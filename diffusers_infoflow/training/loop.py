"""The training loop: :func:`train`, unconditional DDPM training with 🤗 Accelerate in the conventions of
diffusers' ``train_unconditional.py``.

``scripts/train.py`` parses the command line; :func:`train` checks the arguments itself (:func:`validate_args`),
so it is safe with an ``argparse.Namespace`` from anywhere.

Resuming loses nothing: the run is a pure function of ``--seed`` and the optimisation step.

* Data order: epoch ``e`` is the permutation drawn from ``seed + e``; a global batch of
  ``train_batch_size × num_processes`` images is split between processes in rank order, and the last
  incomplete global batch of an epoch is dropped, so step ``k`` always sees the same images.
* Noise and timesteps of micro-batch ``m`` on process ``r`` come from a generator seeded by
  ``(seed, m, r)``, so no random state has to survive a restart.
* ``--prediction_type joint`` (seed 004) draws its noise and timesteps from the same keyed generator, in the
  same order, so it resumes exactly too.
* Model, optimizer, LR scheduler and EMA go through ``accelerator.save_state``/``load_state``, into
  ``checkpoint-N`` folders that are only ever complete (:mod:`.checkpointing`), with the last step's loss for
  the model card of a resumed run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from typing import List

import numpy as np
import torch

from ..data import load_training_dataset
from ..schedules import get_betas
from .build import (
    JOINT_DEFAULTS,
    PREDICTION_TYPES,
    _unet_folder,
    build_noise_scheduler,
    build_unet,
    default_norm_groups,
    load_init_unet,
)
from .checkpointing import (
    CRASH_AFTER_STEP_ENV,
    SimulatedCrash,
    _CheckpointableEMA,
    checkpoint_last_loss,
    checkpoint_step,
    remove_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from .losses import diffusion_loss, joint_diffusion_loss


TRAINING_ARGS_FILE = "infoflow_training_args.json"


def fill_joint_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Sets the unset ``--joint_*`` options of a joint run to :data:`JOINT_DEFAULTS` (in place; returns ``args``)."""
    if args.prediction_type == "joint":
        for name, default in JOINT_DEFAULTS.items():
            if getattr(args, name, None) is None:
                setattr(args, name, default)
    return args


def validate_args(args: argparse.Namespace) -> None:
    """Cross-argument checks that argparse cannot do; raises ``ValueError`` naming the bad value."""
    if (args.dataset_name is None) == (args.train_data_dir is None):
        raise ValueError("give exactly one of --dataset_name and --train_data_dir.")
    if args.prediction_type not in PREDICTION_TYPES:  # argparse checks it; a Namespace built by hand is not parsed
        raise ValueError(f"--prediction_type must be one of {PREDICTION_TYPES}, got {args.prediction_type!r}.")
    if args.snr_gamma is not None and (args.prediction_type == "joint" or not args.snr_gamma > 0):
        raise ValueError(f"--snr_gamma must be > 0 and needs --prediction_type epsilon, sample or v_prediction; got "
                         f"{args.snr_gamma} with {args.prediction_type!r}.")
    for name in ("resolution", "train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "layers_per_block",
                 "num_train_timesteps", "num_epochs", "logging_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}.")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise ValueError(f"--max_train_steps must be >= 1, got {args.max_train_steps}.")
    if args.max_train_samples is not None and args.max_train_samples < 1:
        raise ValueError(f"--max_train_samples must be >= 1, got {args.max_train_samples}.")
    if args.num_card_samples < 0:
        raise ValueError(f"--num_card_samples must be >= 0, got {args.num_card_samples}.")
    if args.save_model_steps is not None and args.save_model_steps < 1:
        raise ValueError(f"--save_model_steps must be >= 1, got {args.save_model_steps}.")
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
    if args.report_to not in ("all", "none"):
        from accelerate.tracking import get_available_trackers

        available = [str(getattr(t, "value", t)) for t in get_available_trackers()]
        missing = [name for name in args.report_to.split(",") if name.strip() not in available]
        if missing:
            raise ValueError(f"--report_to {args.report_to!r}: {missing} not installed here (installed: {available}); "
                             "install it, or use 'all' (those installed) or 'none'.")
    if args.push_to_hub or args.hub_model_id is not None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(args.hub_model_id or os.path.basename(os.path.normpath(args.output_dir)))
        except HFValidationError as err:
            raise ValueError(f"--hub_model_id: {err}") from None
    if args.overwrite_output_dir and args.resume_from_checkpoint is not None:
        raise ValueError("--overwrite_output_dir starts a new run in --output_dir (its checkpoints are removed); it cannot "
                         "be combined with --resume_from_checkpoint.")
    if not args.overwrite_output_dir and os.path.isdir(args.output_dir):
        from .checkpointing import list_checkpoints

        checkpoints = list_checkpoints(args.output_dir)
        trained = os.path.isfile(os.path.join(args.output_dir, "model_index.json"))
        if args.resume_from_checkpoint is None and (checkpoints or trained):
            raise ValueError(f"--output_dir {args.output_dir!r} holds a trained model or checkpoints of another run; "
                             "resume it (--resume_from_checkpoint latest), pick a new folder, or pass --overwrite_output_dir.")
        if args.resume_from_checkpoint == "latest" and trained and not checkpoints:
            raise ValueError(f"--resume_from_checkpoint latest: --output_dir {args.output_dir!r} holds a trained model but "
                             "no checkpoint to resume; pick a new folder, or start over with --overwrite_output_dir.")
    if args.card_notes is not None and not os.path.isfile(args.card_notes):
        raise ValueError(f"--card_notes {args.card_notes!r} is not a file.")
    validate_joint_args(args)
    validate_card_args(args)


def validate_card_args(args: argparse.Namespace) -> None:
    """Whether ``--card_scheduler`` can draw the card's grid in ``--card_inference_steps`` model calls, checked on
    the scheduler the run will save (:func:`~diffusers_infoflow.sampling.check_sampler_runs`) before any training;
    ``ValueError`` naming both if not."""
    if args.num_card_samples == 0:
        return
    from ..hub import card_scheduler, default_card_scheduler
    from ..sampling import check_sampler_runs

    joint = args.prediction_type == "joint"
    config = build_noise_scheduler(args).config
    given = getattr(args, "card_scheduler", None)
    name = given or default_card_scheduler(config, joint)
    try:
        scheduler, steps, _ = card_scheduler(config, args.card_inference_steps, joint, name)
        check_sampler_runs(scheduler, steps)
    except ValueError as err:
        raise ValueError(
            f"--card_inference_steps {args.card_inference_steps} model calls cannot sample the card's grid with {name} "
            f"({err}); change --card_inference_steps, pick another "
            + ("--joint_solver" if joint and not given else "--card_scheduler") + ", or set --num_card_samples 0."
        ) from None


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
    if args.resume_from_checkpoint == "latest" and resume_path is None:
        acc_logger.info(f"--resume_from_checkpoint latest: no checkpoint in {args.output_dir!r} yet; starting a new run.")
    if resume_path is not None:
        # the EMA weights are accelerate's only custom checkpoint object: the run must keep or leave out EMA as saved
        saved_ema = any(name.startswith("custom_checkpoint_") for name in os.listdir(resume_path))
        if saved_ema != bool(args.use_ema):
            raise ValueError(f"--resume_from_checkpoint {resume_path!r} was saved {'with' if saved_ema else 'without'} "
                             f"--use_ema; resume it {'with' if saved_ema else 'without'} --use_ema too.")
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
        try:
            accelerator.load_state(resume_path)
        except RuntimeError as err:  # torch's state-dict mismatch: a checkpoint of another architecture or objective
            if "state_dict" not in str(err):
                raise
            raise ValueError(f"--resume_from_checkpoint {resume_path!r} holds a model of another shape than this command "
                             "builds (--block_out_channels, --layers_per_block, --attention, --prediction_type ...); give "
                             "the run's own flags.") from None
        global_step, last_loss = checkpoint_step(resume_path), checkpoint_last_loss(resume_path)
    elif args.overwrite_output_dir:
        if accelerator.is_main_process:
            remove_checkpoints(args.output_dir)
        accelerator.wait_for_everyone()

    total_batch = args.train_batch_size * world * args.gradient_accumulation_steps
    acc_logger.info(f"***** training: {len(dataset)} images, {max_steps} steps of {total_batch} images, "
                    f"{num_epochs} epoch(s), starting at step {global_step} *****")
    progress = tqdm(total=max_steps, initial=global_step, disable=not accelerator.is_local_main_process, desc="steps")
    crash_after = os.environ.get(CRASH_AFTER_STEP_ENV)
    first_epoch = global_step // steps_per_epoch
    window_losses = []  # the micro-batch losses of the optimisation step being accumulated
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
                    loss = diffusion_loss(model, noise_scheduler, clean, args.prediction_type, generator, args.snr_gamma)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            window_losses.append(loss.detach())
            if not accelerator.sync_gradients:
                continue
            if ema is not None:
                ema.step(accelerator.unwrap_model(model).parameters())
            global_step += 1
            progress.update(1)
            # the step's loss: the mean over its micro-batches and every process's share
            last_loss = accelerator.gather(torch.stack(window_losses).mean().reshape(1)).mean().item()
            window_losses = []
            logs = {"loss": last_loss, "lr": lr_scheduler.get_last_lr()[0], "step": global_step}
            if joint:  # the three terms of eq. 12 (last micro-batch), velocity unweighted
                logs.update(loss_x0=terms.x0.item(), loss_epsilon=terms.epsilon.item(), loss_velocity=terms.velocity.item())
            if ema is not None:
                logs["ema_decay"] = ema.cur_decay_value
            progress.set_postfix(loss=f"{logs['loss']:.4f}")
            if global_step % args.logging_steps == 0 or global_step == max_steps:
                accelerator.log(logs, step=global_step)
            if args.save_model_steps and global_step % args.save_model_steps == 0 and global_step < max_steps and accelerator.is_main_process:
                export_pipeline(accelerator.unwrap_model(model), ema, noise_scheduler, args, step=global_step,
                                total_steps=max_steps, last_loss=last_loss, num_processes=world)
                acc_logger.info(f"saved the step-{global_step} pipeline to {args.output_dir}")
            if global_step % args.checkpointing_steps == 0:
                path = save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit, last_loss)
                acc_logger.info(f"saved {path}")
                if crash_after is not None and global_step == int(crash_after):
                    raise SimulatedCrash(f"{CRASH_AFTER_STEP_ENV}={crash_after}: stopping after the step-{global_step} checkpoint")
        if global_step >= max_steps:
            break
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        export_pipeline(accelerator.unwrap_model(model), ema, noise_scheduler, args, step=global_step, total_steps=max_steps,
                        last_loss=last_loss, num_processes=world)
        accelerator.print(f"saved the pipeline and its model card to {args.output_dir} (load it with "
                          f"DiffusionPipeline.from_pretrained({args.output_dir!r}))")
        if args.push_to_hub:
            from ..hub import push_folder

            push_folder(args.output_dir, args.hub_model_id or os.path.basename(os.path.normpath(args.output_dir)), private=args.hub_private_repo)
    accelerator.end_training()
    return args.output_dir


def export_pipeline(unet, ema, noise_scheduler, args: argparse.Namespace, *, step: int, total_steps: int,
                    last_loss, num_processes: int) -> None:
    """Saves the pipeline (with the EMA weights when there are any) and its model card to ``args.output_dir``; the
    training weights are left as they were, so a snapshot taken mid-run does not change the run."""
    from ..hub import write_model_card

    if ema is not None:
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
    try:
        save_pipeline(unet, noise_scheduler, args)
    finally:
        if ema is not None:
            ema.restore(unet.parameters())
    write_model_card(args.output_dir, args, final_loss=last_loss, num_processes=num_processes, total_steps=total_steps,
                     trained_steps=step)


def save_pipeline(unet, noise_scheduler, args: argparse.Namespace) -> None:
    """Writes ``unet/``, ``scheduler/`` and ``model_index.json`` plus the training arguments: a ``DDPMPipeline``,
    or for ``--prediction_type joint`` a ``JointTrigPipeline`` (``JointUNet2DModel`` + ``TrigAngleRKScheduler``),
    which ``DiffusionPipeline.from_pretrained`` loads once ``diffusers_infoflow`` is imported."""
    from diffusers import DDPMPipeline

    from ..pipelines.joint_trig import JointTrigPipeline

    pipeline_class = JointTrigPipeline if args.prediction_type == "joint" else DDPMPipeline
    pipeline_class(unet=unet, scheduler=noise_scheduler).save_pretrained(args.output_dir)
    record = {k: v for k, v in vars(args).items() if k not in ("push_to_hub",)}
    with open(os.path.join(args.output_dir, TRAINING_ARGS_FILE), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True, default=str)
