"""Bookkeeping shared by every scheduler of the package: reading any diffusers config into the model interface,
the step index and img2img starts, output checks."""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional, Union

import torch

from ..model_interface import ModelInterface, scheduler_kwargs_from_config


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


class ModelInterfaceMixin:
    """The model interface of a scheduler, built from its own config, and a `from_config` that reads any diffusers
    scheduler config (VP tables, EDM, flow matching) instead of dropping the keys it does not know.

    A scheduler using it sets `self.interface = ModelInterface.from_config(self.config)` in `__init__`.
    """

    interface: ModelInterface

    @classmethod
    def from_config(cls, config: Optional[Mapping[str, Any]] = None, return_unused_kwargs: bool = False, **kwargs):
        """diffusers' `from_config`, after :func:`~diffusers_infoflow.model_interface.scheduler_kwargs_from_config`:
        the source class sets `noise_family`, every key that changes the maths is read, and a key or value that
        cannot be honoured raises a `ValueError` naming it."""
        accepted = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
        unknown = sorted(key for key in kwargs if key not in accepted)
        if unknown:  # diffusers would drop an option given here with a warning; it was asked for, so refuse it
            hint = " (its rungs are `step_spacing`)" if "timestep_spacing" in unknown else ""
            raise ValueError(f"{cls.__name__} has no option(s) {unknown}{hint}; it reads {accepted}.")
        translated = scheduler_kwargs_from_config(config or {}, accepted, cls.__name__)
        return super().from_config({**translated, "_class_name": cls.__name__}, return_unused_kwargs=return_unused_kwargs, **kwargs)

    def _call_logsnr(self, index: int) -> float:
        """The level λ the model is told at call `index` of the current ladder."""
        raise NotImplementedError

    def _place_by_information(self, num_rungs: int, start: float, end: float) -> torch.Tensor:
        """`num_rungs` levels from λ = `start` to `end` placed by the config's `information_curve` (the `information`
        spacing; `self.information` is set from the config by `step_placement.information_placement`)."""
        return self.information.place(num_rungs, start, end, self.config.information_measure, self.config.information_power)

    def scale_model_input(self, sample: torch.Tensor, timestep: Optional[Union[float, torch.Tensor]] = None) -> torch.Tensor:
        """What the model sees of the sample at `timestep`: EDM's c_in scaling, unchanged for other families."""
        if self.interface.preconditioning == "none":
            return sample
        if self.num_inference_steps is None:
            raise ValueError("call `set_timesteps` before `scale_model_input`.")
        if self._step_index is None:
            self._init_step_index(timestep)
        return self.interface.scale_model_input(self._model_state(sample, self._step_index), self._call_logsnr(self._step_index))

    def _model_state(self, sample: torch.Tensor, index: int) -> torch.Tensor:
        """The sample in the family's units at the level the model is told at call `index` (the same here)."""
        return sample

    @property
    def init_noise_sigma(self) -> float:
        """The standard deviation of the pure-noise start a pipeline draws (`randn · init_noise_sigma`): the family's
        state scale at the first rung of the current ladder (before `set_timesteps`, at the model's noisiest level)."""
        if self.num_inference_steps is None:
            return self.interface.init_noise_sigma
        return float(self.interface.scale(torch.tensor([self._call_logsnr(0)], dtype=torch.float64)))

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The model family's forward marginal at model timesteps (entries of `timesteps`, fractional allowed)."""
        return self.interface.add_noise(original_samples, noise, timesteps)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The v-prediction training target a·ε − b·x0 of the clean `sample` at model timesteps (diffusers'
        `DDPMScheduler.get_velocity` on a β table); refused under EDM preconditioning, whose v is another target."""
        return self.interface.velocity(sample, noise, timesteps)

    def scale_noise(self, sample: torch.Tensor, timestep: torch.Tensor, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Flow-matching pipelines' name for :meth:`add_noise` (img2img starts of SD3/FLUX)."""
        if noise is None:
            raise ValueError("scale_noise needs `noise`.")
        return self.interface.add_noise(sample, noise, torch.as_tensor(timestep).flatten())

    def __len__(self) -> int:
        return self.config.num_train_timesteps
