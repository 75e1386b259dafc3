"""Step placement from information: sampling rungs placed by a model's measured mmse curve.

The I-MMSE relation (seed 001 Theorem 6) gives the information a model's channel gains per unit of log-SNR,
``dI/dλ = ½·e^λ·mmse(λ)``. A short calibration run measures ``mmse(λ)`` of a model on a data batch
(:func:`calibrate_information_curve`); :class:`InformationCurve` stores it in a scheduler config (so it
round-trips with ``save_pretrained``) and places N rungs at equal increments of ``∫ w(λ)^p dλ`` with

* ``measure="information"``: ``w = dI/dλ``, the information gained (p = 1: equal information per step);
* ``measure="mmse_decrease"``: ``w = −d mmse/dλ``, how fast the posterior narrows, a proxy of how fast x̂0
  moves along the ODE (for Gaussian data with variance v, each coordinate has
  ``E[(dx̂0/dλ)²] = (−d mmse/dλ)·mmse / (4v)`` along the probability flow).

The power p interpolates between log-SNR-uniform rungs (p = 0) and the measure itself (p = 1).

:func:`fit_ladder` instead fits the rungs of one step count to a teacher, for a solver and a model.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence

import numpy as np
import torch


__all__ = ["INFORMATION_MEASURES", "InformationCurve", "calibrate_information_curve", "fit_ladder"]

InformationMeasure = Literal["information", "mmse_decrease"]
INFORMATION_MEASURES = ("information", "mmse_decrease")
_FINE_GRID = 4096  # points of the quadrature that inverts the cumulative weight


class InformationCurve:
    """A model's mmse per dimension at increasing log-SNRs, and the rungs it places.

    Args:
        logsnr (`Sequence[float]`): strictly increasing finite λ knots.
        mmse (`Sequence[float]`): ``E‖x0 − x̂0(z_λ)‖² / D`` at each knot (≥ 0); linear in between.
    """

    def __init__(self, logsnr: Sequence[float], mmse: Sequence[float]):
        lam = torch.as_tensor(np.asarray(logsnr, dtype=np.float64))
        err = torch.as_tensor(np.asarray(mmse, dtype=np.float64))
        if lam.ndim != 1 or lam.shape != err.shape or len(lam) < 2:
            raise ValueError(f"information_curve needs 'logsnr' and 'mmse' lists of the same length >= 2, got {tuple(lam.shape)} and {tuple(err.shape)}.")
        if not (torch.isfinite(lam).all() and torch.isfinite(err).all()) or (err < 0).any() or (lam[1:] <= lam[:-1]).any():
            raise ValueError("information_curve needs finite, strictly increasing 'logsnr' and finite 'mmse' >= 0.")
        self.logsnr = lam
        # The exact mmse never increases with λ; a Monte Carlo estimate may wiggle, which would give negative
        # decrease rates: keep the running minimum from the noisy end.
        self.mmse = torch.cummin(err, dim=0).values

    @classmethod
    def from_config(cls, value: Mapping[str, Any]) -> "InformationCurve":
        """From a scheduler config's `information_curve` entry, ``{"logsnr": [...], "mmse": [...]}``."""
        if not isinstance(value, Mapping) or set(value) != {"logsnr", "mmse"}:
            raise ValueError(
                "information_curve must be a dict with exactly the keys 'logsnr' and 'mmse' "
                f"(made by diffusers_infoflow.calibrate_information_curve), got {value!r:.120}."
            )
        return cls(value["logsnr"], value["mmse"])

    def to_config(self) -> Dict[str, List[float]]:
        """The JSON-ready entry for a scheduler config."""
        return {"logsnr": [float(v) for v in self.logsnr], "mmse": [float(v) for v in self.mmse]}

    def weight(self, logsnr: torch.Tensor, measure: InformationMeasure = "information") -> torch.Tensor:
        """``dI/dλ`` or ``−d mmse/dλ`` (per dimension) at `logsnr`; mmse is held constant outside the knots."""
        lam = torch.as_tensor(logsnr, dtype=torch.float64)
        knots = self.logsnr.numpy()
        if measure == "information":
            mmse = torch.from_numpy(np.interp(lam.numpy(), knots, self.mmse.numpy()))
            return 0.5 * torch.exp(lam) * mmse
        if measure == "mmse_decrease":
            slopes = (self.mmse[:-1] - self.mmse[1:]) / (self.logsnr[1:] - self.logsnr[:-1])
            middles = 0.5 * (self.logsnr[1:] + self.logsnr[:-1])
            # the end slopes hold out to the end knots (np.interp's default); mmse is constant beyond them
            rate = torch.from_numpy(np.interp(lam.numpy(), middles.numpy(), slopes.numpy()))
            return torch.where((lam < knots[0]) | (lam > knots[-1]), torch.zeros_like(rate), rate)
        raise ValueError(f"information_measure must be one of {INFORMATION_MEASURES}, got {measure!r}.")

    def place(self, num_rungs: int, start: float, end: float, measure: InformationMeasure = "information", power: float = 1.0) -> torch.Tensor:
        """`num_rungs` levels from λ = `start` (noisiest) to `end` (cleanest), at equal increments of ∫ w(λ)^power dλ.

        A weight of exactly zero (a flat stretch of the curve) would leave a stretch no rung may enter; a floor of
        1e-6 of the mean weight keeps the ladder strictly increasing there.
        """
        if not (math.isfinite(start) and math.isfinite(end) and start < end):
            raise ValueError(f"need finite start < end, got {start!r} and {end!r}.")
        if isinstance(num_rungs, bool) or not isinstance(num_rungs, int) or num_rungs < 1:
            raise ValueError(f"num_rungs must be a positive integer, got {num_rungs!r}.")
        check_information_options(measure, power)
        if num_rungs == 1:
            return torch.tensor([start], dtype=torch.float64)
        grid = torch.linspace(start, end, _FINE_GRID, dtype=torch.float64)
        density = self.weight(grid, measure).clamp(min=0.0) ** power
        density = density + 1e-6 * float(density.mean()) + 1e-300
        cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(density, grid)])
        targets = torch.linspace(0.0, float(cumulative[-1]), num_rungs, dtype=torch.float64)
        lam = torch.from_numpy(np.interp(targets.numpy(), cumulative.numpy(), grid.numpy()))
        lam[0], lam[-1] = start, end
        return lam


