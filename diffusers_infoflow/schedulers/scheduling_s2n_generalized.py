"""S2NGeneralizedScheduler: seed 001's generalised signal-to-noise backward equation as a diffusers scheduler.

From time t to s < t (log-SNR λ_s > λ_t), with ε̂ = ε_θ(z_t, t) and ξ ~ N(0, I), seed 001 Corollary 1
reads

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

The model is met through :class:`~diffusers_infoflow.model_interface.ModelInterface`, so ``from_config`` of any
VP (DDPM/DDIM/PNDM/Euler/DPM/UniPC, zero-SNR included), EDM or flow-matching config works; the continuous
families ``vp, ve, iddpm, fm-ot`` serve exact-denoiser experiments. The coefficients below are written with
the family's own (α, σ), which Corollary 1 is covariant under (every term scales with the state).
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

from ..model_interface import NOISE_FAMILIES, ModelInterface
from ..schedules import NoiseSchedule
from ..step_placement import InformationMeasure, information_placement
from ._common import ModelInterfaceMixin, StepIndexMixin, check_finite


VARIANTS = ("corollary1", "non_markovian")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
STEP_SPACINGS = (None, "logsnr", "karras", "information")


def spacing_kwargs(spacing: str) -> Dict[str, str]:
    """The config key of a ladder name: ``{"timestep_spacing": spacing}`` for diffusers' ladders, ``{"step_spacing":
    spacing}`` for ours (e.g. ``S2NGeneralizedScheduler(**spacing_kwargs("logsnr"))``)."""
    if spacing not in TIMESTEP_SPACINGS + STEP_SPACINGS[1:]:
        raise ValueError(f"spacing must be one of {TIMESTEP_SPACINGS + STEP_SPACINGS[1:]}, got {spacing!r}.")
    return {"step_spacing" if spacing in STEP_SPACINGS else "timestep_spacing": spacing}


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


class S2NGeneralizedScheduler(ModelInterfaceMixin, StepIndexMixin, SchedulerMixin, ConfigMixin):
    """
    The generalised S2N sampler of seed 001 (Corollary 1 and eq. 9) for any noise schedule of the
    package. Every update goes from the current rung to the next; the last rung goes to clean data (λ = +∞,
    α = 1, σ = 0), where the ε-coefficient's limit ``(1+ρ²)/(1+γ)·σ_t/α_t`` and zero noise are used exactly.

    Args:
        num_train_timesteps (`int`, defaults to 1000): T of a discrete DDPM table.
        beta_start (`float`, defaults to 0.0001), beta_end (`float`, defaults to 0.02),
        beta_schedule (`str`, defaults to `"linear"`), trained_betas (*optional*): the discrete table, with
            diffusers' keys and the families of :func:`~diffusers_infoflow.schedules.get_betas`.
        schedule_params (`dict`, *optional*): extra parameters of the family: `s`, `p`, `amplitude`, `cycles`
            for discrete tables; `beta_min`, `beta_max`, `eps`, `s`, `t_max` for continuous families.
        rescale_betas_zero_snr (`bool`, defaults to `False`): Lin et al. (2023)'s zero-terminal-SNR table; the
            first rung is then pure noise (λ = −∞), from which the step is z_s = α_s·x̂0 + σ_s·ε̂.
        noise_family (`str`, *optional*): the model family (:mod:`diffusers_infoflow.model_interface`):
            `discrete` (the β table), `edm`, `flow` (flow matching), or an analytic family `vp, ve, iddpm, fm-ot`
            for exact-denoiser experiments. Set from the source class by `from_config`; `None` = `edm` when
            `sigma_data` is given, else `discrete`.
        sigma_min, sigma_max (`float`, *optional*): σ range of the `edm`/`ve` families (diffusers' EDM keys).
        sigma_data (`float`, *optional*): EDM's σ_d (default 0.5 with EDM preconditioning).
        rho (`float`, defaults to 7.0): the **Karras exponent** of `step_spacing="karras"` (diffusers' EDM
            key of the same name). The S2N stochasticity ρ is `sde_rho`.
        sigma_schedule (`str`, *optional*): EDM's ladder, `karras` or `exponential` (the default spacing).
        shift, use_dynamic_shifting, base_shift, max_shift, base_image_seq_len, max_image_seq_len, shift_terminal,
            time_shift_type: flow matching's time shift, as `FlowMatchEulerDiscreteScheduler` (pipelines read
            the `*_shift`/`*_seq_len` keys to compute `mu`).
        preconditioning (`str`, *optional*): `none` or `edm` (EDM's c_in, c_skip, c_out and c_noise = ¼·ln σ̃,
            σ̃ = e^{−λ/2}, as diffusers' EDM schedulers). `None` = `edm` for the `edm` family, else `none`.
        prediction_type (`str`, *optional*): `epsilon`, `sample`, `v_prediction`, `joint` (2C channels
            [ε, x0]) or `flow_prediction` (v = ε − x0); with EDM preconditioning `epsilon`/`v_prediction` mean
            EDM's F-network. `None` = `flow_prediction` for `flow`, else `epsilon`.
        joint_heads (`str`, defaults to `"velocity"`): how a `joint` model's heads are read: `velocity` (one
            v̂ = α·ε̂ − σ·x̂0, read as a v-prediction, so x̂0 and ε̂ add up to the state) or `separate` (each head as
            it is, seed 004's "DDIM + x̂0, ε̂"). Other prediction types have one head and ignore it.
        timestep_spacing (`str`, *optional*): diffusers' ladders `leading`, `trailing` (tables only) or `linspace` (for
            `flow`, FlowMatchEulerDiscreteScheduler's shifted ladder; for EDM and analytic families, uniform in their
            time). `None` = `leading` for tables, `linspace` for flow matching, EDM's own ladder (`karras`, or `logsnr`
            with `sigma_schedule="exponential"`) for EDM and analytic families.
        step_spacing (`str`, *optional*): our rung placements, used instead of `timestep_spacing` when set: `logsnr`
            (uniform in λ), `karras` (σ̃ Karras-spaced with exponent `rho`) or `information` (placed by the model's
            measured mmse curve, `information_curve`).
        steps_offset (`int`, defaults to 0): added to `leading` timesteps, as in diffusers.
        information_curve, information_measure, information_power: the `information` rungs, as in
            :class:`~diffusers_infoflow.schedulers.TrigAngleRKScheduler`.
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
            (a single-head model's ε̂ is then recomputed from the clamped x̂0), as DDPM/DDIM do.

    Presets (seed 001's tuned values): :attr:`PRESETS` and :meth:`from_preset`, e.g.
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
        rescale_betas_zero_snr: bool = False,
        noise_family: Optional[Literal["discrete", "edm", "flow", "vp", "ve", "iddpm", "fm-ot"]] = None,
        sigma_min: Optional[float] = None,
        sigma_max: Optional[float] = None,
        sigma_data: Optional[float] = None,
        rho: float = 7.0,
        sigma_schedule: Optional[Literal["karras", "exponential"]] = None,
        shift: float = 1.0,
        use_dynamic_shifting: bool = False,
        base_shift: float = 0.5,
        max_shift: float = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
        shift_terminal: Optional[float] = None,
        time_shift_type: Literal["exponential", "linear"] = "exponential",
        preconditioning: Optional[Literal["none", "edm"]] = None,
        prediction_type: Optional[Literal["epsilon", "sample", "v_prediction", "joint", "flow_prediction"]] = None,
        joint_heads: Literal["velocity", "separate"] = "velocity",
        timestep_spacing: Optional[Literal["leading", "trailing", "linspace"]] = None,
        step_spacing: Optional[Literal["logsnr", "karras", "information"]] = None,
        steps_offset: int = 0,
        information_curve: Optional[Dict[str, List[float]]] = None,
        information_measure: InformationMeasure = "mmse_decrease",
        information_power: float = 0.5,
        gamma: float = 0.0,
        delta: float = 1.0,
        sde_rho: float = 0.0,
        variant: Literal["corollary1", "non_markovian"] = "corollary1",
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
    ):
        self._validate_sampler_parameters(gamma, delta, sde_rho, variant)
        if not clip_sample_range > 0:
            raise ValueError(f"clip_sample_range must be > 0, got {clip_sample_range!r}.")
        if not (isinstance(rho, (int, float)) and rho > 0):
            raise ValueError(f"rho (the Karras exponent) must be > 0, got {rho!r}.")
        if noise_family is None:
            noise_family = "edm" if sigma_data is not None else "discrete"
        if noise_family not in NOISE_FAMILIES:
            raise ValueError(f"noise_family must be one of {NOISE_FAMILIES}, got {noise_family!r}.")
        if timestep_spacing is None and noise_family in ("discrete", "flow"):  # EDM/analytic: None = their own ladder
            timestep_spacing = "leading" if noise_family == "discrete" else "linspace"
        if timestep_spacing in STEP_SPACINGS[1:]:
            raise ValueError(f"timestep_spacing={timestep_spacing!r} is a `step_spacing` now: pass step_spacing={timestep_spacing!r}.")
        if (timestep_spacing is not None and timestep_spacing not in TIMESTEP_SPACINGS) or (
            noise_family != "discrete" and timestep_spacing in ("leading", "trailing")
        ):
            allowed = TIMESTEP_SPACINGS if noise_family == "discrete" else TIMESTEP_SPACINGS[2:]
            raise ValueError(f"timestep_spacing must be one of {allowed} for noise_family={noise_family!r}, got {timestep_spacing!r}.")
        if steps_offset and noise_family != "discrete":
            raise ValueError(f"steps_offset={steps_offset} shifts β-table ladders (noise_family='discrete'); this is a {noise_family!r} model.")
        if step_spacing not in STEP_SPACINGS:
            raise ValueError(f"step_spacing must be one of {STEP_SPACINGS}, got {step_spacing!r}.")
        self.information = information_placement(step_spacing, information_curve, information_measure, information_power)
        if self.information is not None:  # stored as used: JSON lists, the running minimum applied
            self.register_to_config(information_curve=self.information.to_config())
        # Store the resolved choices, so that a saved config reloads to the same sampler.
        self.register_to_config(noise_family=noise_family, timestep_spacing=timestep_spacing, step_spacing=step_spacing)
        self.interface = ModelInterface.from_config(self.config)
        self.register_to_config(
            preconditioning=self.interface.preconditioning,
            sigma_data=self.interface.sigma_data,
            prediction_type=self.interface.prediction_type,
        )
        if self.interface.family_time_is_index:
            self.alphas_cumprod = self.interface.schedule.alphas_cumprod.to(torch.float32)
        self.num_inference_steps: Optional[int] = None
        self.timesteps = self.interface.model_timesteps(self.interface.spaced_logsnrs(num_train_timesteps, "time"))[0]
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

    @property
    def schedule(self) -> NoiseSchedule:
        """The model's noise schedule (α, σ, λ over its own time variable)."""
        return self.interface.schedule

    @classmethod
    def from_preset(cls, name: Literal["deterministic", "stochastic"], config: Optional[Dict[str, Any]] = None, **overrides):
        """A scheduler with seed 001's tuned (ρ, γ, δ) (:attr:`PRESETS`), optionally from another scheduler's config."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; allowed: {tuple(cls.PRESETS)}.")
        params = {**cls.PRESETS[name], **overrides}
        return cls(**params) if config is None else cls.from_config(config, **params)

    # ------------------------------------------------------------------ standard scheduler API

    def set_timesteps(
        self,
        num_inference_steps: Optional[int] = None,
        device: Union[str, torch.device, None] = None,
        timesteps: Optional[List[float]] = None,
        sigmas: Optional[List[float]] = None,
        mu: Optional[float] = None,
    ) -> None:
        """
        Builds the rungs and the model timesteps for inference (diffusers' `retrieve_timesteps` contract).

        Args:
            num_inference_steps (`int`, *optional*): number of model calls, spaced by `step_spacing` or else
                `timestep_spacing`.
            device (`str` or `torch.device`, *optional*): where `timesteps` live.
            timesteps (`List[float]`, *optional*): explicit rungs as model timesteps (a discrete table's τ,
                fractional allowed; EDM's c_noise; flow matching's t · num_train_timesteps).
            sigmas (`List[float]`, *optional*): explicit rungs as the family's σ (Euler-style √((1 − ᾱ)/ᾱ) for a
                table, EDM's σ, flow matching's unshifted t, shifted here as FlowMatchEulerDiscreteScheduler does).
            mu (`float`, *optional*): flow matching's dynamic shift (`use_dynamic_shifting`), as FLUX passes it.
        """
        family = self.config.noise_family
        spacing = self.config.step_spacing or self.config.timestep_spacing or ("logsnr" if self.config.sigma_schedule == "exponential" else "karras")
        if timesteps is not None or sigmas is not None or mu is not None or spacing in ("leading", "trailing") or (
            spacing == "linspace" and family in ("discrete", "flow")
        ):
            lam = self.interface.native_logsnrs(num_inference_steps, timesteps=timesteps, sigmas=sigmas, mu=mu)
        else:
            if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
                raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
            lam = self.interface.spaced_logsnrs(
                num_inference_steps, {"linspace": "time"}.get(spacing, spacing), self.config.rho, self._place_by_information
            )
        told, lam = self.interface.model_timesteps(lam)
        self.timesteps = told.to(device)
        # Rung levels in float64, with the clean end (λ = +∞, α = 1, σ = 0) appended.
        self._rung_logsnr = torch.cat([lam, torch.tensor([math.inf], dtype=torch.float64)])
        self._rung_alpha, self._rung_sigma = self.interface.alpha_sigma(self._rung_logsnr)
        self.num_inference_steps = len(lam)
        self._step_index = None
        self._begin_index = None

    def _call_logsnr(self, index: int) -> float:
        return float(self._rung_logsnr[index])

    def step_coefficients(self, index: int) -> Tuple[float, float, float, float]:
        """(c_z, c_x0, c_eps, noise_std) with z_s = c_z·z_t + c_x0·x̂0 + c_eps·ε̂ + noise_std·ξ for rung `index`.

        Corollary 1, with h = λ_s − λ_t > 0 and exp(−λ_t/2) = σ_t/α_t:
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
        if a_t == 0.0 and self.config.variant == "corollary1":
            # From pure noise (λ_t = −∞) Corollary 1's ε-frozen integral diverges unless (1+ρ²) = (1+γ); the
            # step is the data-prediction limit z_s = α_s·x̂0 + σ_s·ε̂ (DDIM's step from ᾱ = 0), noise-free.
            return 0.0, a_s, s_s, 0.0
        if self.config.variant == "non_markovian":
            # b(τ) = ρ²·log sigmoid(λ_τ) in VP units; z-units scale by α_s/sqrt(sigmoid(λ_s)) = σ_s/sqrt(sigmoid(−λ_s)).
            vp_var_s = math.exp(_log_sigmoid(-lam_s))  # σ² of the VP schedule with log-SNR λ_s
            log_ratio = _log_sigmoid(lam_s) - _log_sigmoid(lam_t)
            vp_beta2 = 0.0 if rho == 0.0 else min(rho**2 * log_ratio, vp_var_s)
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

        Returns:
            `S2NGeneralizedSchedulerOutput` or `tuple`: `prev_sample` (the sample at the next rung, in the model
            family's units) and `pred_original_sample` (x̂0); the tuple is `(prev_sample, pred_original_sample)`.
        """
        if self._rung_logsnr is None:
            raise ValueError("call `set_timesteps` before `step`.")
        expected_channels = self.interface.output_channels(sample.shape[1])
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
        clip = self.config.clip_sample_range if self.config.clip_sample else None
        x0, eps = self.interface.predictions(model_output.to(compute_dtype), z, float(self._rung_logsnr[i]), clip)
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


def _log_sigmoid(x: float) -> float:
    """log sigmoid(x) = −log(1 + e^{−x}) without overflow, with log sigmoid(+∞) = 0."""
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))
