"""Bookkeeping shared by every scheduler of the package: the training table from a diffusers-style config,
timestep spacings, the step index, img2img starts, forward noising."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from ..schedules import DIFFUSERS_BETA_SCHEDULE_ALIASES, DiscreteSchedule, NoiseSchedule, get_betas


class StepIndexMixin:
    """diffusers' `_step_index`/`_begin_index` protocol, written once.

    A scheduler using it sets `self._step_index = self._begin_index = None` in `set_timesteps` and calls
    `self._init_step_index(timestep)` at its first `step`.
    """

    _step_index: Optional[int] = None
    _begin_index: Optional[int] = None
    timesteps: torch.Tensor

    @property
    def step_index(self) -> Optional[int]:
        """The index of the current entry of `timesteps`; it advances by one after each `step`."""
        return self._step_index

    @property
    def begin_index(self) -> Optional[int]:
        """The first entry to run, set by a pipeline with `set_begin_index` (img2img-style starts)."""
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Sets the index of the first entry of `timesteps` to run (call before the first `step`)."""
        if isinstance(begin_index, bool) or not isinstance(begin_index, int) or not 0 <= begin_index < len(self.timesteps):
            raise ValueError(f"begin_index must be an integer in [0, {len(self.timesteps) - 1}], got {begin_index!r}.")
        self._begin_index = begin_index

    def index_for_timestep(self, timestep: Union[float, torch.Tensor], schedule_timesteps: Optional[torch.Tensor] = None) -> int:
        """The index of the first entry of `schedule_timesteps` (default `self.timesteps`) equal to `timestep`."""
        schedule_timesteps = self.timesteps if schedule_timesteps is None else schedule_timesteps
        t = torch.as_tensor(timestep, device=schedule_timesteps.device).to(schedule_timesteps.dtype)
        matches = (schedule_timesteps == t).nonzero()
        if len(matches) == 0:
            raise ValueError(f"timestep {float(t)} is not in this scheduler's timesteps; call set_timesteps first.")
        return int(matches[0])

    def _init_step_index(self, timestep: Union[float, torch.Tensor]) -> None:
        self._step_index = self.index_for_timestep(timestep) if self._begin_index is None else self._begin_index


def check_model_output(model_output: torch.Tensor, expected_shape: torch.Size, timestep, what: str) -> None:
    """Shape and finiteness of a model's prediction, with an error that says what was expected."""
    if model_output.shape != expected_shape:
        raise ValueError(f"model_output has shape {tuple(model_output.shape)} but {what} {tuple(expected_shape)}.")
    check_finite(model_output, timestep)


def check_finite(model_output: torch.Tensor, timestep) -> None:
    """Raises on NaN/inf in a model output. A NaN or inf element always makes the sum non-finite, so one
    reduction decides the common case; the full elementwise test runs only when the sum is not finite
    (which finite values can also reach by overflow in half precision)."""
    if not torch.isfinite(model_output.sum()) and not torch.isfinite(model_output).all():
        raise ValueError(f"model_output contains NaN or infinite values at timestep {float(torch.as_tensor(timestep))}.")


def forward_marginal(schedule: NoiseSchedule, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
    """`α_t x0 + σ_t ε` at the schedule's times `timesteps` (one per sample, or one for all), in the samples' dtype."""
    if noise.shape != original_samples.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} differs from the samples' {tuple(original_samples.shape)}.")
    t = torch.as_tensor(timesteps).flatten()
    alpha = schedule.alpha(t).to(original_samples.device, original_samples.dtype)
    sigma = schedule.sigma(t).to(original_samples.device, original_samples.dtype)
    shape = (-1,) + (1,) * (original_samples.ndim - 1)
    return alpha.view(shape) * original_samples + sigma.view(shape) * noise


def family_params(name: str, beta_start: float, beta_end: float, extra: Optional[Dict[str, float]]) -> Dict[str, float]:
    """The keyword arguments of `get_betas` for a family: the β range where the family takes one, plus extras."""
    canonical = DIFFUSERS_BETA_SCHEDULE_ALIASES.get(name, name)
    params: Dict[str, float] = {}
    if canonical in ("linear", "quadratic", "sigmoid", "power", "wave"):
        params.update(beta_start=beta_start, beta_end=beta_end)
    params.update(extra or {})
    return params


def training_schedule(
    num_train_timesteps: int,
    beta_schedule: str,
    beta_start: float,
    beta_end: float,
    trained_betas: Optional[Union[np.ndarray, Sequence[float]]] = None,
    schedule_params: Optional[Dict[str, float]] = None,
) -> DiscreteSchedule:
    """The model's training table from diffusers' config keys: `trained_betas` if given, else the named family."""
    if trained_betas is not None:
        betas = torch.as_tensor(np.asarray(trained_betas), dtype=torch.float64)
        if betas.numel() != num_train_timesteps:
            raise ValueError(f"trained_betas has {betas.numel()} entries but num_train_timesteps = {num_train_timesteps}.")
        return DiscreteSchedule.from_betas(betas)
    params = family_params(beta_schedule, beta_start, beta_end, schedule_params)
    return DiscreteSchedule.from_betas(get_betas(beta_schedule, num_train_timesteps, **params))


def spaced_indices(spacing: str, num_train: int, num_steps: int, steps_offset: int) -> np.ndarray:
    """diffusers' three timestep spacings (Lin et al. 2023, Table 2) as descending 0-based indices."""
    if spacing == "linspace":
        idx = np.linspace(0, num_train - 1, num_steps).round()[::-1].astype(np.int64)
    elif spacing == "leading":
        idx = (np.arange(0, num_steps) * (num_train // num_steps)).round()[::-1].astype(np.int64) + steps_offset
    else:
        idx = np.round(np.arange(num_train, 0, -num_train / num_steps)).astype(np.int64) - 1
    return idx.copy()
