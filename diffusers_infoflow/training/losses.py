"""The diffusion losses of training: DDPM's ε/x0/v objectives and seed 004's joint ε/x0 loss.

:func:`joint_trig_loss` is seed 004's eq. 12 for a joint ``[ε, x0]`` model on the angle parameterisation
``x_η = cos η·x0 + sin η·ε`` (seed 004 eq. 9):

    L = ‖R_θ − x0‖ + ‖ε_θ − ε‖ + γ_g·‖ẋ̂ − ẋ‖,
    ẋ = η'·(−sin η·x0 + cos η·ε)    (eq. 10),     ẋ̂ = η'·(−sin η·R_θ + cos η·ε_θ)    (eq. 11).

:func:`diffusion_loss` and :func:`joint_diffusion_loss` draw the noise and timesteps of one micro-batch from
a given generator and evaluate a model on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
import torch.nn.functional as F

from ..models.joint_unet import split_joint_prediction
from ..schedulers.scheduling_trig_angle_rk import angle_from_logsnr
from .build import JOINT_DEFAULTS


LossNorm = Literal["mse", "l2", "l1"]
LOSS_NORMS = ("mse", "l2", "l1")


@dataclass
class JointLoss:
    """The total of eq. 12 and its three terms (each already averaged over the batch; velocity unweighted)."""

    total: torch.Tensor
    x0: torch.Tensor
    epsilon: torch.Tensor
    velocity: torch.Tensor


def _per_sample_angle(eta: Union[torch.Tensor, float], like: torch.Tensor) -> torch.Tensor:
    """η as a tensor broadcastable against (B, C, H, W) data: a scalar or one angle per sample."""
    eta = torch.as_tensor(eta, dtype=like.dtype, device=like.device)
    if eta.ndim == 0:
        return eta
    if eta.numel() != like.shape[0]:
        raise ValueError(f"got {eta.numel()} angles for a batch of {like.shape[0]}.")
    return eta.view((-1,) + (1,) * (like.ndim - 1))


def trig_noisy_sample(x0: torch.Tensor, noise: torch.Tensor, eta: Union[torch.Tensor, float]) -> torch.Tensor:
    """The training input of eq. 9, ``x_η = cos η·x0 + sin η·ε`` (η scalar or one per sample)."""
    eta = _per_sample_angle(eta, x0)
    return torch.cos(eta) * x0 + torch.sin(eta) * noise


def _distance(prediction: torch.Tensor, target: torch.Tensor, norm: str) -> torch.Tensor:
    diff = (prediction - target).flatten(1)
    if norm == "mse":
        return diff.pow(2).mean()
    if norm == "l2":  # the Euclidean norm per sample, averaged over the batch
        return diff.norm(dim=1).mean()
    return diff.abs().mean()


def joint_trig_loss(
    eps_pred: torch.Tensor,
    x0_pred: torch.Tensor,
    x0: torch.Tensor,
    noise: torch.Tensor,
    eta: Union[torch.Tensor, float],
    gamma: float = 1.0,
    eta_rate: float = 1.0,
    norm: LossNorm = "mse",
) -> JointLoss:
    """
    Seed 004's joint loss (eq. 12) for the heads of a ``[ε, x0]`` model evaluated at ``x_η``.

    Args:
        eps_pred: ε_θ(x_η), (B, C, H, W).
        x0_pred: R_θ(x_η), (B, C, H, W); with a ``JointUNet2DModel`` use ``out.epsilon`` and ``out.x0``.
        x0: the clean data.
        noise: the ε used to build ``x_η`` (see :func:`trig_noisy_sample`).
        eta: the angle(s) η in [0, π/2], a scalar or one per sample.
        gamma: γ_g >= 0, the weight of the velocity term.
        eta_rate: η' = dη/dt of the training time variable; 1 measures the velocity per radian, seed 004's
            discrete ``η_t = (t/T)·π/2`` has η' = π/(2T).
        norm: ``mse`` (mean squared error, the usual DDPM choice), ``l2`` (per-sample Euclidean norm, eq. 12
            read literally) or ``l1`` (mean absolute error).

    Returns:
        :class:`JointLoss` with ``total = x0 + epsilon + gamma·velocity``.
    """
    if norm not in LOSS_NORMS:
        raise ValueError(f"norm must be one of {LOSS_NORMS}, got {norm!r}.")
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}.")
    shapes = {tuple(t.shape) for t in (eps_pred, x0_pred, x0, noise)}
    if len(shapes) != 1:
        raise ValueError(f"eps_pred, x0_pred, x0 and noise must share one shape, got {sorted(shapes)}.")
    angle = _per_sample_angle(eta, x0)
    if bool(((angle < 0) | (angle > math.pi / 2 + 1e-6)).any()):
        raise ValueError("every angle η must lie in [0, π/2].")
    sin, cos = torch.sin(angle), torch.cos(angle)
    velocity_target = eta_rate * (-sin * x0 + cos * noise)
    velocity_pred = eta_rate * (-sin * x0_pred + cos * eps_pred)
    x0_term = _distance(x0_pred, x0, norm)
    eps_term = _distance(eps_pred, noise, norm)
    velocity_term = _distance(velocity_pred, velocity_target, norm)
    return JointLoss(total=x0_term + eps_term + gamma * velocity_term, x0=x0_term, epsilon=eps_term, velocity=velocity_term)


def training_angles(noise_scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """η_t with ``cos² η_t = ᾱ_t`` at training timesteps (float64, on ``timesteps``' device; fractional ``t``
    interpolates in log-SNR): exactly the angle at which ``TrigAngleRKScheduler`` reads a model told timestep
    ``t``, so training and sampling agree."""
    logsnr = noise_scheduler.train_schedule.logsnr(timesteps.detach().cpu().to(torch.float64))
    return angle_from_logsnr(logsnr).to(timesteps.device)


def diffusion_loss(
    model, noise_scheduler, clean: torch.Tensor, prediction_type: str, generator: torch.Generator, snr_gamma: Optional[float] = None
) -> torch.Tensor:
    """One Monte-Carlo estimate of the training loss on ``clean`` (seed 002's ε loss; x0 and v targets alike).
    ``prediction_type="joint"`` is :func:`joint_diffusion_loss` with its default options (its total).

    ``snr_gamma`` weights each sample's error by Min-SNR-γ (Hang et al., "Efficient Diffusion Training via Min-SNR
    Weighting Strategy", 2023): min(SNR, γ)/SNR for ε, min(SNR, γ) for x0, min(SNR, γ)/(SNR + 1) for v, which is
    the x0 error weighted by min(SNR, γ) in every case. ``None`` is the unweighted mean.
    """
    if prediction_type == "joint":
        if snr_gamma is not None:
            raise ValueError("snr_gamma weights the ε, x0 and v losses; the joint loss has its own terms.")
        return joint_diffusion_loss(model, noise_scheduler, clean, generator).total
    noise = torch.randn(clean.shape, generator=generator).to(clean.device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (clean.shape[0],), generator=generator).to(clean.device)
    noisy = noise_scheduler.add_noise(clean, noise, timesteps)
    output = model(noisy, timesteps).sample
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "sample":
        target = clean
    else:
        target = noise_scheduler.get_velocity(clean, noise, timesteps)
    if snr_gamma is None:
        return F.mse_loss(output.float(), target.float())
    per_sample = ((output.float() - target.float()) ** 2).flatten(1).mean(dim=1)
    return (min_snr_weights(noise_scheduler, timesteps, prediction_type, snr_gamma) * per_sample).mean()


def min_snr_weights(noise_scheduler, timesteps: torch.Tensor, prediction_type: str, snr_gamma: float) -> torch.Tensor:
    """Min-SNR-γ loss weights at integer training ``timesteps`` (float32, on their device); see :func:`diffusion_loss`."""
    if not (isinstance(snr_gamma, (int, float)) and not isinstance(snr_gamma, bool) and snr_gamma > 0):
        raise ValueError(f"snr_gamma must be a number > 0, got {snr_gamma!r}.")
    alpha_bar = noise_scheduler.alphas_cumprod.to(torch.float64)[timesteps.cpu()]
    snr = alpha_bar / (1.0 - alpha_bar)
    if prediction_type == "epsilon":  # min(snr, γ)/snr, with its limit 1 at snr = 0 (zero-terminal-SNR tables)
        weights = torch.where(snr < snr_gamma, torch.ones_like(snr), snr_gamma / snr)
    elif prediction_type == "sample":
        weights = snr.clamp(max=snr_gamma)
    else:
        weights = snr.clamp(max=snr_gamma) / (snr + 1.0)
    return weights.to(device=timesteps.device, dtype=torch.float32)


def joint_diffusion_loss(
    model,
    noise_scheduler,
    clean: torch.Tensor,
    generator: torch.Generator,
    gamma: float = JOINT_DEFAULTS["joint_gamma"],
    norm: str = JOINT_DEFAULTS["joint_loss_norm"],
) -> JointLoss:
    """Seed 004's joint loss (eq. 12, :func:`joint_trig_loss`) on ``clean``.

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
