"""Bookkeeping shared by every scheduler of the package: the step index, img2img starts, forward noising."""

from __future__ import annotations

from typing import Optional, Union

import torch

from ..schedules import NoiseSchedule


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
    if not torch.isfinite(model_output).all():
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
