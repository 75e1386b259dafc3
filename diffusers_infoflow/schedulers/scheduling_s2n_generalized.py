"""S2NGeneralizedScheduler: seed 001's generalised signal-to-noise backward equation as a diffusers scheduler.

From time t to s < t (log-SNR λ_s > λ_t), with ε̂ = ε_θ(z_t, t) and ξ ~ N(0, I), seed 001 Corollary 1
(SPEC §3) reads

    z_s = (α_s/α_t)·z_t
          − (1+ρ²)/(1+γ) · α_s · [exp(−(1+γ)λ_t/2) − exp(−(1+γ)λ_s/2)] · exp(γλ_t/2) · ε̂
          + ρ · α_t · sqrt(exp(−λ_t) − exp(−λ_s)) · (α_s/α_t)^(1−δ) · (σ_s/σ_t)^δ · ξ .

It is the exact solution of the backward SDE ``dz = [f z − (1+ρ²)/2·g²∇log p] dt + ρ g dw̄`` with ε frozen
over the step and ``exp(−λ/2)`` replaced by ``exp(−(1+γ)λ/2)·exp(γλ_t/2)`` inside the integral. Special
cases (tested against diffusers): ρ = γ = 0 is DDIM (η = 0); ρ = γ = δ = 1 is the DDPM posterior
q(z_s | z_t, x̂0), i.e. ancestral DDPM. γ > 0 sharpens, γ < 0 blurs (seed 001 §4).

The same file implements seed 001's non-Markovian continuous model (eq. 9, a continuous DDIM),
``z_s = α_s x̂0 + sqrt(σ_s² − β²)·ε̂ + β ξ`` with ``β(s, t)² = b(s) − b(t)``; see
:class:`S2NGeneralizedScheduler` for the choice of ``b``.

Noise levels come from :mod:`diffusers_infoflow.schedules`: a discrete DDPM table (diffusers' config keys,
so ``from_config`` of a DDPM/DDIM scheduler works) or a continuous family ``vp, ve, iddpm, fm-ot, edm``
(``from_config`` of an ``EDMEulerScheduler`` works, with EDM's c_in/c_skip/c_out/c_noise preconditioning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Literal, Optional, Tuple, Union

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ..schedules import CONTINUOUS_SCHEDULES, DiscreteSchedule, NoiseSchedule, get_schedule
from ._common import StepIndexMixin, check_finite, spaced_indices, training_schedule

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "joint")
VARIANTS = ("corollary1", "non_markovian")
NOISE_FAMILIES = ("discrete",) + CONTINUOUS_SCHEDULES
PRECONDITIONINGS = ("none", "edm")
DISCRETE_SPACINGS = ("leading", "trailing", "linspace", "logsnr", "karras")
CONTINUOUS_SPACINGS = ("linspace", "logsnr", "karras")
# Continuous-family parameters that diffusers' EDM configs store as top-level keys.
_SIGMA_RANGE_FAMILIES = ("ve", "edm")


@dataclass
class S2NGeneralizedSchedulerOutput(BaseOutput):
    """
    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            The sample z_s at the next (less noisy) rung.
        pred_original_sample (`torch.Tensor` of the same shape):
            The model's estimate of the clean sample x̂0 (after `clip_sample`, if enabled).
    """

    prev_sample: torch.Tensor
    pred_original_sample: Optional[torch.Tensor] = None


class S2NGeneralizedScheduler(StepIndexMixin, SchedulerMixin, ConfigMixin):
    """
    The generalised S2N sampler of seed 001 (Corollary 1 and eq. 9; SPEC §3) for any noise schedule of the
    package. Every update goes from the current rung to the next; the last rung goes to clean data (λ = +∞,
    α = 1, σ = 0), where the ε-coefficient's limit ``(1+ρ²)/(1+γ)·σ_t/α_t`` and zero noise are used exactly.

    Args:
        num_train_timesteps (`int`, defaults to 1000): T of a discrete DDPM table.
        beta_start (`float`, defaults to 0.0001), beta_end (`float`, defaults to 0.02),
        beta_schedule (`str`, defaults to `"linear"`), trained_betas (*optional*): the discrete table, with
            diffusers' keys and the families of :func:`~diffusers_infoflow.schedules.get_betas`.
        schedule_params (`dict`, *optional*): extra parameters of the family: `s`, `p`, `amplitude`, `cycles`
            for discrete tables; `beta_min`, `beta_max`, `eps`, `s`, `t_max` for continuous families.
        noise_family (`str`, *optional*): `discrete` (the β table) or a continuous family `vp, ve, iddpm,
            fm-ot, edm` (SPEC §1). `None` picks `edm` when the config carries EDM's `sigma_data` key (as an
            `EDMEulerScheduler` config does) and `discrete` otherwise.
        sigma_min (`float`, *optional*), sigma_max (`float`, *optional*): σ range of the `ve`/`edm` families
            (diffusers' EDM keys); `None` keeps the family's default.
        sigma_data (`float`, *optional*): EDM's data standard deviation for `preconditioning="edm"`
            (default 0.5).
        rho (`float`, defaults to 7.0): the **Karras exponent** of `timestep_spacing="karras"` (diffusers' EDM
            key of the same name). The S2N stochasticity ρ is `sde_rho`.
        preconditioning (`str`, *optional*): `none` (the model is told the schedule's own time and sees z) or
            `edm` (EDM's c_in, c_skip, c_out and c_noise = ¼·ln σ̃ with σ̃ = σ/α = exp(−λ/2), as diffusers'
            `EDMEulerScheduler`). `None` = `edm` for the `edm` family, else `none`.
        prediction_type (`str`, defaults to `"epsilon"`): `epsilon`, `sample` (x0), `v_prediction`
            (v = α ε − σ x0) or `joint` (2C output channels ordered [ε, x0]; the ε half drives the update,
            as Corollary 1 is written in ε̂). With `preconditioning="edm"` only `epsilon` and `v_prediction`
            are allowed and mean EDM's F-network output, exactly as in diffusers' `EDMEulerScheduler`.
        timestep_spacing (`str`, *optional*): the rungs. `leading`, `trailing`, `linspace` as diffusers
            (discrete tables only; continuous `linspace` is uniform in the family's time), `logsnr` (uniform
            in λ) and `karras` (σ̃ = exp(−λ/2) Karras-spaced with exponent `rho`). `logsnr`/`karras` run from
            the schedule's noisiest to its cleanest level and give fractional timesteps on discrete tables.
            `None` = `leading` for discrete tables, `karras` for continuous families (EDM's discretisation,
            which seed 001 uses), or `logsnr` for an EDM config with `sigma_schedule="exponential"`.
        sigma_schedule (`str`, *optional*): EDM config key, read only to choose the default spacing.
        steps_offset (`int`, defaults to 0): added to `leading` timesteps, as in diffusers.
        gamma (`float`, defaults to 0.0): Corollary 1's γ (> −1; γ = −1 is singular and for γ < −1 the last
            rung to λ = +∞ diverges).
        delta (`float`, defaults to 1.0): Corollary 1's δ (> 0, so the last rung adds no noise).
        sde_rho (`float`, defaults to 0.0): Corollary 1's ρ >= 0 (0 = deterministic). For
            `variant="non_markovian"` it is the scale η of b (below).
        variant (`str`, defaults to `"corollary1"`): `corollary1` or `non_markovian` (eq. 9). For eq. 9 we
            choose ``b(τ) = η²·log sigmoid(λ_τ)`` in the variance-preserving units of the same log-SNR (z/α ·
            sqrt(sigmoid λ)), so that for small steps β² → η²·σ²·dλ, the DDPM posterior variance (η = 1 is
            ancestral DDPM in the continuous limit, η = 0 is DDIM); β is capped at σ_s so that
            sqrt(σ_s² − β²) is real on long steps (eq. 9 needs β ≤ σ_s). γ and δ must keep their defaults.
        clip_sample (`bool`, defaults to `False`), clip_sample_range (`float`, defaults to 1.0): clamp x̂0
            (ε̂ is then recomputed from the clamped x̂0), as DDPM/DDIM do.
        rescale_betas_zero_snr (`bool`, defaults to `False`): not supported (λ = −∞ at the first rung);
            accepted only to refuse it clearly.

    Presets (seed 001's tuned values, SPEC §3): :attr:`PRESETS` and :meth:`from_preset`, e.g.
    ``S2NGeneralizedScheduler.from_preset("deterministic", pipe.scheduler.config)``.
    """

    _compatibles = [e.name for e in KarrasDiffusionSchedulers]
    order = 1

    PRESETS: ClassVar[Dict[str, Dict[str, float]]] = {
        # seed 001 §4: EDM checkpoints, NFE 79 (AFHQv2 VP FID 2.38 → 2.09)
        "deterministic": {"sde_rho": 0.0, "gamma": 0.026, "delta": 1.0},
        # seed 001 §4: CIFAR-10 VP, NFE 511
        "stochastic": {"sde_rho": 1.0, "gamma": 1.25, "delta": 0.95},
    }

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: Optional[Union[np.ndarray, List[float]]] = None,
        schedule_params: Optional[Dict[str, float]] = None,
        noise_family: Optional[Literal["discrete", "vp", "ve", "iddpm", "fm-ot", "edm"]] = None,
        sigma_min: Optional[float] = None,
        sigma_max: Optional[float] = None,
        sigma_data: Optional[float] = None,
        rho: float = 7.0,
        preconditioning: Optional[Literal["none", "edm"]] = None,
        prediction_type: Literal["epsilon", "sample", "v_prediction", "joint"] = "epsilon",
        timestep_spacing: Optional[Literal["leading", "trailing", "linspace", "logsnr", "karras"]] = None,
        sigma_schedule: Optional[Literal["karras", "exponential"]] = None,
        steps_offset: int = 0,
        gamma: float = 0.0,
        delta: float = 1.0,
        sde_rho: float = 0.0,
        variant: Literal["corollary1", "non_markovian"] = "corollary1",
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        rescale_betas_zero_snr: bool = False,
    ):
        self._validate_sampler_parameters(gamma, delta, sde_rho, variant)
        if rescale_betas_zero_snr:
            raise ValueError("rescale_betas_zero_snr=True is not supported: the first rung would have λ = −∞.")
        if not clip_sample_range > 0:
            raise ValueError(f"clip_sample_range must be > 0, got {clip_sample_range!r}.")
        if not (isinstance(rho, (int, float)) and rho > 0):
            raise ValueError(f"rho (the Karras exponent) must be > 0, got {rho!r}.")

        if noise_family is None:
            noise_family = "edm" if sigma_data is not None else "discrete"
        if noise_family not in NOISE_FAMILIES:
            raise ValueError(f"noise_family must be one of {NOISE_FAMILIES}, got {noise_family!r}.")
        if preconditioning is None:
            preconditioning = "edm" if noise_family == "edm" else "none"
        if preconditioning not in PRECONDITIONINGS:
            raise ValueError(f"preconditioning must be one of {PRECONDITIONINGS}, got {preconditioning!r}.")
        if preconditioning == "edm" and sigma_data is None:
            sigma_data = 0.5
        if sigma_data is not None and not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data!r}.")
        allowed_predictions = ("epsilon", "v_prediction") if preconditioning == "edm" else PREDICTION_TYPES
        if prediction_type not in allowed_predictions:
            raise ValueError(
                f"prediction_type must be one of {allowed_predictions} with preconditioning={preconditioning!r}, "
                f"got {prediction_type!r}."
            )
        if timestep_spacing is None:
            if noise_family == "discrete":
                timestep_spacing = "leading"
            else:
                timestep_spacing = "logsnr" if sigma_schedule == "exponential" else "karras"
        allowed_spacings = DISCRETE_SPACINGS if noise_family == "discrete" else CONTINUOUS_SPACINGS
        if timestep_spacing not in allowed_spacings:
            raise ValueError(
                f"timestep_spacing must be one of {allowed_spacings} for noise_family={noise_family!r}, got {timestep_spacing!r}."
            )
        # Store the resolved choices, so that a saved config reloads to the same sampler.
        self.register_to_config(
            noise_family=noise_family, preconditioning=preconditioning, sigma_data=sigma_data, timestep_spacing=timestep_spacing
        )

        self.schedule: NoiseSchedule = self._build_schedule()
        if isinstance(self.schedule, DiscreteSchedule):
            self.alphas_cumprod = self.schedule.alphas_cumprod.to(torch.float32)
        t_max = self.schedule.t_max
        # Standard deviation of z at the noisiest level for unit-variance data: 1 for VP families and
        # sqrt(σ_max² + 1) for EDM, as diffusers' EDMEulerScheduler.
        self.init_noise_sigma = math.hypot(float(self.schedule.alpha(t_max)), float(self.schedule.sigma(t_max)))
        self.num_inference_steps: Optional[int] = None
        self.timesteps = self._model_timesteps(
            torch.linspace(t_max, self.schedule.t_min, num_train_timesteps, dtype=torch.float64)
        )
        self._rung_alpha: Optional[torch.Tensor] = None
        self._rung_sigma: Optional[torch.Tensor] = None
        self._rung_logsnr: Optional[torch.Tensor] = None
        self._step_index: Optional[int] = None
        self._begin_index: Optional[int] = None

    # ------------------------------------------------------------------ construction helpers

    @staticmethod
    def _validate_sampler_parameters(gamma: float, delta: float, sde_rho: float, variant: str) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
        for name, value in (("gamma", gamma), ("delta", delta), ("sde_rho", sde_rho)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}.")
        if gamma == -1:
            raise ValueError("gamma = -1 is singular in Corollary 1 (the factor 1/(1+γ)); use gamma > -1.")
        if gamma < -1:
            raise ValueError(f"gamma must be > -1 (for gamma < -1 the last step to clean data diverges), got {gamma!r}.")
        if sde_rho < 0:
            raise ValueError(f"sde_rho (the S2N ρ) must be >= 0, got {sde_rho!r}.")
        if not delta > 0:
            raise ValueError(f"delta must be > 0 (δ = 0 would add noise on the last step to clean data), got {delta!r}.")
        if variant == "non_markovian" and (gamma != 0 or delta != 1):
            raise ValueError(
                f"gamma and delta belong to variant='corollary1'; the non-Markovian variant takes only sde_rho (got "
                f"gamma={gamma!r}, delta={delta!r})."
            )

    def _build_schedule(self) -> NoiseSchedule:
        cfg = self.config
        extra = dict(cfg.schedule_params or {})
        if cfg.noise_family == "discrete":
            if cfg.sigma_min is not None or cfg.sigma_max is not None:
                raise ValueError("sigma_min/sigma_max apply to the 've' and 'edm' families, not to a discrete table.")
            return training_schedule(cfg.num_train_timesteps, cfg.beta_schedule, cfg.beta_start, cfg.beta_end, cfg.trained_betas, extra)
        for key in ("sigma_min", "sigma_max"):
            value = cfg[key]
            if value is None:
                continue
            if cfg.noise_family not in _SIGMA_RANGE_FAMILIES:
                raise ValueError(f"{key} applies to the families {_SIGMA_RANGE_FAMILIES}, not to {cfg.noise_family!r}.")
            extra[key] = float(value)
        return get_schedule(cfg.noise_family, **extra)

    @classmethod
    def from_config(cls, config: Union[Dict[str, Any], None] = None, return_unused_kwargs: bool = False, **kwargs):
        """diffusers' `from_config`, which also recognises an EDM scheduler's config.

        diffusers drops the keys an in-memory config left at their defaults (`_use_default_values`), so an
        `EDMEulerScheduler()` config may arrive without `sigma_data`; its presence in the source config is what
        marks an EDM model, hence `noise_family="edm"` is set here unless the config or kwargs choose a family.
        """
        config = dict(config or {})
        if config.get("sigma_data") is not None and config.get("noise_family") is None and kwargs.get("noise_family") is None:
            kwargs["noise_family"] = "edm"
        return super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)

    @classmethod
    def from_preset(cls, name: Literal["deterministic", "stochastic"], config: Optional[Dict[str, Any]] = None, **overrides):
        """A scheduler with seed 001's tuned (ρ, γ, δ) (:attr:`PRESETS`), optionally from another scheduler's config."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; allowed: {tuple(cls.PRESETS)}.")
        params = {**cls.PRESETS[name], **overrides}
        return cls(**params) if config is None else cls.from_config(config, **params)

    # ------------------------------------------------------------------ noise levels and model time

    def _model_timesteps(self, schedule_times: torch.Tensor) -> torch.Tensor:
        """What the model is told for schedule times τ (float64): c_noise for EDM preconditioning, else τ itself
        (diffusers' integer timesteps when every τ is an integer of a discrete table)."""
        if self.config.preconditioning == "edm":
            return (-0.125 * self.schedule.logsnr(schedule_times)).to(torch.float32)  # ¼·ln σ̃, σ̃ = exp(−λ/2)
        if isinstance(self.schedule, DiscreteSchedule) and bool((schedule_times == schedule_times.round()).all()):
            return schedule_times.round().to(torch.long)
        return schedule_times.to(torch.float32)

    def _representable_times(self, times: torch.Tensor) -> torch.Tensor:
        """The rung times rounded as the model will be told them (float32 unless every τ is an integer of a
        discrete table), kept inside the schedule's domain, back in float64: the update then uses exactly the
        noise level the model sees, and a model that checks its time range accepts every timestep."""
        if self.config.preconditioning == "edm" or (
            isinstance(self.schedule, DiscreteSchedule) and bool((times == times.round()).all())
        ):
            return times
        told = times.to(torch.float32)
        lo, hi = torch.tensor(self.schedule.t_min, dtype=torch.float32), torch.tensor(self.schedule.t_max, dtype=torch.float32)
        lo = torch.where(lo.double() < self.schedule.t_min, torch.nextafter(lo, torch.tensor(math.inf)), lo)
        hi = torch.where(hi.double() > self.schedule.t_max, torch.nextafter(hi, torch.tensor(-math.inf)), hi)
        return told.clamp(lo, hi).to(torch.float64)

    def _schedule_times(self, model_timesteps: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_model_timesteps` (float64 schedule times)."""
        t = torch.as_tensor(model_timesteps).detach().to("cpu", torch.float64).flatten()
        if self.config.preconditioning == "edm":
            lam = -8.0 * t
            # c_noise is float32: snap the ends of the range, which it rounds to just outside, back onto them.
            for bound in self.schedule.logsnr_range:
                lam = torch.where((lam - bound).abs() <= 1e-5 * (1.0 + abs(bound)), torch.full_like(lam, bound), lam)
            return self.schedule.t_from_logsnr(lam)
        return t

    def _spaced_schedule_times(self, num_inference_steps: int) -> torch.Tensor:
        """Descending schedule times of the rungs for `timestep_spacing` (float64)."""
        spacing, sched = self.config.timestep_spacing, self.schedule
        if isinstance(sched, DiscreteSchedule) and spacing in ("leading", "trailing", "linspace"):
            idx = spaced_indices(spacing, sched.num_train_timesteps, num_inference_steps, self.config.steps_offset)
            if idx[0] > sched.t_max:
                raise ValueError(
                    f"steps_offset={self.config.steps_offset} pushes the first timestep to {idx[0]} > {sched.t_max:g}."
                )
            return torch.from_numpy(idx).to(torch.float64)
        ramp = torch.linspace(0.0, 1.0, num_inference_steps, dtype=torch.float64)
        if spacing == "linspace":
            return sched.t_max + ramp * (sched.t_min - sched.t_max)
        lam_noisy, lam_clean = sched.logsnr_range
        if spacing == "logsnr":
            lam = lam_noisy + ramp * (lam_clean - lam_noisy)
        else:  # karras, in σ̃ = exp(−λ/2) (Karras et al. 2022, eq. 5)
            inv_rho = 1.0 / self.config.rho
            s_max, s_min = math.exp(-lam_noisy / 2) ** inv_rho, math.exp(-lam_clean / 2) ** inv_rho
            lam = -2.0 * self.config.rho * torch.log(s_max + ramp * (s_min - s_max))
        times = sched.t_from_logsnr(lam)
        # The ends are the schedule's own ends exactly (integers on a discrete table), not bisection results.
        times[0], times[-1] = sched.t_max, sched.t_min
        return times

    # ------------------------------------------------------------------ standard scheduler API

    def set_timesteps(
        self,
        num_inference_steps: Optional[int] = None,
        device: Union[str, torch.device, None] = None,
        timesteps: Optional[List[float]] = None,
    ) -> None:
        """
        Builds the rungs and the model timesteps for inference.

        Args:
            num_inference_steps (`int`, *optional*): number of model calls, spaced by `timestep_spacing`.
            device (`str` or `torch.device`, *optional*): where `timesteps` live.
            timesteps (`List[float]`, *optional*): explicit strictly descending rungs in the schedule's own time
                variable (diffusers' timesteps for a discrete table, fractional allowed; σ for `edm`).
        """
        if (timesteps is None) == (num_inference_steps is None):
            raise ValueError("pass exactly one of `num_inference_steps` or `timesteps`.")
        if timesteps is not None:
            times = torch.as_tensor(timesteps, dtype=torch.float64).flatten()
            if len(times) == 0 or bool((times[1:] >= times[:-1]).any()):
                raise ValueError(f"`timesteps` must be strictly descending, got {list(timesteps)}.")
        else:
            maximum = self.schedule.num_train_timesteps if isinstance(self.schedule, DiscreteSchedule) else None
            if (
                isinstance(num_inference_steps, bool)
                or not isinstance(num_inference_steps, int)
                or num_inference_steps < 1
                or (maximum is not None and num_inference_steps > maximum)
            ):
                raise ValueError(
                    f"num_inference_steps must be an integer in [1, {maximum or 'inf'}], got {num_inference_steps!r}."
                )
            times = self._spaced_schedule_times(num_inference_steps)
        self.schedule.logsnr(times)  # checks the range before rounding could hide a bad value
        times = self._representable_times(times)
        lam = self.schedule.logsnr(times)
        self.timesteps = self._model_timesteps(times).to(device)
        # Rung levels in float64, with the clean end (λ = +∞, α = 1, σ = 0) appended.
        self._rung_logsnr = torch.cat([lam, torch.tensor([math.inf], dtype=torch.float64)])
        self._rung_alpha = torch.cat([self.schedule.alpha(times), torch.ones(1, dtype=torch.float64)])
        self._rung_sigma = torch.cat([self.schedule.sigma(times), torch.zeros(1, dtype=torch.float64)])
        self.num_inference_steps = len(times)
        self._step_index = None
        self._begin_index = None

    def _edm_coefficients(self, sigma_tilde: float) -> Tuple[float, float, float]:
        """EDM's c_in, c_skip, c_out at σ̃ (Karras et al. 2022, Table 1; signs as diffusers' EDMEulerScheduler)."""
        sd = self.config.sigma_data
        norm = math.sqrt(sigma_tilde**2 + sd**2)
        c_out = sigma_tilde * sd / norm
        return 1.0 / norm, sd**2 / norm**2, (c_out if self.config.prediction_type == "epsilon" else -c_out)

    def scale_model_input(self, sample: torch.Tensor, timestep: Optional[Union[float, torch.Tensor]] = None) -> torch.Tensor:
        """With EDM preconditioning the model sees c_in·z/α (EDM's input scaling); otherwise z unchanged."""
        if self.config.preconditioning == "none":
            return sample
        if self._rung_logsnr is None:
            raise ValueError("call `set_timesteps` before `scale_model_input`.")
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        c_in = self._edm_coefficients(math.exp(-0.5 * float(self._rung_logsnr[i])))[0]
        return sample * (c_in / float(self._rung_alpha[i]))

    def _predictions(self, model_output: torch.Tensor, z: torch.Tensor, alpha: float, sigma: float, logsnr: float):
        """(x̂0, ε̂) at one rung from the model output, in the compute dtype of `z`."""
        pred = self.config.prediction_type
        if pred == "joint":
            model_output = model_output[:, : z.shape[1]]  # the ε half of [ε, x0]
        if self.config.preconditioning == "edm":
            _, c_skip, c_out = self._edm_coefficients(math.exp(-0.5 * logsnr))
            x0 = c_skip * (z / alpha) + c_out * model_output
        elif pred in ("epsilon", "joint"):
            x0 = (z - sigma * model_output) / alpha
        elif pred == "sample":
            x0 = model_output
        else:  # v = α ε − σ x0  ⇒  x0 = (α z − σ v)/(α² + σ²)
            x0 = (alpha * z - sigma * model_output) / (alpha**2 + sigma**2)
        if self.config.clip_sample:
            x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
        if pred in ("epsilon", "joint") and self.config.preconditioning == "none" and not self.config.clip_sample:
            return x0, model_output
        return x0, (z - alpha * x0) / sigma

    def step_coefficients(self, index: int) -> Tuple[float, float, float, float]:
        """(c_z, c_x0, c_eps, noise_std) with z_s = c_z·z_t + c_x0·x̂0 + c_eps·ε̂ + noise_std·ξ for rung `index`.

        Corollary 1 (SPEC §3), with h = λ_s − λ_t > 0 and exp(−λ_t/2) = σ_t/α_t:
            c_z = α_s/α_t,  c_eps = −(1+ρ²)/(1+γ)·α_s·(σ_t/α_t)·(1 − e^{−(1+γ)h/2}),
            noise_std = ρ·σ_t·sqrt(1 − e^{−h})·(α_s/α_t)^(1−δ)·(σ_s/σ_t)^δ,
        written with expm1 so that h = +∞ (the last rung) is exact. Eq. 9 (non-Markovian):
            c_x0 = α_s, c_eps = sqrt(σ_s² − β²), noise_std = β (see the class docstring for b).
        """
        a_t, a_s = float(self._rung_alpha[index]), float(self._rung_alpha[index + 1])
        s_t, s_s = float(self._rung_sigma[index]), float(self._rung_sigma[index + 1])
        lam_t, lam_s = float(self._rung_logsnr[index]), float(self._rung_logsnr[index + 1])
        h = lam_s - lam_t
        rho, gamma, delta = float(self.config.sde_rho), float(self.config.gamma), float(self.config.delta)
        if self.config.variant == "non_markovian":
            # b(τ) = ρ²·log sigmoid(λ_τ) in VP units; z-units scale by α_s/sqrt(sigmoid(λ_s)) = σ_s/sqrt(sigmoid(−λ_s)).
            vp_var_s = math.exp(_log_sigmoid(-lam_s))  # σ² of the VP schedule with log-SNR λ_s
            log_ratio = _log_sigmoid(lam_s) - _log_sigmoid(lam_t)
            vp_beta2 = min(rho**2 * log_ratio, vp_var_s)
            beta = 0.0 if vp_var_s == 0.0 else s_s * math.sqrt(vp_beta2 / vp_var_s)
            return 0.0, a_s, math.sqrt(max(s_s**2 - beta**2, 0.0)), beta
        c_eps = -(1.0 + rho**2) / (1.0 + gamma) * a_s * (s_t / a_t) * -math.expm1(-(1.0 + gamma) * h / 2.0)
        if rho == 0.0 or s_s == 0.0:
            noise_std = 0.0
        else:
            noise_std = rho * s_t * math.sqrt(-math.expm1(-h)) * (a_s / a_t) ** (1.0 - delta) * (s_s / s_t) ** delta
        return a_s / a_t, 0.0, c_eps, noise_std

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Union[int, float, torch.Tensor],
        sample: torch.Tensor,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        variance_noise: Optional[torch.Tensor] = None,
        return_dict: bool = True,
    ) -> Union[S2NGeneralizedSchedulerOutput, Tuple]:
        """
        One S2N update from the current rung to the next (:meth:`step_coefficients`).

        Args:
            model_output: the model's prediction at `timestep` (2C channels for `joint`).
            timestep: the current entry of `self.timesteps`.
            sample: the current noisy sample z_t.
            generator: random generator(s) for ξ (drawn only when the step adds noise, in the same order as
                diffusers' DDPMScheduler, so equal generators give equal noise).
            variance_noise: ξ itself, instead of drawing it.
            return_dict: return an `S2NGeneralizedSchedulerOutput` (True) or a tuple.
        """
        if self._rung_logsnr is None:
            raise ValueError("call `set_timesteps` before `step`.")
        expected_channels = 2 * sample.shape[1] if self.config.prediction_type == "joint" else sample.shape[1]
        if (
            model_output.ndim != sample.ndim
            or model_output.shape[1] != expected_channels
            or model_output.shape[2:] != sample.shape[2:]
            or (model_output.shape[0] != sample.shape[0])
        ):
            raise ValueError(
                f"model_output has shape {tuple(model_output.shape)} but prediction_type={self.config.prediction_type!r} "
                f"needs {expected_channels} channels for a sample of shape {tuple(sample.shape)}"
                + (" (joint heads are ordered [ε, x0])." if self.config.prediction_type == "joint" else ".")
            )
        check_finite(model_output, timestep)
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        if i >= self.num_inference_steps:
            raise ValueError(f"step called {i + 1} times but there are {self.num_inference_steps} rungs.")

        compute_dtype = torch.float64 if sample.dtype == torch.float64 else torch.float32
        z = sample.to(compute_dtype)
        alpha, sigma, logsnr = float(self._rung_alpha[i]), float(self._rung_sigma[i]), float(self._rung_logsnr[i])
        x0, eps = self._predictions(model_output.to(compute_dtype), z, alpha, sigma, logsnr)
        c_z, c_x0, c_eps, noise_std = self.step_coefficients(i)
        prev = c_z * z + c_x0 * x0 + c_eps * eps
        if noise_std > 0:
            if variance_noise is None:
                variance_noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            prev = prev + noise_std * variance_noise.to(compute_dtype)

        self._step_index += 1
        prev, x0 = prev.to(sample.dtype), x0.to(sample.dtype)
        if not return_dict:
            return (prev, x0)
        return S2NGeneralizedSchedulerOutput(prev_sample=prev, pred_original_sample=x0)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Forward marginal α_t x0 + σ_t ε at model timesteps (entries of `self.timesteps`, fractional allowed)."""
        if noise.shape != original_samples.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} differs from the samples' {tuple(original_samples.shape)}.")
        t = self._schedule_times(timesteps)
        shape = (-1,) + (1,) * (original_samples.ndim - 1)
        alpha = self.schedule.alpha(t).to(original_samples.device, original_samples.dtype).view(shape)
        sigma = self.schedule.sigma(t).to(original_samples.device, original_samples.dtype).view(shape)
        return alpha * original_samples + sigma * noise

    def __len__(self) -> int:
        return self.config.num_train_timesteps


def _log_sigmoid(x: float) -> float:
    """log sigmoid(x) = −log(1 + e^{−x}) without overflow, with log sigmoid(+∞) = 0."""
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))
