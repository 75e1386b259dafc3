"""TrigAngleRKScheduler: seed 004's angle-parameterised probability-flow ODE, solved by Euler, RK2 or RK4.

Seed 004 writes the forward marginal on a quarter circle (eq. 9, SPEC §6)

    x_η = cos(η)·x0 + sin(η)·ε,    η ∈ [0, π/2],   i.e.  ᾱ = cos² η,  λ = log(cot² η),

so the deterministic reverse process is the ODE (eqs. 10–11, with η as the time variable)

    dx/dη = −sin(η)·x̂0 + cos(η)·ε̂,

integrated from the start angle down to η = 0 (clean). Eq. 13 is its Euler step; RK2 (Heun) and classic RK4
are the paper's higher-order solvers. The extra solver ``"ddim"`` is the exact rotation
``x_s = cos(η_s)·x̂0 + sin(η_s)·ε̂`` (seed 004 eqs. 6/8 in angle form): with an ε-only model it *is* DDIM, and
with a joint model it is the "DDIM + x̂0, ε̂" row of seed 004 Table 2.

**Any ε/x0/v model, or a joint model.** The config describes the model's **training** schedule with
diffusers' keys, so ``TrigAngleRKScheduler.from_config(ddpm_pipe.scheduler.config)`` is a drop-in for a
DDPM-trained model: at angle η the model is told its entropy-matched training timestep, the fractional τ with
``ᾱ_train(τ) = cos² η`` (same entropy = same ᾱ = same log-SNR, SPEC §2), found with
``train_schedule.t_from_logsnr``. ``prediction_type="joint"`` consumes both halves of a ``[ε, x0]`` output
(``JointUNet2DModel``); single-head models are converted to the pair (x̂0, ε̂) at the level they were told.

**Levels outside the training range** (the table covers only ``λ ∈ [λ_{T-1}, λ_0]``, never η = 0 or η = π/2):

* the clean end: a stage with η below the training table's cleanest angle η_clean (τ = 0; ≈ 0.01 for the
  linear table) tells the model τ = 0 and reads its output as a prediction *at η_clean*; the derivative then
  uses the true η. The solve still ends exactly at η = 0, where ``x = x0`` and the last update lands on the
  clean sample (for ``"ddim"`` the last update is x̂0 itself).
* the noisy end: by default the solve starts at the training schedule's noisiest level (τ = T − 1), as DDPM
  and DDIM do, so the initial N(0, I) draw is (almost exactly) the marginal there. ``start_angle`` up to π/2
  is allowed: η = π/2 is λ = −∞ exactly, where x = ε and dx/dη = −x̂0; stages above the noisiest training
  level tell the model τ = T − 1 and read its output at that level.

**One model call per `step`.** Multi-stage solvers follow ``HeunDiscreteScheduler``: `timesteps` repeats
model timesteps stage by stage (RK2: η_i, η_{i+1}; RK4: η_i, η_i + h/2, η_i + h/2, η_{i+1}), `order` is the
number of stages, `step` returns the next stage's input and keeps the slopes between calls. So
``num_inference_steps = N`` means N solver steps and ``order · N`` model calls.

**Step spacing** (`step_spacing`): ``"uniform_eta"`` (the paper's ``η_k = η_start·(1 − k/N)``),
``"uniform_logsnr"`` (λ linear from the start to the training table's cleanest level, then η = 0) and
``"karras"`` (Karras et al. 2022 eq. 5 in ``σ = tan η``, ρ = `karras_rho`, from ``tan η_start`` to
``tan η_clean``, then 0). Measured on the exact Gaussian flow (GaussianDenoiser, RMS error at η = 0 against
the closed-form solution), ``uniform_eta`` is the most accurate per model call for every solver at 8–20 calls,
on the linear DDPM table and on a table covering almost all of [0, π/2]; hence the default. Only with RK4 at
≥ 40 calls on the linear table do ``uniform_logsnr``/``karras`` win (≈1e-4 vs 5e-4), because they put a grid
point exactly on η_clean and so shorten the stretch where the model's output is held
(``test_uniform_eta_default_spacing_is_most_accurate_for_rk4`` keeps the 20-call case).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Tuple, Union

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import (
    KarrasDiffusionSchedulers,
    SchedulerMixin,
)
from diffusers.utils import BaseOutput

from ._common import StepIndexMixin, check_model_output, forward_marginal, training_schedule

__all__ = ["SOLVERS", "STEP_SPACINGS", "TrigAngleRKScheduler", "TrigAngleRKSchedulerOutput", "angle_from_logsnr", "logsnr_from_angle"]

Solver = Literal["euler", "rk2", "rk4", "ddim"]
StepSpacing = Literal["uniform_eta", "uniform_logsnr", "karras"]
PredictionType = Literal["epsilon", "sample", "v_prediction", "joint"]

SOLVERS = ("euler", "rk2", "rk4", "ddim")
STEP_SPACINGS = ("uniform_eta", "uniform_logsnr", "karras")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "joint")

# Explicit Runge–Kutta tableaux (Hairer et al. 1993): c = stage nodes as fractions of the step, A = the
# coefficients of the earlier slopes in each later stage's input, b = the final weights. "ddim" is not an RK
# method; it has one stage and its own update (see `step`).
_TABLEAUX: Dict[str, Tuple[Tuple[float, ...], Tuple[Tuple[float, ...], ...], Tuple[float, ...]]] = {
    "euler": ((0.0,), (), (1.0,)),
    "rk2": ((0.0, 1.0), ((1.0,),), (0.5, 0.5)),  # Heun's method: the trapezoid rule with an Euler predictor
    "rk4": ((0.0, 0.5, 0.5, 1.0), ((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6)),
    "ddim": ((0.0,), (), (1.0,)),
}


def logsnr_from_angle(eta: torch.Tensor) -> torch.Tensor:
    """λ = log(cos² η / sin² η) (float64): +∞ at η = 0, −∞ at η = π/2."""
    eta = torch.as_tensor(eta, dtype=torch.float64)
    return 2.0 * (torch.log(torch.cos(eta)) - torch.log(torch.sin(eta)))


def angle_from_logsnr(logsnr: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`logsnr_from_angle`: η = arctan(exp(−λ/2)) (float64)."""
    return torch.atan(torch.exp(-0.5 * torch.as_tensor(logsnr, dtype=torch.float64)))


