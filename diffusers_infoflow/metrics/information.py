"""Information curves and likelihoods from a denoiser by the I-MMSE relation (seed 001 Theorem 6; Kong et al., "Information-
Theoretic Diffusion", ICLR 2023).

Channel: ``z_λ = sqrt(sigmoid(λ))·x + sqrt(sigmoid(−λ))·ε`` (the VP forward marginal at log-SNR λ). With
``mmse(λ) = E‖x − E[x | z_λ]‖²`` summed over the D coordinates, ``dI(x; z_λ)/dλ = ½·e^λ·mmse(λ)`` (nats).

``information_curve`` estimates mmse by Monte Carlo on a uniform λ grid and integrates with the trapezoid rule,
integrating only the residual to the Gaussian baseline ``Σ v_i/(1 + e^λ v_i)`` (closed-form integral
``½ Σ log(1 + e^λ v_i)``; Kong et al.'s variance reduction), whose truncation at ``logsnr_min`` costs
``O(e^{2·logsnr_min})``. Seed 001's Theorem 6 adds ``−D·α̃'(λ)/α̃(λ)`` to dI/dλ; that term belongs to the
differential entropy of the unscaled channel, not to the mutual information
(``tests/test_information_curve.py::test_theorem6_extra_term_does_not_belong`` shows it on Gaussian data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable, Dict, Optional, Tuple, Union

import torch

from ..schedules import DiscreteSchedule


__all__ = [
    "DenoiseFn",
    "denoise_fn_from_diffusers",
    "squared_errors",
    "gaussian_information",
    "gaussian_mmse",
    "information_curve",
    "nll_bits_per_dim",
    "noisy_channel",
]

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gaussian_mmse(variance: torch.Tensor, logsnr: Union[torch.Tensor, float]) -> torch.Tensor:
    """``Σ_i v_i / (1 + e^λ v_i)``: the mmse of ``x ~ N(μ, diag v)`` at each λ (float64, shape of ``logsnr``)."""
    v = torch.as_tensor(variance, dtype=torch.float64).flatten()
    lam = torch.as_tensor(logsnr, dtype=torch.float64)
    return (v / (1 + lam.exp().unsqueeze(-1) * v)).sum(-1)


def gaussian_information(variance: torch.Tensor, logsnr: Union[torch.Tensor, float]) -> torch.Tensor:
    """``½ Σ_i log(1 + e^λ v_i)``: I(x; z_λ) in nats for ``x ~ N(μ, diag v)`` (float64, shape of ``logsnr``)."""
    v = torch.as_tensor(variance, dtype=torch.float64).flatten()
    lam = torch.as_tensor(logsnr, dtype=torch.float64)
    # log1p(e^λ v) = softplus(λ + log v), stable for large λ.
    return 0.5 * torch.nn.functional.softplus(lam.unsqueeze(-1) + v.log()).sum(-1)


def noisy_channel(x: torch.Tensor, logsnr: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``sqrt(sigmoid(λ))·x + sqrt(sigmoid(−λ))·ε`` with λ of shape ``(N,)`` broadcast over the sample axes."""
    lam = logsnr.view(-1, *([1] * (x.ndim - 1))).to(x)
    return torch.sigmoid(lam).sqrt() * x + torch.sigmoid(-lam).sqrt() * noise


def _check_inputs(data: torch.Tensor, batch_size: int) -> None:
    if not isinstance(data, torch.Tensor) or data.ndim < 2 or data.shape[0] < 1:
        raise ValueError(f"`data` must be a tensor of shape (N, ...) with N >= 1, got {getattr(data, 'shape', data)!r}.")
    if not torch.isfinite(data).all():
        raise ValueError("`data` contains NaN or infinite values.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")


def squared_errors(
    denoise_fn: DenoiseFn, data: torch.Tensor, logsnr: float, generator: torch.Generator, batch_size: int
) -> torch.Tensor:
    """``‖x − x̂(z_λ, λ)‖²`` per data point, one noise draw each, float64 ``(N,)``: the denoising error that the
    information curves integrate and that :func:`~diffusers_infoflow.calibrate_information_curve` measures."""
    errors = []
    with torch.no_grad():
        for x in data.split(batch_size):
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            lam = torch.full((x.shape[0],), float(logsnr), dtype=torch.float64)
            x0_hat = denoise_fn(noisy_channel(x, lam, noise), lam.to(x.device))
            if tuple(x0_hat.shape) != tuple(x.shape):
                raise ValueError(f"denoise_fn returned shape {tuple(x0_hat.shape)} for input shape {tuple(x.shape)}.")
            errors.append((x.to(torch.float64) - x0_hat.to(torch.float64)).flatten(1).pow(2).sum(1).cpu())
    return torch.cat(errors)