def calibrate_information_curve(
    model: torch.nn.Module,
    scheduler,
    data: torch.Tensor,
    num_levels: int = 48,
    batch_size: int = 64,
    seed: int = 0,
) -> Dict[str, List[float]]:
    """Measures `model`'s mmse curve on a data batch: `num_levels` levels uniform in λ over the model's range.

    Each level noises the whole batch with the family's forward marginal, asks the model at that level (its own
    timestep and input scaling, any checkpoint family) and compares the x̂0 it implies with the data:
    ``num_levels · ceil(len(data) / batch_size)`` model calls. The mmse is capped at the data's variance per
    dimension, the error of the best constant guess E[x0], which no Bayes denoiser exceeds: at the noisiest levels an
    ε-model's x̂0 = (x − σ·ε̂)/α divides its small ε errors by a tiny α and would report several times that.

    Args:
        model: called as ``model(model_input, timestep).sample`` (a `UNet2DModel`, an exact denoiser, ...).
        scheduler: the model's scheduler (a diffusers scheduler or one of ours); its config says the family.
        data: clean samples `(N, C, H, W)` in the model's data range.
        num_levels: knots of the curve.
        batch_size: samples per model call.
        seed: seeds the noise.

    Returns:
        `{"logsnr": [...], "mmse": [...]}`, the value of a scheduler's `information_curve` config entry.
    """
    from .metrics.information import squared_errors
    from .model_interface import ModelInterface, finite_noisy_logsnr
    from .schedulers import TrigAngleRKScheduler

    if not isinstance(data, torch.Tensor) or data.ndim != 4 or len(data) < 2 or not torch.isfinite(data).all():
        raise ValueError(f"`data` must be a finite tensor (N, C, H, W) with N >= 2, got {getattr(data, 'shape', type(data).__name__)}.")
    data = data.detach().to("cpu", torch.float64)  # the noise and the errors are computed here, in float64
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 2:
        raise ValueError(f"num_levels must be an integer >= 2, got {num_levels!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    interface = getattr(scheduler, "interface", None)
    if not isinstance(interface, ModelInterface):  # a diffusers scheduler: read its config the one checked way
        interface = TrigAngleRKScheduler.from_config(scheduler.config).interface
    levels = torch.linspace(finite_noisy_logsnr(interface), interface.logsnr_range[1], num_levels, dtype=torch.float64)
    param = next(model.parameters(), None) if hasattr(model, "parameters") else None
    device = param.device if param is not None else data.device
    dtype = param.dtype if param is not None and param.dtype.is_floating_point else data.dtype
    generator = torch.Generator().manual_seed(seed)
    prior_variance = float(data.flatten(1).var(0).mean())
    if prior_variance == 0.0:
        raise ValueError("`data` has no variance (all images are the same): it says nothing about the model's mmse.")
    told_levels, snapped = interface.model_timesteps(levels)
    keep = torch.cat([torch.ones(1, dtype=torch.bool), snapped[1:] > snapped[:-1]])  # a table may snap two levels onto one
    knots, mmse = [], []
    training = getattr(model, "training", False)
    if training:
        model.eval()  # dropout would inflate the errors
    for told, level in zip(told_levels[keep], snapped[keep].tolist()):
        errors = squared_errors(_denoiser_at(model, interface, told, level, device, dtype), data, level, generator, batch_size)
        knots.append(level)
        mmse.append(min(float(errors.sum()) / data.numel(), prior_variance))
    if training:
        model.train()
    return {"logsnr": knots, "mmse": mmse}


def fit_ladder(
    model,
    scheduler,
    num_inference_steps: int,
    noise: torch.Tensor,
    teacher_steps: int = 200,
    max_evaluations: int = 300,
) -> List[float]:
    """Rungs fitted to a model and a solver, as in "Learning to Discretize Denoising Diffusion ODEs" (Tong et al.,
    2025): the teacher is `scheduler`'s own class on `teacher_steps` log-SNR-uniform steps from `noise`; then the
    rungs after the first (the start stays where `scheduler` starts) are moved by Powell's method (scipy) over their
    log-SNR increments to minimise the mean squared distance of the `num_inference_steps`-step samples from the same
    noise to the teacher's. Costs the teacher's calls plus at most `max_evaluations` · `num_inference_steps` batched
    model calls; fit on noise you will not sample from, or the ladder learns that noise.

    Args:
        model: called as ``model(model_input, timestep)`` (a `UNet2DModel`, an exact denoiser, ...).
        scheduler: one of this package's schedulers with one model call per rung (`TrigAngleRKScheduler` with
            `solver="multistep"` or `"ddim"`, `S2NGeneralizedScheduler`), configured as it will sample; its
            `set_timesteps(num_inference_steps)` ladder is where the fit starts.
        num_inference_steps: the number of rungs (= model calls) to fit.
        noise: the starting draws, ``(B, C, H, W)``, already scaled (``randn · init_noise_sigma``).
        teacher_steps: steps of the teacher run.
        max_evaluations: the most student runs Powell's method may make.

    Returns:
        The model timesteps of the fitted rungs, for ``scheduler.set_timesteps(timesteps=...)``.
    """
    from scipy.optimize import minimize

    from .model_interface import ModelInterface, finite_noisy_logsnr
    from .sampling import denoise
    interface = getattr(scheduler, "interface", None)
    if not isinstance(interface, ModelInterface):
        raise ValueError(f"fit_ladder needs one of this package's schedulers (it places rungs in log-SNR), got {type(scheduler).__name__}.")
    for name, value, least in (("num_inference_steps", num_inference_steps, 2), ("teacher_steps", teacher_steps, 2), ("max_evaluations", max_evaluations, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}.")
    if not isinstance(noise, torch.Tensor) or noise.ndim < 2 or not torch.isfinite(noise).all():
        raise ValueError(f"`noise` must be a finite tensor (B, ...), got {getattr(noise, 'shape', type(noise).__name__)}.")

    student = type(scheduler).from_config(scheduler.config)
    student.set_timesteps(num_inference_steps)
    if len(student.timesteps) != num_inference_steps:
        raise ValueError(f"fit_ladder fits one model call per rung; this {type(scheduler).__name__} makes "
                         f"{len(student.timesteps)} calls for {num_inference_steps} steps (use solver='multistep' or 'ddim').")
    start = float(student.timesteps[0])
    levels = interface.logsnr_from_model_timesteps(student.timesteps.detach().double().cpu())
    # the rungs after the start lie in (low, high]: from the first finite level (pure-noise starts) to the cleanest
    low, high = max(float(levels[0]), finite_noisy_logsnr(interface)), float(interface.logsnr_range[1])

    def sample(rungs: torch.Tensor) -> torch.Tensor:  # the private copy, reset by set_timesteps as a pipeline does
        student.set_timesteps(timesteps=[start] + interface.model_timesteps(rungs)[0].tolist())
        return denoise(student, model, noise.clone()).double()

    teacher = sample(torch.linspace(low, high, teacher_steps, dtype=torch.float64)[1:])

    def rungs_of(u: np.ndarray) -> torch.Tensor:  # N increments (the last one is the unused rest), softmax-normalised
        share = np.exp(u - u.max())
        return torch.from_numpy(low + (high - low) * np.cumsum(share / share.sum())[:-1])

    def loss(u: np.ndarray) -> float:
        try:
            return float((sample(rungs_of(u)) - teacher).pow(2).mean())
        except ValueError:  # two rungs on one timestep: not a ladder
            return math.inf

    share = np.diff(np.concatenate([[0.0], ((levels[1:] - low) / (high - low)).clamp(0, 1).numpy(), [1.0]]))
    u0 = np.log(np.maximum(share, 1e-4))
    fitted = minimize(loss, u0, method="Powell", options={"maxfev": max_evaluations, "xtol": 1e-3, "ftol": 1e-6})
    return [start] + interface.model_timesteps(rungs_of(fitted.x))[0].tolist()


def _denoiser_at(model, interface, told: torch.Tensor, level: float, device, dtype):
    """``denoise_fn(z, λ) -> x̂0`` of `model` at one of its levels (λ = `level`, told `told`) for
    :func:`~diffusers_infoflow.metrics.information.squared_errors`: the variance-preserving state z in the family's
    units, the model's input scaling, its output read as x̂0 (float64, on the CPU)."""
    scale = float(interface.scale(torch.tensor(level, dtype=torch.float64)))

    def denoise(z: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        state = z * scale
        out = model(interface.scale_model_input(state, level).to(device, dtype), told.view(1).to(device).expand(len(z))).sample
        expected = (interface.output_channels(z.shape[1]), *z.shape[2:])
        if tuple(out.shape[1:]) != expected:
            raise ValueError(f"the model's output has shape {tuple(out.shape[1:])} per image but this "
                             f"{interface.prediction_type!r} scheduler config implies {expected}.")
        return interface.predictions(out.to(torch.float64).cpu(), state, level)[0]

    return denoise


def check_information_options(measure: str, power: float) -> None:
    """Raises ``ValueError`` for an `information_measure` or `information_power` outside the allowed ones."""
    if measure not in INFORMATION_MEASURES:
        raise ValueError(f"information_measure must be one of {INFORMATION_MEASURES}, got {measure!r}.")
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0.0 <= power <= 2.0:
        raise ValueError(f"information_power must be a number in [0, 2], got {power!r}.")


def information_placement(
    spacing: Optional[str], curve: Optional[Mapping[str, Any]], measure: str, power: float
) -> Optional[InformationCurve]:
    """A scheduler's checked information options: the curve when given, and a clear error for a config that asks
    for `step_spacing="information"` without one or gives a measure or power outside the allowed ones."""
    check_information_options(measure, power)
    if curve is None:
        if spacing == "information":
            raise ValueError(
                "step_spacing='information' needs `information_curve`: measure the model's with "
                "diffusers_infoflow.calibrate_information_curve(model, scheduler, data) and pass it."
            )
        return None
    return InformationCurve.from_config(curve)
