"""Exact denoisers that stand in for a trained ``UNet2DModel``: no training, known ground truth.

* :class:`EmpiricalDenoiser` is the Bayes-optimal denoiser of a finite data set: ``E[x0 | x_t]`` is a
  softmax-weighted average of the data points. Sampling with it and many steps lands on data points.
* :class:`GaussianDenoiser` is the exact denoiser of ``x0 ~ N(μ, diag(v))``; its probability-flow ODE has
  the closed-form solution :meth:`GaussianDenoiser.ode_solution`, so solver errors can be measured exactly.

Both are called like a diffusers UNet, ``model(sample, timestep).sample``. Built with a
:class:`~diffusers_infoflow.schedules.NoiseSchedule`, ``timestep`` is that schedule's time (for a
:class:`~diffusers_infoflow.schedules.DiscreteSchedule`: diffusers' model timestep, fractional allowed) and the
sample is its state. Built with a :class:`~diffusers_infoflow.model_interface.ModelInterface` (e.g. a
scheduler's ``.interface``), they answer exactly as a checkpoint of that family: told its timestep (EDM's
c_noise, flow matching's t·1000, ...), fed its scaled input, giving its kind of output.
"""

from __future__ import annotations

from typing import Literal, Optional, Sequence, Tuple, Union

import torch
from diffusers.configuration_utils import FrozenDict
from diffusers.models.unets.unet_2d import UNet2DOutput

from ..model_interface import ModelInterface
from ..schedules import NoiseSchedule


__all__ = ["EmpiricalDenoiser", "GaussianDenoiser", "PREDICTION_TYPES"]

PredictionType = Literal["epsilon", "sample", "v_prediction", "joint"]
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "joint")