def _logsnr_limits(denoise_fn: DenoiseFn, logsnr_min: Optional[float], logsnr_max: Optional[float]) -> Tuple[float, float]:
    """The λ range of the quadrature: as given, else the denoiser's own ``logsnr_range`` (a trained model's table,
    :func:`denoise_fn_from_diffusers`), else ±15 (an exact denoiser)."""
    own = getattr(denoise_fn, "logsnr_range", (-15.0, 15.0))
    return (float(own[0]) if logsnr_min is None else logsnr_min, float(own[1]) if logsnr_max is None else logsnr_max)


def _logsnr_grid(logsnr_min: float, logsnr_max: float, step: float) -> torch.Tensor:
    if not (math.isfinite(logsnr_min) and math.isfinite(logsnr_max) and logsnr_min < logsnr_max):
        raise ValueError(f"need finite logsnr_min < logsnr_max, got {logsnr_min!r} and {logsnr_max!r}.")
    if not step > 0:
        raise ValueError(f"`step` must be > 0, got {step!r}.")
    num = max(2, math.ceil((logsnr_max - logsnr_min) / step) + 1)
    return torch.linspace(logsnr_min, logsnr_max, num, dtype=torch.float64)


def information_curve(
    denoise_fn: DenoiseFn,
    data: torch.Tensor,
    logsnrs: Sequence[float],
    *,
    logsnr_min: Optional[float] = None,
    step: float = 0.25,
    gaussian_baseline: bool = True,
    batch_size: int = 256,
    seed: int = 0,
) -> Dict[str, torch.Tensor]:
    """``I(x; z_λ)`` in nats (total over the D coordinates, averaged over ``data``) at each λ in ``logsnrs``.

    Args:
        denoise_fn: ``denoise_fn(z, logsnr) -> x0_hat`` with ``z`` shaped like a data batch and ``logsnr`` a float64
            tensor ``(B,)``; e.g. :func:`denoise_fn_from_diffusers` or an exact posterior mean.
        data: samples ``(N, ...)`` of x.
        logsnrs: where to report I; each must be >= ``logsnr_min``.
        logsnr_min: lower end of the quadrature grid (see the module docstring for the truncation error); default:
            the low end of ``denoise_fn.logsnr_range`` when it has one, else −15.
        step: grid spacing in λ; the trapezoid rule's error is O(step²).
        gaussian_baseline: integrate only the residual to the Gaussian baseline (Kong et al.), recommended.
        batch_size: data points per ``denoise_fn`` call.
        seed: seeds the noise draws.

    Returns:
        ``{"logsnr": (K,), "information": (K,), "grid_logsnr": (G,), "grid_mmse": (G,)}`` (float64); ``grid_mmse`` is
        the Monte Carlo mmse on the quadrature grid.
    """
    _check_inputs(data, batch_size)
    if gaussian_baseline and len(data) < 2:
        raise ValueError(f"the Gaussian baseline needs the data's variance, so at least 2 samples; got {len(data)} "
                         "(or pass gaussian_baseline=False).")
    logsnr_min = _logsnr_limits(denoise_fn, logsnr_min, None)[0]
    targets = torch.as_tensor(logsnrs, dtype=torch.float64).flatten()
    if targets.numel() == 0 or not torch.isfinite(targets).all():
        raise ValueError(f"`logsnrs` must be a non-empty sequence of finite values, got {logsnrs!r}.")
    if (targets < logsnr_min).any():
        raise ValueError(f"every log-SNR must be >= logsnr_min = {logsnr_min}, got {targets.min().item()!r}.")
    grid = _logsnr_grid(logsnr_min, max(float(targets.max()), logsnr_min + step), step)
    generator = torch.Generator().manual_seed(seed)
    mmse = torch.stack([squared_errors(denoise_fn, data, float(lam), generator, batch_size).mean() for lam in grid])

    variance = data.to(torch.float64).flatten(1).var(0, unbiased=True) if gaussian_baseline else None
    integrand = grid.exp() * (mmse - gaussian_mmse(variance, grid) if gaussian_baseline else mmse)
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(integrand, grid)])
    if gaussian_baseline:
        information_on_grid = gaussian_information(variance, grid) + 0.5 * cumulative
    else:
        information_on_grid = 0.5 * (grid[0].exp() * mmse[0] + cumulative)
    information = _interp_increasing(targets, grid, information_on_grid)
    return {"logsnr": targets, "information": information, "grid_logsnr": grid, "grid_mmse": mmse}


