"""TrigAngleRKScheduler: seed 004's angle-parameterised probability-flow ODE, solved by Euler, RK2, RK4 or a
multistep exponential integrator.

Seed 004 writes the forward marginal on a quarter circle (eq. 9, SPEC §6)

    x_η = cos(η)·x0 + sin(η)·ε,    η ∈ [0, π/2],   i.e.  ᾱ = cos² η,  λ = log(cot² η),

so the deterministic reverse process is the ODE (eqs. 10–11, with η as the time variable)

    dx/dη = −sin(η)·x̂0 + cos(η)·ε̂,

integrated from the start angle down to η = 0 (clean). Eq. 13 is its Euler step; RK2 (Heun) and classic RK4
are the paper's higher-order solvers. The extra solver ``"ddim"`` is the exact rotation
``x_s = cos(η_s)·x̂0 + sin(η_s)·ε̂`` (seed 004 eqs. 6/8 in angle form): with an ε-only model it *is* DDIM, and
with a joint model it is the "DDIM + x̂0, ε̂" row of seed 004 Table 2.

**Multistep solver** (``solver="multistep"``, one model call per step, ``solver_order`` = 1, 2 or 3). With the
integrating factor 1/sin η the ODE is exactly linear in the data prediction: for u = cot η = α/σ = e^{λ/2},

    d(x/σ)/du = x̂0(u),    so    x_s = σ_s·(x_t/σ_t + ∫_{u_t}^{u_s} x̂0 du)                      (x0 form)

(seed 004 eqs. 10–11 rewritten for x/sin η against cot η), and likewise d(x/α)/dρ = ε̂(ρ) with ρ = tan η = 1/u
(ε form, ``predict_x0=False``; DDIM's and DEIS's variable). Order k replaces x̂0 (or ε̂) by the Lagrange
polynomial *in λ* (i.e. in log u) through the last k model outputs and integrates it exactly against du
(:func:`lagrange_integral_weights`, float64, variable steps): the exponential integrator of DPM-Solver++ /
DEIS. Order 1 (x̂0 held) is exactly ``"ddim"``. The current node enters through ``α_s·x̂0 + σ_s·ε̂`` (so a
joint model uses both heads there, as ``"ddim"`` does; a single-head model is converted at the level it was
told) and the older nodes through differences of the integrated head (x0 head or ε head). A polynomial in u
itself, the plainest reading of the ODE, extrapolates badly over λ-uniform steps (u grows geometrically): on
the benchmark's Gaussian problem order 3 without corrector has RMS error 9.3 at 10 calls and 8.6e-2 at 20,
against 4.1e-2 and 1.9e-3 in λ. Warm-up: step i has order min(k, i + 1). With ``use_corrector=True``
(default, orders 2–3) each new model output also corrects the sample it was evaluated at before the next
step: the last step is re-integrated with the polynomial through the last k nodes *including* the new one
(Adams–Moulton style, UniPC's UniC idea with exact weights; no extra call; at 20 calls order 3 goes from
1.9e-3 to 1.2e-4). In the x0 form a step much longer in λ than the node gaps would extrapolate the
polynomial far out where the weight du sits (the step's end), so the predictor drops its oldest nodes until
the gaps and the step are within a factor ``MAX_STEP_RATIO`` = 2 of each other (the ε form's weight dρ sits at
the step's start: no need); the corrector does the same in both forms, which also keeps a start at λ = −∞
(``start_angle = π/2``) finite.
That lowers the order where ``uniform_eta`` steps into the clean end; a fixed lower order at the last steps
(DPM-Solver's ``lower_order_final``) was measured and only costs accuracy on λ-uniform grids (order 3 with the
corrector at 20 calls: 3.7e-4 against 1.2e-4), so there is no such option.

**Ending at the clean end.** The training table covers only ``λ ∈ [λ_{T-1}, λ_0]``: the cleanest angle the
model knows is η_clean (τ = 0; ≈ 0.01 for the linear table). With ``final_step="x0"`` (default) every grid
ends with η_{N-1} = η_clean, η_N = 0, and the last step is one model call at η_clean returning its x̂0 (the
exact solution below the table with the model's output held, DDIM's and DPM-Solver's ``final_sigmas_type=
"zero"`` ending). So all stages of every solver query the model at its own noise level, and the RK solvers
converge at their full order to x* = x̂0(Φ_{start→η_clean}(x_T)). ``final_step="solver"`` is seed 004 as
written: the last step is a full solver step down to η = 0, its stages below η_clean tell the model τ = 0 but
feed it inputs from other noise levels, and ``uniform_eta`` is the paper's grid η_k = η_start·(1 − k/N). That
leaves an error floor (RK4 on the linear table: 6.7e-4 RMS at 200 and at 800 model calls, against 5.6e-7 and
1.9e-9 with ``"x0"``); it is kept only to reproduce the paper. (``"ddim"`` and ``"multistep"`` always end
with x̂0; for them the option changes only the ``uniform_eta`` grid.)

**Any checkpoint family, or a joint model.** The config describes the model (its family's diffusers keys), so
``TrigAngleRKScheduler.from_config(pipe.scheduler.config)`` is a drop-in for VP (zero-SNR included), EDM and
flow-matching checkpoints: the solver runs on the angle (VP) state and at angle η the model is told, through
:class:`~diffusers_infoflow.model_interface.ModelInterface`, its own time at the same log-SNR λ = log cot² η
(a table's fractional τ with ``ᾱ(τ) = cos² η``, EDM's c_noise, flow matching's t·1000), its input scaled and its
output read as that family's. ``prediction_type="joint"`` consumes both halves of a ``[ε, x0]`` output
(``JointUNet2DModel``); single-head models are converted to the pair (x̂0, ε̂) at the level they were told.
Grid points inside the table are placed exactly on the level of the float32 timestep the model is told (a
round-off shift), so the model sees each grid sample at its own level (intermediate RK stages keep the
round-off, which their slopes absorb); otherwise a multistep update, which rebuilds the sample from (x̂0, ε̂),
would add that round-off at every step (a floor near 1e-7).

**The noisy end**: by default the solve starts at the training schedule's noisiest level (τ = T − 1), as DDPM
and DDIM do, so the initial N(0, I) draw is (almost exactly) the marginal there. ``start_angle`` up to π/2 is
allowed: η = π/2 is λ = −∞ exactly, where x = ε and dx/dη = −x̂0; stages above the noisiest training level tell
the model τ = T − 1 and read its output at that level.

**One model call per `step`.** Multi-stage solvers follow ``HeunDiscreteScheduler``: `timesteps` repeats
model timesteps stage by stage (RK2: η_i, η_{i+1}; RK4: η_i, η_i + h/2, η_i + h/2, η_{i+1}), `order` is the
number of stages, `step` returns the next stage's input and keeps the slopes between calls. With
``final_step="x0"`` the last of the N steps is the single x̂0 call, so ``num_inference_steps = N`` means
``order·(N − 1) + 1`` model calls (like Heun's 2N − 1); with ``"solver"``, ``order·N``.
:meth:`~TrigAngleRKScheduler.num_model_calls` gives the count. ``"ddim"`` and ``"multistep"`` have ``order`` 1
and N calls.

**Step spacing** (`step_spacing`; ``None`` = the solver's default): ``"uniform_eta"`` (N − 1 equal steps in η
from the start to η_clean; with ``final_step="solver"`` the paper's ``η_k = η_start·(1 − k/N)``),
``"uniform_logsnr"`` (λ linear from the start to η_clean), ``"karras"`` (Karras et al. 2022 eq. 5 in
``σ = tan η``, ρ = `karras_rho`, from ``tan η_start`` to ``tan η_clean``) and ``"uniform_timestep"`` (the
training timestep τ linear from the start's τ to 0: diffusers' ``linspace``/``trailing`` placement, which
ends on the same levels here), each followed by η = 0.
Measured on the linear DDPM table with the benchmark's Gaussian problem (``benchmarks/sampler_race.py``: MNIST
per-pixel mean/variance, RMS error against the exact endpoint x*; model calls 5 / 10 / 20 / 50):

    solver (options)       spacing              5 calls     10 calls     20 calls     50 calls
    euler                  uniform_eta           8.0e-02      3.5e-02      1.7e-02      7.0e-03
    euler                  uniform_logsnr        1.5e-01      5.9e-02      2.8e-02      1.1e-02
    euler                  karras                1.3e-01      7.0e-02      3.3e-02      1.3e-02
    euler                  uniform_timestep      2.0e-01      7.0e-02      3.4e-02      1.4e-02
    ddim                   uniform_eta           1.5e-01      7.3e-02      3.6e-02      1.4e-02
    ddim                   uniform_logsnr        2.3e-01      1.2e-01      6.2e-02      2.5e-02
    ddim                   karras                2.4e-01      1.4e-01      7.3e-02      2.9e-02
    ddim                   uniform_timestep      2.4e-01      1.2e-01      6.1e-02      2.5e-02
    rk2                    uniform_eta           1.2e+00  1.7e-01 (9) 2.5e-02 (19) 4.6e-03 (49)
    rk2                    uniform_logsnr        1.9e+00  2.1e-01 (9) 2.0e-02 (19) 2.5e-03 (49)
    rk2                    karras                7.4e+00  2.4e-01 (9) 3.4e-02 (19) 4.0e-03 (49)
    rk2                    uniform_timestep      5.7e+00  1.2e+00 (9) 1.3e-01 (19) 1.6e-02 (49)
    rk4                    uniform_eta           2.2e+00  3.7e-01 (9) 4.7e-02 (17) 2.4e-03 (49)
    rk4                    uniform_logsnr        2.2e+00  5.5e-01 (9) 2.4e-02 (17) 1.6e-04 (49)
    rk4                    karras                2.2e+00  1.8e+00 (9) 7.1e-02 (17) 5.1e-04 (49)
    rk4                    uniform_timestep      2.2e+00  1.4e+00 (9) 3.4e-01 (17) 1.6e-02 (49)
    multistep 3 (default)  uniform_eta           1.1e-01      2.8e-02      8.5e-03      2.2e-03
    multistep 3 (default)  uniform_logsnr        2.4e-01      1.5e-02      1.2e-04      2.6e-05
    multistep 3 (default)  karras                1.6e-01      1.8e-01      1.7e-02      2.4e-04
    multistep 3 (default)  uniform_timestep      2.1e-01      6.1e-02      2.3e-02      6.9e-03
    multistep 3 ε, no corr uniform_eta           2.9e-02      2.0e-02      7.2e-03      1.2e-03
    multistep 3 ε, no corr uniform_logsnr        1.1e-01      1.4e-02      1.3e-03      3.7e-05
    multistep 3 ε, no corr karras                7.9e-02      4.0e-03      1.7e-03      2.1e-04
    multistep 3 ε, no corr uniform_timestep      6.2e-02      6.3e-02      1.7e-02      4.2e-03
    multistep 2 (default)  uniform_logsnr        4.5e-02      5.2e-02      5.7e-03      8.8e-05

(in brackets: the actual calls where whole RK steps fit fewer). diffusers' best at each budget, over all
their settings, in the same race: 3.3e-2, 8.0e-3, 9.7e-4, 1.5e-4 (DPM-Solver++ 2M, then DEIS order 3). The
errors at 5–10 calls depend on the grid more than on the solver (a different winner at each budget); from
20 calls on, ``multistep`` with ``uniform_logsnr`` leads, and it is the default spacing of ``"multistep"``,
``"rk2"`` and ``"rk4"``; ``"uniform_eta"`` stays the default of ``"euler"`` and ``"ddim"``. The earlier claim
that ``uniform_eta`` is the most accurate for every solver at 8–20 calls does not hold for RK2/RK4 (it held
only at ≤ 10 calls, and with the old ending). On MNIST's exact empirical denoiser every solver here that
lands on the reference's training image does so to round-off; at 5 calls ``uniform_timestep`` (x0 form) is
the spacing that gets all 16 samples there.
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

from ..model_interface import ModelInterface, finite_noisy_logsnr
from ..schedules import NoiseSchedule
from ._common import ModelInterfaceMixin, StepIndexMixin, check_model_output


__all__ = [
    "FINAL_STEPS",
    "SOLVERS",
    "STEP_SPACINGS",
    "TrigAngleRKScheduler",
    "TrigAngleRKSchedulerOutput",
    "angle_from_logsnr",
    "lagrange_integral_weights",
    "logsnr_from_angle",
]

Solver = Literal["euler", "rk2", "rk4", "ddim", "multistep"]
StepSpacing = Literal["uniform_eta", "uniform_logsnr", "karras", "uniform_timestep"]
PredictionType = Literal["epsilon", "sample", "v_prediction", "joint", "flow_prediction"]
FinalStep = Literal["x0", "extrapolate", "solver"]

SOLVERS = ("euler", "rk2", "rk4", "ddim", "multistep")
STEP_SPACINGS = ("uniform_eta", "uniform_logsnr", "karras", "uniform_timestep")
FINAL_STEPS = ("x0", "extrapolate", "solver")
SOLVER_ORDERS = (1, 2, 3)
# The multistep solver uses k nodes only while the steps between them and the new step have lengths in λ
# within this ratio of each other: far extrapolation of the polynomial (a long step after short ones, e.g.
# uniform_eta's last step into the clean end) or a node at λ = −∞ (start_angle = π/2) would ruin the step.
MAX_STEP_RATIO = 2.0
# `step_spacing=None` picks the solver's measured best (see the module docstring).
DEFAULT_SPACINGS = {"euler": "uniform_eta", "ddim": "uniform_eta", "rk2": "uniform_logsnr", "rk4": "uniform_logsnr", "multistep": "uniform_logsnr"}

# Explicit Runge–Kutta tableaux (Hairer et al. 1993): c = stage nodes as fractions of the step, A = the
# coefficients of the earlier slopes in each later stage's input, b = the final weights. "ddim" is not an RK
# method; it has one stage and its own update (see `step`).
_TABLEAUX: Dict[str, Tuple[Tuple[float, ...], Tuple[Tuple[float, ...], ...], Tuple[float, ...]]] = {
    "euler": ((0.0,), (), (1.0,)),
    "rk2": ((0.0, 1.0), ((1.0,),), (0.5, 0.5)),  # Heun's method: the trapezoid rule with an Euler predictor
    "rk4": ((0.0, 0.5, 0.5, 1.0), ((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6)),
    "ddim": ((0.0,), (), (1.0,)),
    "multistep": ((0.0,), (), (1.0,)),  # one stage per step; its update is in `_multistep_update`
}


def lagrange_integral_weights(nodes: List[float], start: float, end: float) -> List[float]:
    """Exact weights of ``∫_start^end p(v) dv`` where p interpolates values at ``nodes`` by a polynomial in log v.

    Returns w with ``∫_start^end p(v) dv = Σ_j w_j·p(nodes[j])`` for p(v) = P(log v), P the Lagrange polynomial
    (degree len(nodes) − 1) through (log nodes[j], value_j). All of nodes, start, end must be > 0 (u = cot η or
    ρ = tan η); end < start is allowed. With t = log(v/start), ``∫ P(t)·start·e^t dt`` is integrated in closed
    form, ``∫ P e^t = e^t·Σ_m (−1)^m P^{(m)}``, in float64 (the multistep solver's exponential integrator).
    """
    if not all(math.isfinite(v) for v in (*nodes, start, end)) or min(nodes) <= 0 or start <= 0 or end <= 0:
        raise ValueError(f"nodes and interval ends must be finite and positive, got nodes={nodes}, start={start}, end={end}.")
    times = [math.log(v / start) for v in nodes]
    horizon = math.log(end / start)
    weights = []
    for j, tj in enumerate(times):
        basis = np.array([1.0])  # coefficients (lowest first) of the j-th Lagrange basis polynomial in t
        for m, tm in enumerate(times):
            if m != j:
                basis = np.polynomial.polynomial.polymul(basis, np.array([-tm, 1.0]) / (tj - tm))
        # antiderivative of basis(t)·e^t is e^t·Σ_m (−1)^m basis^{(m)}(t)
        total, derivative, sign = np.zeros(1), basis, 1.0
        while derivative.size and np.any(derivative):
            total = np.polynomial.polynomial.polyadd(total, sign * derivative)
            derivative, sign = np.polynomial.polynomial.polyder(derivative), -sign
        at_end = math.exp(horizon) * np.polynomial.polynomial.polyval(horizon, total)
        at_start = np.polynomial.polynomial.polyval(0.0, total)
        weights.append(float(start * (at_end - at_start)))
    return weights


def _steps_comparable(points: List[float]) -> bool:
    """Whether consecutive gaps between the log-values `points` are within MAX_STEP_RATIO of each other."""
    gaps = [abs(b - a) for a, b in zip(points[:-1], points[1:])]
    return max(gaps) <= MAX_STEP_RATIO * min(gaps)


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


class TrigAngleRKScheduler(ModelInterfaceMixin, StepIndexMixin, SchedulerMixin, ConfigMixin):
    """
    Seed 004's sampler: the ODE dx/dη = −sin η·x̂0 + cos η·ε̂ from the start angle to η = 0, with Euler
    (eq. 13), RK2, RK4, DDIM or a multistep exponential integrator, driven by a model of any checkpoint family
    (see the module docstring).

    Args:
        num_train_timesteps (`int`, defaults to 1000): T of the model's training schedule.
        beta_start (`float`, defaults to 0.0001): β_1 of the families that take it.
        beta_end (`float`, defaults to 0.02): β_T of the families that take it.
        beta_schedule (`str`, defaults to `"linear"`): the training schedule, any name of
            `diffusers_infoflow.schedules` (`trig` is seed 004's β*) or diffusers' aliases.
        trained_betas (`np.ndarray` or `List[float]`, *optional*): explicit training betas.
        schedule_params (`dict`, *optional*): extra family parameters (`s`, `p`, `amplitude`, `cycles`).
        rescale_betas_zero_snr (`bool`, defaults to `False`): Lin et al. (2023)'s zero-terminal-SNR table; its
            noisiest level is η = π/2 exactly.
        noise_family (`str`, defaults to `"discrete"`): the model family, `discrete` (a β table), `edm` or `flow`
            (flow matching, whose t = 1 is η = π/2); set from the source class by `from_config`.
        sigma_min, sigma_max, sigma_data: an EDM model's σ range and σ_d.
        shift, use_dynamic_shifting, base_shift, max_shift, base_image_seq_len, max_image_seq_len, shift_terminal,
            time_shift_type: a flow-matching model's time shift, as `FlowMatchEulerDiscreteScheduler`.
        prediction_type (`str`, *optional*): `epsilon`, `sample`, `v_prediction`, `joint` (the model outputs
            2C channels ordered `[ε, x0]`, seed 004 §3.2) or `flow_prediction`; `None` = the family's own.
        solver (`str`, defaults to `"rk4"`): `euler` (eq. 13), `rk2` (Heun), `rk4` (classic), `ddim`
            (the exact rotation x_s = cos η_s·x̂0 + sin η_s·ε̂) or `multistep` (exponential integrator of order
            `solver_order`, one model call per step).
        step_spacing (`str`, *optional*): `uniform_eta`, `uniform_logsnr`, `karras` or `uniform_timestep`;
            `None` (default) = the solver's measured best (`uniform_logsnr` for `multistep`, `rk2`, `rk4`;
            `uniform_eta` for `euler`, `ddim`, and for every solver from `start_angle = π/2`).
        karras_rho (`float`, defaults to 7.0): ρ of the `karras` spacing.
        start_angle (`float`, *optional*): the start angle in radians, in (0, π/2]; `None` = the angle of the
            training schedule's noisiest timestep. `uniform_logsnr` and `karras` need it below π/2,
            `uniform_timestep` within the training table.
        final_step (`str`, defaults to `"x0"`): `x0` = the solve ends at the model's cleanest level and the last
            step returns the model's x̂0 there (one call); `extrapolate` (`ddim`/`multistep`) = the same call, with
            x̂0 extrapolated to σ = 0 from the last two calls (Richardson in σ̃² = e^{−λ}, since along the flow
            x̂0 = x* + O(σ̃²)), for models whose cleanest level is still noisy (SD's σ̃ = 0.03); `solver` = seed
            004 as written, a full solver step down to η = 0 (an error floor, kept to reproduce the paper).
        solver_order (`int`, defaults to 3): 1, 2 or 3, the order of `multistep` (1 = `ddim`).
        predict_x0 (`bool`, defaults to `True`): `multistep` integrates x̂0 against u = cot η (`True`, x0 form)
            or ε̂ against ρ = tan η (`False`, ε form).
        use_corrector (`bool`, defaults to `True`): `multistep` corrects each sample with the model output
            evaluated at it (no extra call).
        clip_sample (`bool`, defaults to `False`): clamp x̂0 to `[-clip_sample_range, clip_sample_range]` before
            it enters the solver, as DDIM's `clip_sample` does. A single-head model's ε̂ is then re-derived from the
            clamped x̂0 (ε̂ = (x − cos η·x̂0)/sin η), so the pair stays consistent with x and the ODE's slope is
            the probability flow of the clamped denoiser; a joint model's ε head is kept. Read from a DDPM/DDIM
            config by `from_config`, so a model saved with `clip_sample=True` is sampled with it.
        clip_sample_range (`float`, defaults to 1.0): the clamp bound.
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
        rescale_betas_zero_snr: bool = False,
        noise_family: Literal["discrete", "edm", "flow"] = "discrete",
        sigma_min: Optional[float] = None,
        sigma_max: Optional[float] = None,
        sigma_data: Optional[float] = None,
        shift: float = 1.0,
        use_dynamic_shifting: bool = False,
        base_shift: float = 0.5,
        max_shift: float = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
        shift_terminal: Optional[float] = None,
        time_shift_type: Literal["exponential", "linear"] = "exponential",
        prediction_type: Optional[PredictionType] = None,
        solver: Solver = "rk4",
        step_spacing: Optional[StepSpacing] = None,
        karras_rho: float = 7.0,
        start_angle: Optional[float] = None,
        final_step: FinalStep = "x0",
        solver_order: int = 3,
        predict_x0: bool = True,
        use_corrector: bool = True,
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
    ):
        if noise_family not in ("discrete", "edm", "flow"):
            raise ValueError(f"noise_family must be one of ('discrete', 'edm', 'flow'), got {noise_family!r}.")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
        if step_spacing is not None and step_spacing not in STEP_SPACINGS:
            raise ValueError(f"step_spacing must be one of {STEP_SPACINGS} or None (the solver's default), got {step_spacing!r}.")
        if final_step not in FINAL_STEPS:
            raise ValueError(f"final_step must be one of {FINAL_STEPS}, got {final_step!r}.")
        if final_step == "extrapolate" and solver not in ("ddim", "multistep"):
            raise ValueError(f"final_step='extrapolate' needs a one-call-per-step solver ('ddim' or 'multistep'), got solver={solver!r}.")
        if isinstance(solver_order, bool) or solver_order not in SOLVER_ORDERS:
            raise ValueError(f"solver_order must be one of {SOLVER_ORDERS}, got {solver_order!r}.")
        if not karras_rho > 0:
            raise ValueError(f"karras_rho must be > 0, got {karras_rho!r}.")
        if not clip_sample_range > 0:
            raise ValueError(f"clip_sample_range must be > 0, got {clip_sample_range!r}.")
        self.interface = ModelInterface.from_config(self.config)
        self.register_to_config(prediction_type=self.interface.prediction_type)
        noisy_logsnr, clean_logsnr = self.interface.logsnr_range
        # The angles of the model's noisiest (τ = T-1) and cleanest (τ = 0) levels.
        self.train_angle_range = (float(angle_from_logsnr(torch.tensor(clean_logsnr, dtype=torch.float64))), float(angle_from_logsnr(torch.tensor(noisy_logsnr, dtype=torch.float64))))
        if start_angle is not None:
            if not 0.0 < float(start_angle) <= math.pi / 2:
                raise ValueError(f"start_angle must lie in (0, π/2] radians, got {start_angle!r}.")
            if step_spacing not in (None, "uniform_eta") and float(start_angle) >= math.pi / 2:
                raise ValueError(f"step_spacing={step_spacing!r} needs start_angle < π/2 (λ is -inf at π/2); use 'uniform_eta'.")
            if step_spacing == "uniform_timestep" and float(start_angle) > self.train_angle_range[1] * (1 + 1e-9):
                raise ValueError(
                    f"step_spacing='uniform_timestep' needs start_angle within the training table (<= {self.train_angle_range[1]:.6g}), "
                    f"got {start_angle!r}."
                )
        if not math.isfinite(self.init_noise_sigma):
            raise ValueError(f"start_angle={start_angle!r} lies above this {noise_family!r} model's noisiest level, where its state is unbounded.")
        self.order = len(_TABLEAUX[solver][0])
        if self.interface.family_time_is_index:
            self.alphas_cumprod = self.interface.schedule.alphas_cumprod.to(torch.float32)
        self.num_inference_steps: Optional[int] = None
        self.timesteps = self.interface.model_timesteps(self.interface.spaced_logsnrs(num_train_timesteps, "time"))[0]
        self.angles: Optional[torch.Tensor] = None  # the grid η_0 > ... > η_N = 0 of solver steps (float64)
        self._stage_angle: Optional[torch.Tensor] = None  # true η of each model call
        self._stage_query_angle: Optional[torch.Tensor] = None  # η of the training level the model is told
        self._step_start: Optional[torch.Tensor] = None  # x at the start of the current solver step
        self._slopes: List[torch.Tensor] = []
        self._call_grid_index: Optional[torch.Tensor] = None  # the solver step each model call belongs to
        self._call_stage: Optional[torch.Tensor] = None  # its stage within that step
        self._history: List[Tuple[float, torch.Tensor]] = []  # multistep: (u or ρ, x̂0 or ε̂) of recent calls
        self._predictor: Optional[Tuple[List[Tuple[float, torch.Tensor]], float]] = None  # last predictor's nodes, start
        self._step_index: Optional[int] = None
        self._begin_index: Optional[int] = None

    # ------------------------------------------------------------------ standard scheduler API

    @property
    def train_schedule(self) -> NoiseSchedule:
        """The noise schedule the model was trained on (a :class:`DiscreteSchedule` for β tables)."""
        return self.interface.schedule

    @property
    def init_noise_sigma(self) -> float:
        """The standard deviation of the pure-noise start at the grid's first angle (before `set_timesteps`, at
        `start_angle`) in the model family's units."""
        if getattr(self, "_stage_angle", None) is not None:
            return float(self._call_scale[0])
        return float(self.interface.scale(logsnr_from_angle(torch.tensor([self.start_angle], dtype=torch.float64))))

    def _model_state(self, sample: torch.Tensor, index: int) -> torch.Tensor:
        # a stage above the model's noisiest level is read at that level: its family scale, not the stage's
        query_scale = float(self.interface.scale(logsnr_from_angle(self._stage_query_angle[index : index + 1])))
        return sample * (query_scale / float(self._call_scale[index]))

    @property
    def start_angle(self) -> float:
        """The angle the solve starts from (radians)."""
        return self.train_angle_range[1] if self.config.start_angle is None else float(self.config.start_angle)

    @property
    def step_spacing(self) -> str:
        """The spacing in use: `config.step_spacing`, or when that is `None` the solver's default
        (`uniform_eta` from `start_angle = π/2`, where λ = −∞)."""
        if self.config.step_spacing is not None:
            return self.config.step_spacing
        return "uniform_eta" if self.start_angle >= math.pi / 2 else DEFAULT_SPACINGS[self.config.solver]

    def _ends_with_x0(self) -> bool:
        """Whether the last solver step is the single x̂0 call (always for `ddim`/`multistep`, whose update to
        η = 0 is x̂0 itself)."""
        return self.config.final_step != "solver" or self.config.solver in ("ddim", "multistep")

    def num_model_calls(self, num_inference_steps: int) -> int:
        """Model calls (= `len(timesteps)`) of `num_inference_steps` solver steps: `order·(N − 1) + 1` with
        `final_step="x0"` (the last step is one x̂0 call), `order·N` with `"solver"`."""
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
        if self._ends_with_x0():
            return self.order * (num_inference_steps - 1) + 1
        return self.order * num_inference_steps

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start at `timesteps[begin_index]`, which must be the first stage of a solver step (a multiple of `order`)."""
        if isinstance(begin_index, int) and begin_index % self.order != 0:
            raise ValueError(f"begin_index must be a multiple of order={self.order} (a step's first stage), got {begin_index}.")
        if isinstance(begin_index, int) and self.order > 1 and begin_index >= len(self.timesteps):
            raise ValueError(
                f"begin_index={begin_index} lies past the {len(self.timesteps)} model calls of solver={self.config.solver!r}: the "
                "pipeline counted each model call as a step (as FluxImg2ImgPipeline does when it passes `sigmas`); use a "
                "one-call-per-step solver there ('multistep' or 'ddim')."
            )
        super().set_begin_index(begin_index)

    def _call_logsnr(self, index: int) -> float:
        return float(logsnr_from_angle(self._stage_query_angle[index]))

    def angle_grid(self, num_inference_steps: int) -> torch.Tensor:
        """The N + 1 angles η_0 = start > ... > η_N = 0 of `step_spacing` (float64)."""
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
        n, start = num_inference_steps, self.start_angle
        spacing = self.step_spacing
        clean = self.train_angle_range[0]
        if spacing == "uniform_eta":
            if self.config.final_step == "solver":  # the paper's grid η_k = η_start·(1 − k/N)
                return torch.linspace(start, 0.0, n + 1, dtype=torch.float64)
            inner = torch.linspace(start, clean, n, dtype=torch.float64) if n > 1 else torch.tensor([start], dtype=torch.float64)
            return torch.cat([inner, torch.zeros(1, dtype=torch.float64)])
        if n == 1 and self.config.final_step != "solver":  # the single step is the x̂0 call at the start
            return torch.tensor([start, 0.0], dtype=torch.float64)
        if n < 2:
            raise ValueError(f"step_spacing={spacing!r} with final_step='solver' needs num_inference_steps >= 2 (its last step is the jump to η = 0).")
        if spacing == "uniform_timestep":  # diffusers' linspace/trailing: linear in the model's own time (τ, σ, t)
            lo, hi = self.interface.logsnr_range
            ends = self.interface.times(torch.stack([logsnr_from_angle(torch.tensor(start, dtype=torch.float64)).clamp(lo, hi), torch.tensor(hi, dtype=torch.float64)]))
            inner = angle_from_logsnr(self.train_schedule.logsnr(torch.linspace(float(ends[0]), float(ends[1]), n, dtype=torch.float64)))
            inner[0], inner[-1] = start, clean
            return torch.cat([inner, torch.zeros(1, dtype=torch.float64)])
        # From η = π/2 (λ = −∞) the first rung is π/2 itself and the others are spaced from the next level down.
        pure_noise = start >= math.pi / 2
        if pure_noise:
            start, n = float(angle_from_logsnr(torch.tensor(finite_noisy_logsnr(self.interface), dtype=torch.float64))), n - 1
        if spacing == "uniform_logsnr":
            lam = torch.linspace(float(logsnr_from_angle(torch.tensor(start, dtype=torch.float64))), float(logsnr_from_angle(torch.tensor(clean, dtype=torch.float64))), n, dtype=torch.float64)
            inner = angle_from_logsnr(lam)
        else:
            inv_rho = 1.0 / self.config.karras_rho
            ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
            hi, lo = math.tan(start) ** inv_rho, math.tan(clean) ** inv_rho
            inner = torch.atan((hi + ramp * (lo - hi)) ** self.config.karras_rho)
        head = [torch.tensor([math.pi / 2], dtype=torch.float64)] if pure_noise else []
        return torch.cat(head + [inner, torch.zeros(1, dtype=torch.float64)])

    def _model_timesteps(self, angles: torch.Tensor) -> torch.Tensor:
        """The timesteps told to the model at `angles` (clamped to the model's range)."""
        lo, hi = self.interface.logsnr_range
        query_logsnr = logsnr_from_angle(angles).clamp(lo, hi)
        # angles on the table's end levels (η_clean, the noisiest level) get exactly τ = 0 / T − 1, not the
        # round-off of the angle -> λ -> τ round trip
        for end in (e for e in (lo, hi) if math.isfinite(e)):
            query_logsnr = torch.where((query_logsnr - end).abs() <= 1e-9 * max(1.0, abs(end)), torch.tensor(end, dtype=torch.float64), query_logsnr)
        return self.interface.model_timesteps(query_logsnr)[0]

    def _level_of(self, timesteps: torch.Tensor) -> torch.Tensor:
        """The angle of the level of model `timesteps` (float64)."""
        return angle_from_logsnr(self.interface.logsnr_from_model_timesteps(timesteps))

    def set_timesteps(
        self,
        num_inference_steps: Optional[int] = None,
        device: Union[str, torch.device, None] = None,
        timesteps: Optional[List[float]] = None,
        sigmas: Optional[List[float]] = None,
        mu: Optional[float] = None,
    ) -> None:
        """
        Builds the angle grid and the model timestep of every stage.

        Args:
            num_inference_steps (`int`, *optional*): N, the number of solver steps; the model is called
                `num_model_calls(N)` times (`order·(N − 1) + 1` with `final_step="x0"`, else `order·N`).
            device (`str` or `torch.device`, *optional*): where `timesteps` live.
            timesteps, sigmas (`List[float]`, *optional*): a pipeline's own rungs (model timesteps, or the family's
                σ as in :meth:`~diffusers_infoflow.model_interface.ModelInterface.native_logsnrs`); they replace
                `step_spacing`, and the grid ends with the jump to η = 0 after them.
            mu (`float`, *optional*): flow matching's dynamic shift (FLUX); with it, the rungs are the model's
                native ladder (`sigmas`, or FlowMatchEulerDiscreteScheduler's default).
        """
        nodes = torch.tensor(_TABLEAUX[self.config.solver][0], dtype=torch.float64)
        if timesteps is None and sigmas is None and mu is None:
            grid = self.angle_grid(num_inference_steps)
        else:
            lam = self.interface.native_logsnrs(num_inference_steps, timesteps=timesteps, sigmas=sigmas, mu=mu)
            grid = torch.cat([angle_from_logsnr(lam), torch.zeros(1, dtype=torch.float64)])
            num_inference_steps = len(lam)
        # Grid points inside the table are moved onto the level of the float32 timestep the model will be told
        # (a shift of float32 round-off), so the model sees its sample at exactly its level: a multistep update
        # that rebuilds the sample from (x̂0, ε̂) would otherwise add that round-off at every step.
        clean, noisy = self.train_angle_range
        inside = (grid[:-1] >= clean * (1 - 1e-12)) & (grid[:-1] <= noisy * (1 + 1e-12))
        grid[:-1][inside] = self._level_of(self._model_timesteps(grid[:-1][inside]))
        step = grid[1:] - grid[:-1]
        n_stages = torch.full((num_inference_steps,), self.order, dtype=torch.long)
        if self._ends_with_x0():
            n_stages[-1] = 1  # the last step is one call at η_{N-1} returning x̂0
        stage_angle = (grid[:-1, None] + nodes[None, :] * step[:, None])
        keep = torch.arange(self.order)[None, :] < n_stages[:, None]
        stage_angle = stage_angle[keep]
        self._call_grid_index = torch.arange(num_inference_steps)[:, None].expand(-1, self.order)[keep]
        self._call_stage = torch.arange(self.order)[None, :].expand(num_inference_steps, -1)[keep]
        timesteps = self._model_timesteps(stage_angle)
        self.angles = grid
        self._stage_angle = stage_angle
        # Read outputs at the level of the float32 timestep the model actually gets, not the float64 target.
        self._stage_query_angle = self._level_of(timesteps)
        # The family state of each call's input is this times the angle (VP) state; 1 for the clean result.
        self._call_scale = self.interface.scale(logsnr_from_angle(torch.cat([stage_angle, torch.zeros(1, dtype=torch.float64)])))
        self.timesteps = timesteps.to(device)
        self.num_inference_steps = num_inference_steps
        self._step_start, self._slopes = None, []
        self._history, self._predictor = [], None
        self._previous_x0: Optional[Tuple[float, torch.Tensor]] = None
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
        expected = torch.Size((sample.shape[0], self.interface.output_channels(sample.shape[1]), *sample.shape[2:]))
        what = (
            "TrigAngleRKScheduler(prediction_type='joint') needs 2C channels [ε, x0]: expected"
            if self.config.prediction_type == "joint"
            else "TrigAngleRKScheduler needs C channels (no learned variance or joint head; use prediction_type='joint'): expected"
        )
        check_model_output(model_output, expected, timestep, what)

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
        ``x_{i+1} = x_i + h·Σ_m b_m·k_m`` (Euler: eq. 13). Solver ``ddim`` returns ``cos η_{i+1}·x̂0 + sin η_{i+1}·ε̂``;
        ``multistep`` see :meth:`_multistep_update`. The last step with ``final_step="x0"`` (and always for
        ``ddim``/``multistep``) returns x̂0.

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
        stage = int(self._call_stage[self._step_index])
        grid_index = int(self._call_grid_index[self._step_index])
        eta_now = float(self._stage_angle[self._step_index])
        eta_next = float(self.angles[grid_index + 1])
        h = eta_next - float(self.angles[grid_index])
        last_stage = self._step_index + 1 == len(self._stage_angle) or int(self._call_stage[self._step_index + 1]) == 0

        compute_dtype = torch.float64 if sample.dtype == torch.float64 else torch.float32
        clip = self.config.clip_sample_range if self.config.clip_sample else None
        query_logsnr = float(logsnr_from_angle(self._stage_query_angle[self._step_index]))
        x0, eps = self.interface.predictions(model_output.to(compute_dtype), self._model_state(sample, self._step_index).to(compute_dtype), query_logsnr, clip)
        x = sample.to(compute_dtype) / float(self._call_scale[self._step_index])  # the angle (VP) state
        if stage == 0:
            self._step_start, self._slopes = x, []
        if eta_next == 0.0 and self.config.final_step == "extrapolate" and self._previous_x0 is not None and (
            self._previous_x0[0] < query_logsnr
        ):
            # x̂0 = x* + c·σ̃² along the flow: eliminate c with the previous call's x̂0 (σ̃² = e^{−λ})
            previous_logsnr, previous_x0 = self._previous_x0
            ratio = math.exp(previous_logsnr - query_logsnr)  # σ̃²_N / σ̃²_{N-1}
            prev = (x0 - ratio * previous_x0) / (1.0 - ratio)
        elif self.config.solver == "multistep":
            prev = self._multistep_update(x, x0, eps, grid_index)
        elif eta_next == 0.0 and self._ends_with_x0():
            prev = x0  # the final step: the model's x̂0 at the last level (= the ddim update to η = 0)
        elif self.config.solver == "ddim":
            prev = math.cos(eta_next) * x0 + math.sin(eta_next) * eps
        else:
            self._slopes.append(-math.sin(eta_now) * x0 + math.cos(eta_now) * eps)
            _, stage_coeffs, final_weights = _TABLEAUX[self.config.solver]
            weights = final_weights if last_stage else stage_coeffs[stage]
            prev = self._step_start + h * sum(w * k for w, k in zip(weights, self._slopes) if w != 0.0)
        if last_stage:
            self._step_start, self._slopes = None, []
        self._previous_x0 = (query_logsnr, x0) if math.isfinite(query_logsnr) else None

        prev = prev * float(self._call_scale[self._step_index + 1])
        self._step_index += 1
        prev, x0 = prev.to(sample.dtype), x0.to(sample.dtype)
        if not return_dict:
            return (prev, x0)
        return TrigAngleRKSchedulerOutput(prev_sample=prev, pred_original_sample=x0)

    def _multistep_update(self, x: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, i: int) -> torch.Tensor:
        """One step of the multistep exponential integrator from grid angle η_i (model output just taken at
        the sample x) to η_{i+1}.

        x0 form (``predict_x0=True``): v = u = cot η, f = x̂0, s = σ = sin η, since d(x/σ)/du = x̂0. ε form: v =
        ρ = tan η, f = ε̂, s = α = cos η, since d(x/α)/dρ = ε̂. With the Lagrange polynomial of f in log v
        through the last k nodes integrated exactly (weights w_j from :func:`lagrange_integral_weights`),

            x_{i+1} = s_{i+1}·(x_i/s_i + Σ_j w_j f_j)
                    = α_{i+1}·x̂0_i + σ_{i+1}·ε̂_i + s_{i+1}·Σ_{j≠i} w_j (f_j − f_i) + s_{i+1}·δ_i,

        the second line using x_i^model = α_i x̂0_i + σ_i ε̂_i at the point the model saw (exact for single-head
        models; a joint model's two heads both enter, as in ``ddim``), Σ_j w_j = v_{i+1} − v_i, and δ_i =
        (x_i − x_i^model)/s_i, the corrector's change. Order k = min(`solver_order`, calls so far). The corrector
        (``solver_order`` ≥ 2) re-integrates the last step [v_{i-1}, v_i] with the polynomial through the last
        ``solver_order`` nodes *including* the new one (Adams–Moulton style; the model output at x_i^model stands
        in for the one at the corrected point, as in UniPC) and shifts x_i by the difference. At the last grid
        point (η_{i+1} = 0, u = ∞) the update is x̂0_i.
        """
        eta, eta_next = float(self.angles[i]), float(self.angles[i + 1])
        form_x0, order = self.config.predict_x0, self.config.solver_order
        v = 1.0 / math.tan(eta) if form_x0 else math.tan(eta)
        f = x0 if form_x0 else eps
        predictor, self._predictor = self._predictor, None
        self._history = (self._history + [(v, f)])[-order:]
        if eta_next == 0.0:
            return x0  # u = ∞: the exact limit of the update with x̂0 held is x̂0 itself
        a_next, s_next = math.cos(eta_next), math.sin(eta_next)
        scale_next = s_next if form_x0 else a_next
        v_next = 1.0 / math.tan(eta_next) if form_x0 else math.tan(eta_next)
        log_next = math.log(v_next)

        nodes = list(self._history)
        # x0 form: the weight du grows along the step, so a step long next to the node gaps extrapolates the
        # polynomial far where it counts most: drop the oldest nodes until the steps are comparable. (In the ε
        # form dρ shrinks along the step and the weight sits next to the current node: no guard needed.)
        while form_x0 and len(nodes) > 1 and not _steps_comparable([math.log(n[0]) for n in nodes] + [log_next]):
            nodes = nodes[1:]
        weights = lagrange_integral_weights([n[0] for n in nodes], v, v_next)
        prev = a_next * x0 + s_next * eps
        for w, (_, fj) in zip(weights[:-1], nodes[:-1]):
            prev = prev + (scale_next * w) * (fj - f)

        if self.config.use_corrector and order > 1 and predictor is not None:
            used, v_from = predictor  # the last step's predictor nodes (ending at v_from) and start
            corrector = (used + [(v, f)])[-order:]
            # guarded in both forms, the coming step included: the ε form's weight dρ grows toward the step's
            # start, so a first step from λ = −∞ (start_angle = π/2) is never "corrected"
            while len(corrector) > 2 and not _steps_comparable([math.log(n[0]) for n in corrector] + [log_next]):
                corrector = corrector[1:]
            if _steps_comparable([math.log(n[0]) for n in corrector] + [log_next]):
                w_c = lagrange_integral_weights([n[0] for n in corrector], v_from, v)
                w_p = lagrange_integral_weights([n[0] for n in used], v_from, v)
                anchor = used[-1][1]  # both weight sets sum to v − v_from: only differences enter
                delta = sum(w * (fj - anchor) for w, (_, fj) in zip(w_c, corrector)) - sum(
                    w * (fj - anchor) for w, (_, fj) in zip(w_p, used)
                )  # δ_i = (x_i^corrected − x_i^model)/s_i
                prev = prev + scale_next * delta
        self._predictor = (nodes, v)
        return prev