class _ExactDenoiser(torch.nn.Module):
    """Shared calling convention: timestep → (α, σ), posterior mean → the requested prediction."""

    def __init__(
        self, sample_shape: Sequence[int], schedule: Union[NoiseSchedule, ModelInterface], prediction_type: Optional[PredictionType]
    ):
        super().__init__()
        if isinstance(schedule, ModelInterface):
            if prediction_type not in (None, schedule.prediction_type):
                raise ValueError(f"prediction_type={prediction_type!r} disagrees with the interface's {schedule.prediction_type!r}; omit it.")
            self.interface, schedule, prediction_type = schedule, schedule.schedule, schedule.prediction_type
        else:
            self.interface = None
            prediction_type = prediction_type or "epsilon"
            if prediction_type not in PREDICTION_TYPES:
                raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")
            if not isinstance(schedule, NoiseSchedule):
                raise TypeError(f"`schedule` must be a NoiseSchedule or a ModelInterface, got {type(schedule).__name__}.")
        channels, height, width = (int(s) for s in sample_shape)
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.sample_shape = (channels, height, width)
        out_channels = 2 * channels if prediction_type == "joint" else channels
        # The keys DDPMPipeline and friends read from a UNet's config.
        self.config = FrozenDict(
            sample_size=height if height == width else (height, width),
            in_channels=channels,
            out_channels=out_channels,
            prediction_type=prediction_type,
        )
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # carries .device / .dtype

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def posterior_mean(self, z: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """E[x0 | α x0 + σ ε = z] in float64; ``alpha``/``sigma`` have shape (B, 1, 1, 1)."""
        raise NotImplementedError

    def forward(
        self, sample: torch.Tensor, timestep: Union[torch.Tensor, float, int], return_dict: bool = True, **unused
    ) -> Union[UNet2DOutput, tuple]:
        if tuple(sample.shape[1:]) != self.sample_shape:
            raise ValueError(f"sample of shape {tuple(sample.shape)} does not match the data shape (B, *{self.sample_shape}).")
        batch = sample.shape[0]
        t = torch.as_tensor(timestep, dtype=torch.float64).detach().cpu().flatten()
        if t.numel() == 1:
            t = t.expand(batch)
        if t.numel() != batch:
            raise ValueError(f"got {t.numel()} timesteps for a batch of {batch}.")
        z = sample.to(torch.float64)
        if self.interface is None:
            alpha, sigma = self.schedule.alpha(t), self.schedule.sigma(t)
        else:
            lam = self.interface.logsnr_from_model_timesteps(t)
            alpha, sigma = self.interface.alpha_sigma(lam)
            # undo the family's input scaling (EDM's c_in) to get its state back
            if bool((lam == lam[0]).all()):
                z = self.interface.unscale_model_input(z, float(lam[0]))
            else:
                z = torch.cat([self.interface.unscale_model_input(z[i : i + 1], float(lam[i])) for i in range(batch)])
        alpha, sigma = alpha.view(-1, 1, 1, 1).to(sample.device), sigma.view(-1, 1, 1, 1).to(sample.device)
        x0 = self.posterior_mean(z, alpha, sigma)
        eps = (z - alpha * x0) / sigma
        if self.interface is not None:
            out = self.interface.model_output(x0, eps, z, lam)
        elif self.prediction_type == "epsilon":
            out = eps
        elif self.prediction_type == "sample":
            out = x0
        elif self.prediction_type == "v_prediction":
            out = alpha * eps - sigma * x0
        else:
            out = torch.cat([eps, x0], dim=1)
        out = out.to(sample.dtype)
        return UNet2DOutput(sample=out) if return_dict else (out,)


class EmpiricalDenoiser(_ExactDenoiser):
    """The exact denoiser of the empirical distribution of ``data`` (N, C, H, W).

    ``E[x0 | z] = Σ_i w_i x_i`` with ``w = softmax(−‖z − α x_i‖² / (2σ²))``, computed in float64.

    Args:
        data: the data points, (N, C, H, W).
        schedule: the noise schedule that gives α and σ for a timestep, or a model interface to answer as.
        prediction_type: ``epsilon`` (default), ``sample`` (x0), ``v_prediction`` or ``joint`` ([ε, x0] on
            channels); with an interface, its own.
    """

    def __init__(self, data: torch.Tensor, schedule: Union[NoiseSchedule, ModelInterface], prediction_type: Optional[PredictionType] = None):
        if data.ndim != 4 or data.shape[0] < 1:
            raise ValueError(f"`data` must have shape (N, C, H, W) with N >= 1, got {tuple(data.shape)}.")
        if not torch.isfinite(data).all():
            raise ValueError("`data` contains NaN or infinite values.")
        super().__init__(data.shape[1:], schedule, prediction_type)
        self.register_buffer("data", data.detach().to(torch.float64).flatten(1), persistent=False)

    def posterior_mean(self, z: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        data = self.data.to(z.device)
        flat = z.flatten(1)
        a, s2 = alpha.flatten(1), (sigma**2).flatten(1)
        # ‖z − α x_i‖² = ‖z‖² − 2α z·x_i + α²‖x_i‖²; the ‖z‖² term cancels in the softmax.
        logits = (2 * a * flat @ data.T - a**2 * (data**2).sum(1)[None, :]) / (2 * s2)
        weights = torch.softmax(logits, dim=1)
        return (weights @ data).view_as(z)


class GaussianDenoiser(_ExactDenoiser):
    """The exact denoiser of ``x0 ~ N(mean, diag(variance))``.

    ``E[x0 | z] = μ + α v / (α² v + σ²) · (z − α μ)``. The probability-flow ODE keeps the standardised
    coordinate ``(z − α μ)/sqrt(α² v + σ²)`` constant, which :meth:`ode_solution` uses.
    """

    def __init__(
        self,
        mean: torch.Tensor,
        variance: torch.Tensor,
        schedule: Union[NoiseSchedule, ModelInterface],
        prediction_type: Optional[PredictionType] = None,
    ):
        if mean.ndim != 3 or tuple(variance.shape) != tuple(mean.shape):
            raise ValueError(f"`mean` and `variance` must both have shape (C, H, W); got {tuple(mean.shape)} and {tuple(variance.shape)}.")
        if not bool((variance > 0).all()):
            raise ValueError("every `variance` entry must be > 0.")
        super().__init__(mean.shape, schedule, prediction_type)
        self.register_buffer("mean", mean.detach().to(torch.float64), persistent=False)
        self.register_buffer("variance", variance.detach().to(torch.float64), persistent=False)

    def posterior_mean(self, z: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        mu, v = self.mean.to(z.device), self.variance.to(z.device)
        return mu + alpha * v / (alpha**2 * v + sigma**2) * (z - alpha * mu)

    def _marginal_std(self, alpha: float, sigma: float):
        return alpha, (alpha**2 * self.variance + sigma**2).sqrt()

    def ode_solution(self, sample: torch.Tensor, t_start: float, t_end: float) -> torch.Tensor:
        """Exact probability-flow ODE map from time ``t_start`` to ``t_end`` (either direction), float64; the
        times are the schedule's, or with an interface model timesteps."""
        if self.interface is not None:
            lam = self.interface.logsnr_from_model_timesteps([float(t_start), float(t_end)])
            return self.ode_solution_logsnr(sample, float(lam[0]), float(lam[1]))
        ends = [(self.schedule.alpha(float(t)).item(), self.schedule.sigma(float(t)).item()) for t in (t_start, t_end)]
        return self._flow(sample, *ends)

    def ode_solution_logsnr(self, sample: torch.Tensor, logsnr_start: float, logsnr_end: float) -> torch.Tensor:
        """The same map between log-SNRs (λ = −∞ is pure noise, +∞ clean data), in the interface's state units."""
        if self.interface is None:
            raise ValueError("ode_solution_logsnr needs a denoiser built with a ModelInterface.")
        a, b = self.interface.alpha_sigma(torch.tensor([logsnr_start, logsnr_end], dtype=torch.float64))
        return self._flow(sample, (float(a[0]), float(b[0])), (float(a[1]), float(b[1])))

    def _flow(self, sample: torch.Tensor, start: Tuple[float, float], end: Tuple[float, float]) -> torch.Tensor:
        # the standardised coordinate (z − α μ)/sqrt(α² v + σ²) is constant along the flow
        a0, s0 = self._marginal_std(*start)
        a1, s1 = self._marginal_std(*end)
        mu = self.mean.to(sample.device)
        z = sample.to(torch.float64)
        return a1 * mu + s1.to(sample.device) / s0.to(sample.device) * (z - a0 * mu)

    def sample_marginal(self, batch_size: int, t: float, generator: torch.Generator = None) -> torch.Tensor:
        """Draws from the exact marginal ``p_t`` (float64)."""
        alpha, std = self._marginal_std(self.schedule.alpha(float(t)).item(), self.schedule.sigma(float(t)).item())
        noise = torch.randn((batch_size, *self.sample_shape), generator=generator, dtype=torch.float64)
        return alpha * self.mean + std * noise