def _interp_increasing(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    idx = torch.searchsorted(xp, x, right=True).clamp(1, len(xp) - 1)
    w = (x - xp[idx - 1]) / (xp[idx] - xp[idx - 1])
    return fp[idx - 1] + w * (fp[idx] - fp[idx - 1])


def nll_bits_per_dim(
    denoise_fn: DenoiseFn,
    data: torch.Tensor,
    *,
    discrete: bool = False,
    logsnr_min: Optional[float] = None,
    logsnr_max: Optional[float] = None,
    step: float = 0.25,
    batch_size: int = 256,
    seed: int = 0,
) -> torch.Tensor:
    """Per-sample negative log-likelihood in bits per dimension, Kong et al.'s estimators (float64, ``(N,)``).

    With the ε-error ``mmse_ε(x, λ) = E_ε‖ε − ε̂‖² = e^λ E_ε‖x − x̂(z_λ)‖²`` (pointwise in x):

    * continuous (density of x in the data's own units):
      ``−log p(x) = (D/2) log(2πe) − ½ ∫ [D·sigmoid(λ) − mmse_ε(x, λ)] dλ`` (Kong et al. eq. 5, the reference
      ``D·sigmoid(λ)`` being the ε-mmse of N(0, I)). For 8-bit images scaled to [−1, 1] add ``log2(127.5)`` to get
      the usual bits/dim of the integer pixels.
    * discrete (``discrete=True``, x from a finite set): ``−log P(x) = ½ ∫ mmse_ε(x, λ) dλ`` (Kong et al. eq. 9;
      I(x; z_λ) → H(x) as λ → ∞).

    The integral is the trapezoid rule on a uniform λ grid over ``[logsnr_min, logsnr_max]`` with one noise draw per
    (x, λ); both integrands vanish at the ends for a good denoiser, the truncation is the caller's to check. The
    default range is ``denoise_fn.logsnr_range`` when it has one (a trained model's table), else [−15, 15].
    """
    _check_inputs(data, batch_size)
    grid = _logsnr_grid(*_logsnr_limits(denoise_fn, logsnr_min, logsnr_max), step)
    generator = torch.Generator().manual_seed(seed)
    # rows: grid points, columns: data points
    eps_errors = torch.stack([lam.exp() * squared_errors(denoise_fn, data, float(lam), generator, batch_size) for lam in grid])
    dim = data[0].numel()
    if discrete:
        nll_nats = 0.5 * torch.trapezoid(eps_errors, grid, dim=0)
    else:
        reference = dim * torch.sigmoid(grid).unsqueeze(1)
        nll_nats = 0.5 * dim * math.log(2 * math.pi * math.e) - 0.5 * torch.trapezoid(reference - eps_errors, grid, dim=0)
    return nll_nats / (dim * math.log(2))


def denoise_fn_from_diffusers(model: torch.nn.Module, scheduler, prediction_type: Optional[str] = None) -> DenoiseFn:
    """Wrap a diffusers denoiser (``model(sample, timestep).sample``) trained on a DDPM table as ``denoise_fn``.

    Args:
        model: e.g. ``UNet2DModel``; called with fractional timesteps (diffusers' timestep embedding accepts floats).
        scheduler: a diffusers scheduler instance with ``alphas_cumprod`` (DDPM/DDIM/...), or its config dict, from
            which ``DDPMScheduler.from_config`` rebuilds the table.
        prediction_type: ``epsilon``, ``sample`` or ``v_prediction``; defaults to the scheduler config's.

    The returned function maps λ to the fractional model timestep with :meth:`DiscreteSchedule.t_from_logsnr` (λ
    piecewise linear in the timestep) — so λ must lie in the table's range, exposed as the attribute
    ``logsnr_range`` of the returned function — and converts the prediction to ``x0``. On that interpolant
    ``α_t² = sigmoid(λ)``, so the information channel's ``z_λ`` is exactly the model's ``x_t``.
    """
    from diffusers import DDPMScheduler

    if isinstance(scheduler, dict):
        scheduler = DDPMScheduler.from_config(scheduler)
    if not hasattr(scheduler, "alphas_cumprod"):
        raise TypeError(f"`scheduler` must be a diffusers scheduler with `alphas_cumprod` or its config dict, got {type(scheduler).__name__}.")
    prediction_type = prediction_type or scheduler.config.get("prediction_type", "epsilon")
    if prediction_type not in ("epsilon", "sample", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon', 'sample' or 'v_prediction', got {prediction_type!r}.")
    schedule = DiscreteSchedule(scheduler.alphas_cumprod)

    def denoise(z: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        timestep = schedule.t_from_logsnr(logsnr.cpu())
        shape = (-1, *([1] * (z.ndim - 1)))
        lam = logsnr.to(device=z.device, dtype=torch.float64).view(shape)
        alpha, sigma = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
        param = next(model.parameters(), None)
        model_dtype = param.dtype if param is not None else z.dtype
        out = model(z.to(model_dtype), timestep.to(device=z.device, dtype=torch.float32)).sample.to(torch.float64)
        z64 = z.to(torch.float64)
        if prediction_type == "epsilon":
            x0 = (z64 - sigma * out) / alpha
        elif prediction_type == "sample":
            x0 = out
        else:
            x0 = alpha * z64 - sigma * out
        return x0.to(z.dtype)

    denoise.logsnr_range = schedule.logsnr_range
    return denoise