@dataclass
class TrigAngleRKSchedulerOutput(BaseOutput):
    """
    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            The input of the next model call (an intermediate RK stage) or, after a step's last stage, the
            sample at the next angle of the grid.
        pred_original_sample (`torch.Tensor` of the same shape):
            The estimate x̂0 at the current stage.
    """

    prev_sample: torch.Tensor
    pred_original_sample: Optional[torch.Tensor] = None


class TrigAngleRKScheduler(StepIndexMixin, SchedulerMixin, ConfigMixin):
    """
    Seed 004's sampler: the ODE dx/dη = −sin η·x̂0 + cos η·ε̂ from the start angle to η = 0, with Euler
    (eq. 13), RK2 or RK4, driven by a model trained on any discrete schedule (see the module docstring).

    Args:
        num_train_timesteps (`int`, defaults to 1000): T of the model's training schedule.
        beta_start (`float`, defaults to 0.0001): β_1 of the families that take it.
        beta_end (`float`, defaults to 0.02): β_T of the families that take it.
        beta_schedule (`str`, defaults to `"linear"`): the training schedule, any name of
            `diffusers_infoflow.schedules` (`trig` is seed 004's β*) or diffusers' aliases.
        trained_betas (`np.ndarray` or `List[float]`, *optional*): explicit training betas.
        schedule_params (`dict`, *optional*): extra family parameters (`s`, `p`, `amplitude`, `cycles`).
        prediction_type (`str`, defaults to `"epsilon"`): `epsilon`, `sample`, `v_prediction`, or `joint`
            (the model outputs 2C channels ordered `[ε, x0]`, seed 004 §3.2).
        solver (`str`, defaults to `"rk4"`): `euler` (eq. 13), `rk2` (Heun), `rk4` (classic), or `ddim`
            (the exact rotation x_s = cos η_s·x̂0 + sin η_s·ε̂).
        step_spacing (`str`, defaults to `"uniform_eta"`): `uniform_eta`, `uniform_logsnr` or `karras`.
        karras_rho (`float`, defaults to 7.0): ρ of the `karras` spacing.
        start_angle (`float`, *optional*): the start angle in radians, in (0, π/2]; `None` = the angle of the
            training schedule's noisiest timestep. `uniform_logsnr` and `karras` need it below π/2.
    """

    _compatibles = [e.name for e in KarrasDiffusionSchedulers]
    order = 1  # replaced per instance by the solver's number of stages

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: Optional[Union[np.ndarray, List[float]]] = None,
        schedule_params: Optional[Dict[str, float]] = None,
        prediction_type: PredictionType = "epsilon",
        solver: Solver = "rk4",
        step_spacing: StepSpacing = "uniform_eta",
        karras_rho: float = 7.0,
        start_angle: Optional[float] = None,
    ):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
        if step_spacing not in STEP_SPACINGS:
            raise ValueError(f"step_spacing must be one of {STEP_SPACINGS}, got {step_spacing!r}.")
        if not karras_rho > 0:
            raise ValueError(f"karras_rho must be > 0, got {karras_rho!r}.")
        self.train_schedule = training_schedule(num_train_timesteps, beta_schedule, beta_start, beta_end, trained_betas, schedule_params)
        noisy_logsnr, clean_logsnr = self.train_schedule.logsnr_range
        # The angles of the training table's noisiest (τ = T-1) and cleanest (τ = 0) levels.
        self.train_angle_range = (float(angle_from_logsnr(torch.tensor(clean_logsnr))), float(angle_from_logsnr(torch.tensor(noisy_logsnr))))
        if start_angle is not None:
            if not 0.0 < float(start_angle) <= math.pi / 2:
                raise ValueError(f"start_angle must lie in (0, π/2] radians, got {start_angle!r}.")
            if step_spacing != "uniform_eta" and float(start_angle) >= math.pi / 2:
                raise ValueError(f"step_spacing={step_spacing!r} needs start_angle < π/2 (λ is -inf at π/2); use 'uniform_eta'.")
        self.order = len(_TABLEAUX[solver][0])
        self.alphas_cumprod = self.train_schedule.alphas_cumprod.to(torch.float32)
        self.init_noise_sigma = 1.0
        self.num_inference_steps: Optional[int] = None
        self.timesteps = torch.from_numpy(np.arange(0, num_train_timesteps)[::-1].copy())
        self.angles: Optional[torch.Tensor] = None  # the grid η_0 > ... > η_N = 0 of solver steps (float64)
        self._stage_angle: Optional[torch.Tensor] = None  # true η of each model call
        self._stage_query_angle: Optional[torch.Tensor] = None  # η of the training level the model is told
        self._step_start: Optional[torch.Tensor] = None  # x at the start of the current solver step
        self._slopes: List[torch.Tensor] = []
        self._step_index: Optional[int] = None
        self._begin_index: Optional[int] = None

    # ------------------------------------------------------------------ standard scheduler API

    @property
    def start_angle(self) -> float:
        """The angle the solve starts from (radians)."""
        return self.train_angle_range[1] if self.config.start_angle is None else float(self.config.start_angle)

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start at `timesteps[begin_index]`, which must be the first stage of a solver step (a multiple of `order`)."""
        if isinstance(begin_index, int) and begin_index % self.order != 0:
            raise ValueError(f"begin_index must be a multiple of order={self.order} (a step's first stage), got {begin_index}.")
        super().set_begin_index(begin_index)

    def scale_model_input(self, sample: torch.Tensor, timestep: Optional[Union[float, torch.Tensor]] = None) -> torch.Tensor:
        """x_η = cos η·x0 + sin η·ε is already variance preserving: returns `sample` unchanged."""
        return sample

    def angle_grid(self, num_inference_steps: int) -> torch.Tensor:
        """The N + 1 angles η_0 = start > ... > η_N = 0 of `step_spacing` (float64)."""
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
        n, start = num_inference_steps, self.start_angle
        spacing = self.config.step_spacing
        if spacing == "uniform_eta":
            return torch.linspace(start, 0.0, n + 1, dtype=torch.float64)
        if n < 2:
            raise ValueError(f"step_spacing={spacing!r} needs num_inference_steps >= 2 (its last step is the jump to η = 0).")
        clean = self.train_angle_range[0]
        if spacing == "uniform_logsnr":
            lam = torch.linspace(float(logsnr_from_angle(torch.tensor(start))), float(logsnr_from_angle(torch.tensor(clean))), n, dtype=torch.float64)
            inner = angle_from_logsnr(lam)
        else:
            inv_rho = 1.0 / self.config.karras_rho
            ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
            hi, lo = math.tan(start) ** inv_rho, math.tan(clean) ** inv_rho
            inner = torch.atan((hi + ramp * (lo - hi)) ** self.config.karras_rho)
        return torch.cat([inner, torch.zeros(1, dtype=torch.float64)])

    def set_timesteps(self, num_inference_steps: int, device: Union[str, torch.device, None] = None) -> None:
        """
        Builds the angle grid and the model timestep of every stage.

        Args:
            num_inference_steps (`int`): N, the number of solver steps; the model is called `order · N` times.
            device (`str` or `torch.device`, *optional*): where `timesteps` live.
        """
        nodes = torch.tensor(_TABLEAUX[self.config.solver][0], dtype=torch.float64)
        grid = self.angle_grid(num_inference_steps)
        step = grid[1:] - grid[:-1]
        stage_angle = (grid[:-1, None] + nodes[None, :] * step[:, None]).flatten()
        lo, hi = self.train_schedule.logsnr_range
        query_logsnr = logsnr_from_angle(stage_angle).clamp(lo, hi)
        timesteps = self.train_schedule.t_from_logsnr(query_logsnr).to(torch.float32)
        self.angles = grid
        self._stage_angle = stage_angle
        # Read outputs at the level of the float32 timestep the model actually gets, not the float64 target.
        self._stage_query_angle = angle_from_logsnr(self.train_schedule.logsnr(timesteps.double()))
        self.timesteps = timesteps.to(device)
        self.num_inference_steps = num_inference_steps
        self._step_start, self._slopes = None, []
        self._step_index = None
        self._begin_index = None

    def index_for_timestep(self, timestep: Union[float, torch.Tensor], schedule_timesteps: Optional[torch.Tensor] = None) -> int:
        """The index of the first solver-step start (first stage) whose model timestep is `timestep`."""
        schedule_timesteps = self.timesteps if schedule_timesteps is None else schedule_timesteps
        t = torch.as_tensor(timestep, device=schedule_timesteps.device).to(schedule_timesteps.dtype)
        # The last stage of a step and the first of the next share a timestep; only first stages start a run.
        matches = [int(i) for i in (schedule_timesteps == t).nonzero().flatten() if int(i) % self.order == 0]
        if not matches:
            raise ValueError(f"timestep {float(t)} does not start a solver step of this scheduler; call set_timesteps first.")
        return matches[0]

    def _check_output(self, model_output: torch.Tensor, sample: torch.Tensor, timestep) -> None:
        if self.config.prediction_type == "joint":
            expected = torch.Size((sample.shape[0], 2 * sample.shape[1], *sample.shape[2:]))
            what = "TrigAngleRKScheduler(prediction_type='joint') needs 2C channels [ε, x0]: expected"
        else:
            expected = sample.shape
            what = "TrigAngleRKScheduler needs C channels (no learned variance or joint head; use prediction_type='joint'): expected"
        check_model_output(model_output, expected, timestep, what)

    def denoised_pair(self, model_output: torch.Tensor, sample: torch.Tensor, query_angle: float) -> Tuple[torch.Tensor, torch.Tensor]:
        """(x̂0, ε̂) from a model output, read at the level the model was told (x = cos η_q·x0 + sin η_q·ε)."""
        c, s = math.cos(query_angle), math.sin(query_angle)
        kind = self.config.prediction_type
        if kind == "joint":
            eps, x0 = model_output.chunk(2, dim=1)
        elif kind == "epsilon":
            eps = model_output
            x0 = (sample - s * eps) / c
        elif kind == "sample":
            x0 = model_output
            eps = (sample - c * x0) / s
        else:  # v = cos η·ε − sin η·x0 (Salimans & Ho 2022), so x0 = cos η·x − sin η·v, ε = sin η·x + cos η·v
            x0 = c * sample - s * model_output
            eps = s * sample + c * model_output
        return x0, eps

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Union[float, torch.Tensor],
        sample: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        return_dict: bool = True,
    ) -> Union[TrigAngleRKSchedulerOutput, Tuple]:
        """
        Consumes the model output of one stage and returns the next model input.

        With the stage's slope ``k_j = −sin η_j·x̂0 + cos η_j·ε̂`` (eq. 11, η' = 1) and the step ``h = η_{i+1} − η_i``
        (negative), stage j < s−1 returns ``x_i + h·Σ_m A[j][m]·k_m`` and the last stage returns
        ``x_{i+1} = x_i + h·Σ_m b_m·k_m`` (Euler: eq. 13). Solver ``ddim`` returns ``cos η_{i+1}·x̂0 + sin η_{i+1}·ε̂``.

        Args:
            model_output: the model's prediction at `timestep` (2C channels for `prediction_type="joint"`).
            timestep: the current entry of `self.timesteps`.
            sample: the current model input (a grid sample or an intermediate stage).
            generator: unused (the sampler is deterministic); accepted for pipeline compatibility.
            return_dict: return a `TrigAngleRKSchedulerOutput` (True) or a tuple.
        """
        if self.num_inference_steps is None or self._stage_angle is None:
            raise ValueError("call `set_timesteps` before `step`.")
        self._check_output(model_output, sample, timestep)
        if self._step_index is None:
            self._init_step_index(timestep)
        if self._step_index >= len(self._stage_angle):
            raise ValueError(f"step called {self._step_index + 1} times but there are {len(self._stage_angle)} model calls.")
        stage = self._step_index % self.order
        grid_index = self._step_index // self.order
        eta_now = float(self._stage_angle[self._step_index])
        eta_next = float(self.angles[grid_index + 1])
        h = eta_next - float(self.angles[grid_index])

        compute_dtype = torch.float64 if sample.dtype == torch.float64 else torch.float32
        x = sample.to(compute_dtype)
        x0, eps = self.denoised_pair(model_output.to(compute_dtype), x, float(self._stage_query_angle[self._step_index]))
        if stage == 0:
            self._step_start, self._slopes = x, []
        if self.config.solver == "ddim":
            prev = math.cos(eta_next) * x0 + math.sin(eta_next) * eps
        else:
            self._slopes.append(-math.sin(eta_now) * x0 + math.cos(eta_now) * eps)
            _, stage_coeffs, final_weights = _TABLEAUX[self.config.solver]
            weights = stage_coeffs[stage] if stage < self.order - 1 else final_weights
            prev = self._step_start + h * sum(w * k for w, k in zip(weights, self._slopes) if w != 0.0)
        if stage == self.order - 1:
            self._step_start, self._slopes = None, []

        self._step_index += 1
        prev, x0 = prev.to(sample.dtype), x0.to(sample.dtype)
        if not return_dict:
            return (prev, x0)
        return TrigAngleRKSchedulerOutput(prev_sample=prev, pred_original_sample=x0)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Forward marginal `α_τ x0 + σ_τ ε` of the training schedule at model timesteps τ (fractional allowed)."""
        return forward_marginal(self.train_schedule, original_samples, noise, timesteps)

    def __len__(self) -> int:
        return self.config.num_train_timesteps
