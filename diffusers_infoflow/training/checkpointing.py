"""Checkpoints of a training run: ``checkpoint-N`` folders of ``accelerator.save_state``.

A checkpoint is written to ``checkpoint-N.tmp`` and renamed when complete, so a run killed mid-save never
leaves a truncated ``checkpoint-N`` for ``--resume_from_checkpoint latest`` to pick up.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import List, Optional


logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
# Test hook: stop with SimulatedCrash right after the checkpoint of this step is written (no final save).
CRASH_AFTER_STEP_ENV = "INFOFLOW_CRASH_AFTER_STEP"
# What accelerate's state does not hold: the last step's loss, so that a resumed finished run's card still states it.
RUN_STATE_FILE = "infoflow_run_state.json"


class SimulatedCrash(RuntimeError):
    """Raised by the INFOFLOW_CRASH_AFTER_STEP test hook in place of a real failure."""


def list_checkpoints(output_dir: str) -> List[str]:
    """Complete ``checkpoint-N`` folders in ``output_dir``, oldest first."""
    if not os.path.isdir(output_dir):
        return []
    names = [d for d in os.listdir(output_dir) if d.startswith(CHECKPOINT_PREFIX) and d[len(CHECKPOINT_PREFIX):].isdigit()]
    return [os.path.join(output_dir, d) for d in sorted(names, key=lambda d: int(d[len(CHECKPOINT_PREFIX):]))]


def resolve_checkpoint(resume_from_checkpoint: str, output_dir: str) -> Optional[str]:
    """The folder to resume from. ``'latest'`` with no checkpoint in ``output_dir`` is ``None`` (a new run, as in
    diffusers' training scripts), so that one command both starts a run and resumes it; a named folder must exist."""
    if resume_from_checkpoint == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
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
        # accelerate loads custom objects onto the CPU and EMAModel keeps the tensors it is given: move them back
        # to where the shadow weights lived, or the first ema.step mixes devices on a GPU.
        device = self.ema.shadow_params[0].device if self.ema.shadow_params else None
        self.ema.load_state_dict(state)
        if device is not None:
            self.ema.to(device=device)


def checkpoint_last_loss(path: str) -> Optional[float]:
    """The loss of the last step before the checkpoint at ``path``; None for checkpoints written before it was kept."""
    state_file = os.path.join(path, RUN_STATE_FILE)
    if not os.path.isfile(state_file):
        return None
    with open(state_file) as f:
        return json.load(f)["last_loss"]


def save_checkpoint(accelerator, output_dir: str, step: int, total_limit: Optional[int],
                    last_loss: Optional[float] = None) -> str:
    """``accelerator.save_state`` (and ``last_loss``) into ``checkpoint-step`` atomically (temporary folder, then
    rename), then removes the oldest other checkpoints so at most ``total_limit`` remain (only once the new one is
    complete, so a crash while saving still leaves the previous one)."""
    final = os.path.join(output_dir, f"{CHECKPOINT_PREFIX}{step}")
    staging = final + ".tmp"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(staging)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(os.path.join(staging, RUN_STATE_FILE), "w") as f:
            json.dump({"last_loss": last_loss}, f)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        if total_limit is not None:
            older = [path for path in list_checkpoints(output_dir) if path != final]
            for old in older[: max(0, len(older) + 1 - total_limit)]:
                logger.info(f"removing old checkpoint {old}")
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def remove_checkpoints(output_dir: str) -> None:
    """Deletes every ``checkpoint-N`` (and unfinished ``checkpoint-N.tmp``) folder in ``output_dir``: with
    ``--overwrite_output_dir`` a new run must not resume from, or prune by, another run's checkpoints."""
    if not os.path.isdir(output_dir):
        return
    for name in os.listdir(output_dir):
        if name.startswith(CHECKPOINT_PREFIX) and os.path.isdir(os.path.join(output_dir, name)):
            logger.info(f"--overwrite_output_dir: removing {name} of the earlier run")
            shutil.rmtree(os.path.join(output_dir, name))
