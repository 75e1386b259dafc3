"""EntropyHybridScheduler: seed 000's entropy-guided reverse process as a diffusers scheduler.

The scheduler walks a *ladder of noise levels* and, at every rung, tells the model the timestep of its own
training schedule that has the same entropy ``H(x_t | x0) = (n/2)·ln(2πe(1 − ᾱ_t))`` (seed 000 eq. 5). The
ladder comes from

* the training schedule itself (the default: a drop-in for ``DDPMScheduler``/``DDIMScheduler``),
* another schedule or length (``sampling_schedule``, ``sampling_num_timesteps``): seed 000 §3.2.1–3.2.2,
* a list of ``segments`` that switch schedule at matched entropy (seed 000 §3.2.3, "Quadratic 300→178 then
  Cosine 130→0"), optionally with one model per segment (``segment_models=True``), or
* a restoration start: an image noised under another schedule enters at exactly its own noise level
  (:meth:`EntropyHybridScheduler.set_restoration_timesteps`, seed 000 Tables 2–5).

Every update goes from one rung's ᾱ to the next with the DDIM(η) family of Song et al. (2021, eq. 12):
``η = 1`` is the DDPM posterior ``q(x_s | x_t, x̂0)`` (ancestral DDPM, the paper's sampler), ``η = 0`` is
deterministic DDIM. The update always uses the noise level of the timestep the model was told. Updates run on
the variance-preserving state; the model is met through
:class:`~diffusers_infoflow.model_interface.ModelInterface`, so VP tables (zero-SNR included), EDM and
flow-matching models all work, and entropy matching between families is log-SNR matching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor

from ..entropy import as_discrete_schedule
from ..model_interface import ModelInterface, spaced_table_logsnrs
from ..schedules import (
    DIFFUSERS_BETA_SCHEDULE_ALIASES,
    DISCRETE_SCHEDULES,
    DiscreteSchedule,
    NoiseSchedule,
    family_params,
)
from ..step_placement import InformationMeasure, information_placement
from ._common import ModelInterfaceMixin, StepIndexMixin, check_model_output


logger = logging.get_logger(__name__)

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
STEP_SPACINGS = (None, "information")


@dataclass
class EntropyHybridSchedulerOutput(BaseOutput):
    """
    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            The sample at the next (less noisy) rung of the ladder.
        pred_original_sample (`torch.Tensor` of the same shape):
            The model's estimate of the clean sample x̂0 (after `clip_sample`, if enabled).
    """

    prev_sample: torch.Tensor
    pred_original_sample: Optional[torch.Tensor] = None


class EntropyHybridScheduler(ModelInterfaceMixin, StepIndexMixin, SchedulerMixin, ConfigMixin):
    """
    Entropy-guided DDPM/DDIM sampler (seed 000 §3): sample along any schedule, length or sequence of schedule
    segments with a model trained on one schedule, telling the model its entropy-matched training timestep.

    The config describes the **model** with its family's diffusers keys, so
    `EntropyHybridScheduler.from_config(pipe.scheduler.config)` works on DDPM/DDIM/SD (VP, zero-SNR included), EDM
    and flow-matching pipelines (:mod:`diffusers_infoflow.model_interface`).

    Args:
        num_train_timesteps (`int`, defaults to 1000): T of the training schedule.
        beta_start (`float`, defaults to 0.0001): β_1 of the families that take it.
        beta_end (`float`, defaults to 0.02): β_T of the families that take it.
        beta_schedule (`str`, defaults to `"linear"`): the training schedule: one of
            `linear, quadratic, sigmoid, cosine, power, wave, trig, jsd`, or diffusers' `scaled_linear`
            (= quadratic) and `squaredcos_cap_v2` (= cosine).
        trained_betas (`np.ndarray` or `List[float]`, *optional*): explicit training betas (override the above).
        schedule_params (`dict`, *optional*): extra family parameters (`s`, `p`, `amplitude`, `cycles`).
        rescale_betas_zero_snr (`bool`, defaults to `False`): Lin et al. (2023)'s zero-terminal-SNR table (its
            first rung is pure noise, ᾱ = 0; the model must predict v or x0 there).
        noise_family (`str`, defaults to `"discrete"`): the model family, `discrete` (a β table), `edm` or `flow`
            (flow matching); set from the source class by `from_config`.
        sigma_min, sigma_max, sigma_data, sigma_schedule, rho: an EDM model's σ range, σ_d and native ladder.
        shift, use_dynamic_shifting, base_shift, max_shift, base_image_seq_len, max_image_seq_len, shift_terminal,
            time_shift_type: a flow-matching model's time shift, as `FlowMatchEulerDiscreteScheduler`.
        prediction_type (`str`, *optional*): what the model predicts: `epsilon`, `sample`, `v_prediction`,
            `joint` ([ε, x0]) or `flow_prediction`; `None` = the family's own (`flow_prediction` for `flow`,
            else `epsilon`; for `edm` EDM's F-network).
        joint_heads (`str`, defaults to `"velocity"`): how a `joint` model's heads are read: `velocity` (one
            v̂ = α·ε̂ − σ·x̂0, read as a v-prediction, so x̂0 and ε̂ add up to the state) or `separate` (each head as
            it is, seed 004's "DDIM + x̂0, ε̂"). Other prediction types have one head and ignore it.
        clip_sample (`bool`, defaults to `False`): clamp x̂0 to `[-clip_sample_range, clip_sample_range]`.
        clip_sample_range (`float`, defaults to 1.0): the clamp bound.
        timestep_spacing (`str`, defaults to `"leading"`): `leading`, `trailing` or `linspace`, as in diffusers
            (for a `discrete` model or sampling schedule; EDM and flow models walk their native ladders).
        step_spacing (`str`, *optional*): `information` places the model's own levels by its measured mmse curve
            (`information_curve`; not with `sampling_schedule` or `segments`) instead of `timestep_spacing`.
        steps_offset (`int`, defaults to 0): added to `leading` timesteps, as in diffusers.
        information_curve, information_measure, information_power: the `information` rungs, as in
            :class:`~diffusers_infoflow.schedulers.TrigAngleRKScheduler`.
        eta (`float`, defaults to 1.0): stochasticity in [0, 1]; 1 = ancestral DDPM (seed 000), 0 = DDIM.
        sampling_schedule (`str`, *optional*): the schedule whose noise levels the sampler walks; `None` = the
            training schedule.
        sampling_num_timesteps (`int`, *optional*): T of the sampling schedule; `None` = `num_train_timesteps`.
        sampling_schedule_params (`dict`, *optional*): family parameters of the sampling schedule.
        segments (`List[dict]`, *optional*): a hybrid reverse process. Each segment is
            `{"schedule": name, "num_timesteps": T, "start": t_hi, "end": t_lo, "params": {...}}` in paper
            steps; the model is evaluated at steps `t_hi, ..., t_lo + 1` of that schedule and the last update
            of a segment lands on the next segment's first level (the last segment should end at 0).
            Overrides `sampling_schedule`.
        segment_models (`bool`, defaults to `False`): with `segments`, whether each segment has its own model
            trained on that segment's schedule (then `timesteps` are each segment's native timesteps and
            `segment_ids` tells a pipeline which model to call); otherwise one model trained on the config's
            schedule serves every segment through entropy matching.
        fractional_timesteps (`bool`, defaults to `True`): tell the model the exact fractional matched
            timestep (a float tensor; `UNet2DModel` accepts it). If `False`, the matched timestep is rounded
            and the update uses the rounded timestep's noise level, as seed 000 does (`discrete` models only).
        thresholding (`bool`, defaults to `False`): not supported; accepted only to refuse it clearly.
    """

    _compatibles = [e.name for e in KarrasDiffusionSchedulers]
    order = 1

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
        noise_family: Literal["discrete", "edm", "flow"] = "discrete",
        sigma_min: Optional[float] = None,
        sigma_max: Optional[float] = None,
        sigma_data: Optional[float] = None,
        sigma_schedule: Optional[Literal["karras", "exponential"]] = None,
        rho: float = 7.0,
        shift: float = 1.0,
        use_dynamic_shifting: bool = False,
        base_shift: float = 0.5,
        max_shift: float = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
        shift_terminal: Optional[float] = None,
        time_shift_type: Literal["exponential", "linear"] = "exponential",
        prediction_type: Optional[Literal["epsilon", "sample", "v_prediction", "joint", "flow_prediction"]] = None,
        joint_heads: Literal["velocity", "separate"] = "velocity",
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        timestep_spacing: Literal["leading", "trailing", "linspace"] = "leading",
        step_spacing: Optional[Literal["information"]] = None,
        steps_offset: int = 0,
        information_curve: Optional[Dict[str, List[float]]] = None,
        information_measure: InformationMeasure = "mmse_decrease",
        information_power: float = 0.5,
        eta: float = 1.0,
        sampling_schedule: Optional[str] = None,
        sampling_num_timesteps: Optional[int] = None,
        sampling_schedule_params: Optional[Dict[str, float]] = None,
        segments: Optional[List[Dict]] = None,
        segment_models: bool = False,
        fractional_timesteps: bool = True,
        thresholding: bool = False,
    ):
        if noise_family not in ("discrete", "edm", "flow"):
            raise ValueError(f"noise_family must be one of ('discrete', 'edm', 'flow'), got {noise_family!r}.")
        if timestep_spacing == "information":
            raise ValueError("timestep_spacing='information' is a `step_spacing` now: pass step_spacing='information'.")
        if timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {timestep_spacing!r}.")
        if noise_family != "discrete" and sampling_schedule is None and not segments and (timestep_spacing != "leading" or steps_offset):
            raise ValueError(
                f"timestep_spacing={timestep_spacing!r} and steps_offset={steps_offset} place rungs on a β table; this "
                f"{noise_family!r} model walks its own ladder (give a `sampling_schedule` to walk a table's)."
            )
        if step_spacing not in STEP_SPACINGS:
            raise ValueError(f"step_spacing must be one of {STEP_SPACINGS}, got {step_spacing!r}.")
        if not 0.0 <= float(eta) <= 1.0:
            raise ValueError(f"eta must lie in [0, 1] (1 = DDPM, 0 = DDIM), got {eta!r}.")
        if not clip_sample_range > 0:
            raise ValueError(f"clip_sample_range must be > 0, got {clip_sample_range!r}.")
        if thresholding:
            raise ValueError("thresholding=True is not supported by EntropyHybridScheduler; use clip_sample.")
        self.information = information_placement(step_spacing, information_curve, information_measure, information_power)
        if self.information is not None:  # stored as used: JSON lists, the running minimum applied
            self.register_to_config(information_curve=self.information.to_config())
        if step_spacing == "information" and (segments or sampling_schedule is not None):
            raise ValueError("step_spacing='information' places the model's own levels; it cannot be combined with `segments` or `sampling_schedule`.")
        if segment_models and not segments:
            raise ValueError("segment_models=True needs `segments`.")
        if noise_family != "discrete" and (segment_models or not fractional_timesteps):
            raise ValueError(
                "segment_models=True and fractional_timesteps=False need models trained on β tables "
                f"(noise_family='discrete'); this is a {noise_family!r} model."
            )
        self.interface = ModelInterface.from_config(self.config)
        self.register_to_config(prediction_type=self.interface.prediction_type)
        # Fail at construction, not at the first set_timesteps, on a bad sampling set-up.
        self._segment_schedules = self._parse_segments(segments) if segments else None
        self._sampling_schedule = self._build_sampling_schedule()

        if self.interface.family_time_is_index:
            self.alphas_cumprod = self.interface.schedule.alphas_cumprod.to(torch.float32)
        self.num_inference_steps: Optional[int] = None
        self.timesteps = self.interface.model_timesteps(self.interface.spaced_logsnrs(num_train_timesteps, "time"))[0]
        self.segment_ids = torch.zeros(num_train_timesteps, dtype=torch.long)
        self._ladder_logsnr: Optional[torch.Tensor] = None
        self._step_index: Optional[int] = None
        self._begin_index: Optional[int] = None

    @property
    def train_schedule(self) -> NoiseSchedule:
        """The noise schedule the model was trained on (a :class:`DiscreteSchedule` for β tables)."""
        return self.interface.schedule

    # ------------------------------------------------------------------ construction helpers

    def _parse_segments(self, segments: Sequence[Dict]) -> List[Tuple[DiscreteSchedule, int, int]]:
        parsed = []
        allowed_keys = {"schedule", "num_timesteps", "start", "end", "params"}
        for i, seg in enumerate(segments):
            if not isinstance(seg, dict) or not {"schedule", "num_timesteps", "start", "end"} <= set(seg) or set(seg) - allowed_keys:
                raise ValueError(
                    f"segment {i} is {seg!r}; each segment must be a dict with keys schedule, num_timesteps, start, end "
                    "(and optionally params)."
                )
            name, T, start, end = seg["schedule"], seg["num_timesteps"], seg["start"], seg["end"]
            if name not in DISCRETE_SCHEDULES and name not in DIFFUSERS_BETA_SCHEDULE_ALIASES:
                raise ValueError(f"segment {i}: unknown schedule {name!r}; allowed: {', '.join(DISCRETE_SCHEDULES)}.")
            schedule = as_discrete_schedule(name, T, **family_params(name, self.config.beta_start, self.config.beta_end, seg.get("params")))
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= end < start <= T):
                raise ValueError(f"segment {i}: need integers 0 <= end < start <= num_timesteps={T}, got start={start!r}, end={end!r}.")
            parsed.append((schedule, start, end))
        return parsed

    def _build_sampling_schedule(self) -> Optional[DiscreteSchedule]:
        """The table whose levels the sampler walks, or `None` for the model's own ladder."""
        name = self.config.sampling_schedule
        if name is None:
            if self.config.sampling_num_timesteps not in (None, self.config.num_train_timesteps) or self.config.sampling_schedule_params:
                if self.config.noise_family != "discrete":
                    raise ValueError("sampling_num_timesteps/sampling_schedule_params without sampling_schedule need a β-table model.")
                name = self.config.beta_schedule  # a different length of the training family
            else:
                return None
        T = self.config.sampling_num_timesteps or self.config.num_train_timesteps
        params = family_params(name, self.config.beta_start, self.config.beta_end, self.config.sampling_schedule_params)
        return as_discrete_schedule(name, T, **params)

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
        Builds the ladder of noise levels and the model timesteps for inference.

        Args:
            num_inference_steps (`int`, *optional*): number of model calls. Without `segments` it is required
                (unless `timesteps` or `sigmas` are given) and spaced by `timestep_spacing` (a `discrete` model or
                sampling schedule) or the model's native ladder (EDM, flow matching); with `segments`, `None` runs
                every step of every segment (the paper's 252-step hybrid) and a number is shared among the
                segments in proportion to their lengths.
            device (`str` or `torch.device`, *optional*): where `timesteps` live.
            timesteps (`List[float]`, *optional*): explicit descending timesteps: 0-based steps of
                `sampling_schedule` if one is set, else model timesteps.
            sigmas (`List[float]`, *optional*): explicit rungs as the model family's σ (see
                :meth:`~diffusers_infoflow.model_interface.ModelInterface.native_logsnrs`).
            mu (`float`, *optional*): flow matching's dynamic shift, as FLUX pipelines pass it.
        """
        if self._segment_schedules is not None:
            if timesteps is not None or sigmas is not None or mu is not None:
                raise ValueError("custom `timesteps`/`sigmas`/`mu` cannot be combined with `segments`.")
            self._set_ladder(self._segment_points(num_inference_steps), device)
            return
        sched = self._sampling_schedule
        if sched is None and self.config.step_spacing == "information" and timesteps is None and sigmas is None and mu is None:
            self._check_num_steps(num_inference_steps, self.config.num_train_timesteps)
            self._set_ladder([(self.interface.spaced_logsnrs(num_inference_steps, "information", place=self._place_by_information), 0, None)], device)
            return
        if sched is None:
            lam = self.interface.native_logsnrs(num_inference_steps, timesteps=timesteps, sigmas=sigmas, mu=mu)
            self._set_ladder([(lam, 0, None)], device)
            return
        if sigmas is not None or mu is not None:
            raise ValueError("`sigmas`/`mu` describe the model's own ladder; this scheduler walks `sampling_schedule` (pass `timesteps`).")
        T = sched.num_train_timesteps
        if timesteps is not None:
            if num_inference_steps is not None:
                raise ValueError("pass either `num_inference_steps` or `timesteps`, not both.")
            idx = np.asarray(timesteps, dtype=np.int64)
            if idx.ndim != 1 or len(idx) == 0 or (np.diff(idx) >= 0).any() or idx[0] > T - 1 or idx[-1] < 0:
                raise ValueError(f"`timesteps` must be strictly descending integers in [0, {T - 1}], got {list(timesteps)}.")
            lam = sched.logsnr(torch.from_numpy(idx).to(torch.float64))
        else:
            if num_inference_steps is None:
                raise ValueError("`num_inference_steps` is required (or pass `timesteps`).")
            self._check_num_steps(num_inference_steps, T)
            lam = spaced_table_logsnrs(sched, num_inference_steps, self.config.timestep_spacing, self.config.steps_offset)
        self._set_ladder([(lam, 0, None)], device)

    def set_restoration_timesteps(
        self,
        source_step: Union[int, float],
        *,
        source_schedule: Union[str, torch.Tensor, DiscreteSchedule],
        source_num_timesteps: Optional[int] = None,
        source_params: Optional[Dict[str, float]] = None,
        num_inference_steps: Optional[int] = None,
        device: Union[str, torch.device, None] = None,
    ) -> None:
        """
        Ladder for restoring an image noised to paper step `source_step` of another schedule (seed 000
        Tables 2–5): the first rung is the sampling schedule's entropy-matched (fractional) step, so the
        image enters at its own noise level; the ladder then follows the sampling schedule's integer steps to 0.

        Args:
            source_step: the forward step (1..T of the source) the image was noised to.
            source_schedule: name, `alphas_cumprod` or schedule object of the noising process.
            source_num_timesteps: T of the source when `source_schedule` is a name.
            num_inference_steps: model calls; `None` = every integer step below the matched one.
        """
        if self._segment_schedules is not None:
            raise ValueError("set_restoration_timesteps cannot be combined with `segments`.")
        src = as_discrete_schedule(source_schedule, source_num_timesteps, **(source_params or {}))
        T_src = src.num_train_timesteps
        if not 1 <= float(source_step) <= T_src:
            raise ValueError(f"source_step {source_step} is out of range; steps count 1..{T_src}.")
        lam = src.logsnr(float(source_step) - 1)
        sched = self._sampling_schedule
        if sched is None and not self.interface.family_time_is_index:
            # An EDM or flow model: enter at the source's own level, then λ-uniform rungs to the model's clean end.
            lo, hi = self.interface.logsnr_range
            if not lo <= float(lam) < hi:
                raise ValueError(f"source step {source_step} has log-SNR {float(lam):.4g}, outside the model's range [{lo:.4g}, {hi:.4g}).")
            if num_inference_steps is None:
                raise ValueError(f"restoring with a {self.config.noise_family!r} model needs `num_inference_steps`.")
            self._check_num_steps(num_inference_steps, 10**6)
            rest = torch.linspace(float(lam), hi, num_inference_steps, dtype=torch.float64)
            self._set_ladder([(rest, 0, None)], device)
            return
        sched = sched or self.interface.schedule
        lo, hi = sched.logsnr_range
        if not lo <= float(lam) <= hi:
            raise ValueError(
                f"source step {source_step} has log-SNR {float(lam):.4g}, outside the sampling schedule's range [{lo:.4g}, {hi:.4g}]."
            )
        start = float(sched.t_from_logsnr(lam))
        below = math.ceil(start) - 1  # the largest integer step strictly below the entry level
        if num_inference_steps is None:
            rest = torch.arange(below, -1, -1, dtype=torch.float64)
        else:
            self._check_num_steps(num_inference_steps, below + 2)
            rest = torch.linspace(start, 0, num_inference_steps, dtype=torch.float64)[1:].round()
        self._set_ladder([(sched.logsnr(torch.cat([torch.tensor([start], dtype=torch.float64), rest])), 0, None)], device)

    def _segment_points(self, num_inference_steps: Optional[int]) -> List[Tuple[torch.Tensor, int, Optional[torch.Tensor]]]:
        lengths = [start - end for _, start, end in self._segment_schedules]
        if num_inference_steps is None:
            counts = lengths
        else:
            self._check_num_steps(num_inference_steps, sum(lengths))
            if num_inference_steps < len(lengths):
                raise ValueError(f"num_inference_steps={num_inference_steps} is fewer than the {len(lengths)} segments.")
            # Largest-remainder apportionment, at least one call per segment.
            shares = np.array(lengths, dtype=np.float64) * num_inference_steps / sum(lengths)
            counts = np.maximum(np.floor(shares).astype(int), 1)
            remainders = shares - np.floor(shares)
            for k in np.argsort(-remainders)[: max(0, num_inference_steps - counts.sum())]:
                counts[k] += 1
            while counts.sum() > num_inference_steps:  # the one-call minimum overshot: take back where most over the share
                k = max((k for k in range(len(counts)) if counts[k] > 1), key=lambda k: counts[k] - shares[k])
                counts[k] -= 1
            counts = counts.tolist()
        points = []
        for seg_id, ((sched, start, end), n) in enumerate(zip(self._segment_schedules, counts)):
            steps = torch.from_numpy(np.unique(np.linspace(start, end + 1, n).round().astype(np.int64))[::-1].copy() - 1)
            points.append((sched.logsnr(steps.to(torch.float64)), seg_id, steps if self.config.segment_models else None))
        return points

    @staticmethod
    def _check_num_steps(n: int, maximum: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= maximum:
            raise ValueError(f"num_inference_steps must be an integer in [1, {maximum}] (the steps available), got {n!r}.")

    def _set_ladder(self, points: List[Tuple[torch.Tensor, int, Optional[torch.Tensor]]], device) -> None:
        """From runs of (rung log-SNRs, segment id, the segment model's own timesteps or None) to model timesteps."""
        lo, hi = self.interface.told_logsnr_range
        taus, logsnrs, seg_ids = [], [], []
        clamped = 0
        for lam, seg_id, native in points:
            if native is not None:
                tau = native  # each segment's own model is told its native timestep
            else:
                outside = (lam < lo) | (lam > hi)
                clamped += int(outside.sum())
                lam = lam.clamp(lo, hi)
                if not self.config.fractional_timesteps:
                    lam = self.interface.schedule.logsnr(self.interface.times(lam).round())
                # the update uses the level of the timestep the model is told
                tau, lam = self.interface.model_timesteps(lam)
            taus.append(tau.to(torch.float64))
            logsnrs.append(lam)
            seg_ids.append(torch.full((len(lam),), seg_id, dtype=torch.long))
        if clamped:
            logger.warning(
                f"{clamped} noise level(s) of the sampling ladder lie outside the model's training range "
                f"[λ = {lo:.3g}, {hi:.3g}]; they use the nearest training level instead."
            )
        tau, lam, seg = torch.cat(taus), torch.cat(logsnrs), torch.cat(seg_ids)
        # Clamping or rounding can give consecutive rungs the same level: one model call serves them.
        distinct = torch.ones_like(lam, dtype=torch.bool)
        distinct[1:] = lam[1:] != lam[:-1]
        if not distinct.all():
            logger.warning(f"{int((~distinct).sum())} rung(s) share a noise level with the previous one and were merged.")
            tau, lam, seg = tau[distinct], lam[distinct], seg[distinct]
        if not bool((lam[1:] > lam[:-1]).all()):
            raise ValueError("the sampling ladder's noise levels are not strictly decreasing; check segments/spacing.")
        integral = self.interface.family_time_is_index and bool((tau == tau.round()).all())
        self.timesteps = (tau.round().to(torch.long) if integral else tau.to(torch.float32)).to(device)
        self.segment_ids = seg.to(device)
        self._ladder_logsnr = torch.cat([lam, torch.tensor([math.inf], dtype=torch.float64)])
        self._ladder_scale = self.interface.scale(self._ladder_logsnr)
        self.num_inference_steps = len(tau)
        self._step_index = None
        self._begin_index = None

    def _call_logsnr(self, index: int) -> float:
        return float(self._ladder_logsnr[index])

    def rung_alphas_cumprod(self, index: int) -> Tuple[float, float]:
        """ᾱ at rung `index` and at the next rung (1.0 after the last), float64 Python floats."""
        lam_t, lam_s = self._ladder_logsnr[index], self._ladder_logsnr[index + 1]
        return float(torch.sigmoid(lam_t)), (1.0 if math.isinf(lam_s) else float(torch.sigmoid(lam_s)))

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Union[int, float, torch.Tensor],
        sample: torch.Tensor,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        variance_noise: Optional[torch.Tensor] = None,
        return_dict: bool = True,
    ) -> Union[EntropyHybridSchedulerOutput, Tuple]:
        """
        One update from the current rung's ᾱ_t to the next rung's ᾱ_s (Song et al. 2021, eq. 12):

            x_s = sqrt(ᾱ_s)·x̂0 + sqrt(1 − ᾱ_s − s²)·ε̂ + s·ξ,
            s² = η²·(1 − ᾱ_s)/(1 − ᾱ_t)·(1 − ᾱ_t/ᾱ_s),

        which for η = 1 is the DDPM posterior q(x_s | x_t, x̂0) and for η = 0 is DDIM.

        Args:
            model_output: the model's prediction at `timestep` (same shape as `sample`).
            timestep: the current entry of `self.timesteps`.
            sample: the current noisy sample x_t.
            generator: random generator(s) for the noise ξ.
            variance_noise: ξ itself, instead of drawing it.
            return_dict: return an `EntropyHybridSchedulerOutput` (True) or a tuple.

        Returns:
            `EntropyHybridSchedulerOutput` or `tuple`: `prev_sample` (the sample at the next rung, in the model
            family's units) and `pred_original_sample` (x̂0); the tuple is `(prev_sample, pred_original_sample)`.
        """
        if self.num_inference_steps is None or self._ladder_logsnr is None:
            raise ValueError("call `set_timesteps` (or `set_restoration_timesteps`) before `step`.")
        expected = torch.Size((sample.shape[0], self.interface.output_channels(sample.shape[1]), *sample.shape[2:]))
        check_model_output(
            model_output, expected, timestep,
            f"EntropyHybridScheduler(prediction_type={self.config.prediction_type!r}) needs (no learned variance): expected",
        )
        if self._step_index is None:
            self._init_step_index(timestep)
        if self._step_index >= self.num_inference_steps:
            raise ValueError(f"step called {self._step_index + 1} times but the ladder has {self.num_inference_steps} rungs.")
        i = self._step_index
        abar_t, abar_s = self.rung_alphas_cumprod(i)

        compute_dtype = torch.float64 if sample.dtype == torch.float64 else torch.float32
        x_t, out = sample.to(compute_dtype), model_output.to(compute_dtype)
        clip = self.config.clip_sample_range if self.config.clip_sample else None
        x0, eps = self.interface.predictions(out, x_t, float(self._ladder_logsnr[i]), clip)

        eta = float(self.config.eta)
        var = eta**2 * (1.0 - abar_s) / (1.0 - abar_t) * (1.0 - abar_t / abar_s)
        prev = math.sqrt(abar_s) * x0 + math.sqrt(max(1.0 - abar_s - var, 0.0)) * eps
        if var > 0:
            if variance_noise is None:
                variance_noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            prev = prev + math.sqrt(var) * variance_noise.to(compute_dtype)
        prev = prev * float(self._ladder_scale[i + 1])  # back from the VP state to the family's

        self._step_index += 1
        prev, x0 = prev.to(sample.dtype), x0.to(sample.dtype)
        if not return_dict:
            return (prev, x0)
        return EntropyHybridSchedulerOutput(prev_sample=prev, pred_original_sample=x0)
