"""TrigAngleRKScheduler: the angle-parameterised probability-flow ODE of Zhang & Ehinger, "Improving Denoising
Diffusion Models via Simultaneous Estimation of Image and Noise" (seed 004), solved by Euler, RK2, RK4, DDIM or a
multistep exponential integrator.

The forward marginal lies on a quarter circle, ``x_η = cos η·x0 + sin η·ε`` (``ᾱ = cos² η``, ``λ = log cot² η``),
so the deterministic reverse process is ``dx/dη = −sin η·x̂0 + cos η·ε̂``, integrated from the start angle to
η = 0. ``solver="euler"`` is the paper's eq. 13, ``"rk2"``/``"rk4"`` its higher-order solvers, ``"ddim"`` the
exact rotation ``x_s = cos η_s·x̂0 + sin η_s·ε̂`` (DDIM for an ε model, "DDIM + x̂0, ε̂" for a joint one read
with ``joint_heads="separate"``).

``solver="multistep"`` uses that ``d(x/σ)/du = x̂0`` for ``u = cot η = e^{λ/2}`` (x0 form; ``d(x/α)/dρ = ε̂`` for
``ρ = tan η`` in the ε form): order k integrates the Lagrange polynomial in λ (or, ``interpolation="linear"``, in
u or ρ itself) through the last k model outputs exactly (:func:`lagrange_integral_weights`, the exponential
integrator of DPM-Solver++/DEIS; in the ε form ``"linear"`` is the linear multistep method in Karras' σ̃ = ρ of
diffusers' ``LMSDiscreteScheduler``), optionally
corrected with each new output (UniPC's UniC idea, no extra call); a step much longer than the node gaps drops
its oldest nodes (``max_step_ratio``).

By default every grid ends at the model's cleanest training level and the last step is one call returning its
x̂0 there, so every stage queries the model at its own noise level (``final_step="solver"`` is the paper as
written, with an error floor; ``"extrapolate"`` extrapolates x̂0 to σ = 0 for models whose cleanest level is
still noisy). The model may be of any checkpoint family (VP, EDM, flow matching, or a joint ``[ε, x0]`` model):
it is told its own time at the same λ through :class:`~diffusers_infoflow.model_interface.ModelInterface`.

Multi-stage solvers make one model call per ``step`` as ``HeunDiscreteScheduler`` does: ``timesteps`` repeats
model timesteps stage by stage and ``order`` is the number of stages, so N steps of RK4 take
``4·(N − 1) + 1`` calls (:meth:`~TrigAngleRKScheduler.num_model_calls`). The measured errors of every solver and
step spacing are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import inspect
import math
import numbers
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

from ..model_interface import ModelInterface, class_from_keys
from ..schedules import NoiseSchedule
from ..step_placement import InformationMeasure, information_placement
from ._common import ModelInterfaceMixin, StepIndexMixin, check_model_output


__all__ = [
    "FINAL_STEPS",
    "INTERPOLATIONS",
    "SOLVERS",
    "STEP_SPACINGS",
    "TrigAngleRKScheduler",
    "TrigAngleRKSchedulerOutput",
    "angle_from_logsnr",
    "lagrange_integral_weights",
    "logsnr_from_angle",
]

Solver = Literal["euler", "rk2", "rk4", "ddim", "multistep"]
StepSpacing = Literal["angle", "logsnr", "karras", "linspace", "information"]
PredictionType = Literal["epsilon", "sample", "v_prediction", "joint", "flow_prediction"]
FinalStep = Literal["x0", "extrapolate", "solver"]
LadderEnd = Literal["clean", "trailing"]
Interpolation = Literal["logsnr", "linear"]

SOLVERS = ("euler", "rk2", "rk4", "ddim", "multistep")
STEP_SPACINGS = ("angle", "logsnr", "karras", "linspace", "information")
RENAMED_SPACINGS = {"uniform_eta": "angle", "uniform_logsnr": "logsnr", "uniform_timestep": "linspace"}  # before 0.1
FINAL_STEPS = ("x0", "extrapolate", "solver")
LADDER_ENDS = ("clean", "trailing")
SOLVER_ORDERS = (1, 2, 3, 4)
INTERPOLATIONS = ("logsnr", "linear")
MULTISTEP_OPTIONS = ("solver_order", "predict_x0", "use_corrector", "lower_order_final", "max_step_ratio", "interpolation")  # other solvers refuse non-defaults
# The multistep solver uses k nodes only while the steps between them and the new step have lengths within
# `max_step_ratio` of each other, measured in the variable the polynomial is one of (λ, or u/ρ itself with
# `linear`): far extrapolation of the polynomial (a long step after short ones, e.g. angle's last step into the
# clean end, or any λ-uniform step in u, which grows as e^{h/2}) or a node at λ = −∞ would ruin the step.
# `step_spacing=None` picks the solver's measured best (benchmarks/README.md).
DEFAULT_SPACINGS = {"euler": "angle", "ddim": "angle", "rk2": "logsnr", "rk4": "logsnr", "multistep": "logsnr"}

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


def lagrange_integral_weights(nodes: List[float], start: float, end: float, interpolation: Interpolation = "logsnr") -> List[float]:
    """Exact weights of ``∫_start^end p(v) dv`` where p interpolates values at ``nodes`` by a polynomial in log v
    (``interpolation="logsnr"``: v = e^{±λ/2}) or in v itself (``"linear"``).

    Returns w with ``∫_start^end p(v) dv = Σ_j w_j·p(nodes[j])`` for p(v) = P(log v) (or P(v)), P the Lagrange
    polynomial (degree len(nodes) − 1) through (log nodes[j], value_j) (or (nodes[j], value_j)). For ``"logsnr"`` all
    of nodes, start, end must be > 0 (u = cot η or ρ = tan η), for ``"linear"`` ≥ 0; end < start is allowed.
    With t = log(v/start), ``∫ P(t)·start·e^t dt`` is integrated in closed form, ``∫ P e^t = e^t·Σ_m (−1)^m P^{(m)}``;
    a polynomial in v by its antiderivative in (v − start)/scale; in float64.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}.")
    linear = interpolation == "linear"
    if not all(math.isfinite(v) and (v >= 0 if linear else v > 0) for v in (*nodes, start, end)):
        raise ValueError(f"nodes and interval ends must be finite and {'non-negative' if linear else 'positive'}, "
                         f"got nodes={nodes}, start={start}, end={end}.")
    weights = []
    if linear:
        # in x = (v − start)/scale, |x| ≤ 1 over all points: u spans 1e-2–1e2 over a ladder, and powers of v itself
        # would mix those scales in one sum
        scale = max(abs(v - start) for v in (*nodes, end)) or 1.0  # all equal: a one-node rule over an empty interval
        for j in range(len(nodes)):
            antiderivative = np.polynomial.polynomial.polyint(_lagrange_basis([(v - start) / scale for v in nodes], j))
            weights.append(float(scale * np.polynomial.polynomial.polyval((end - start) / scale, antiderivative)))
        return weights
    times = [math.log(v / start) for v in nodes]
    horizon = math.log(end / start)
    for j in range(len(nodes)):
        # antiderivative of basis(t)·e^t is e^t·Σ_m (−1)^m basis^{(m)}(t)
        total, derivative, sign = np.zeros(1), _lagrange_basis(times, j), 1.0
        while derivative.size and np.any(derivative):
            total = np.polynomial.polynomial.polyadd(total, sign * derivative)
            derivative, sign = np.polynomial.polynomial.polyder(derivative), -sign
        at_end = math.exp(horizon) * np.polynomial.polynomial.polyval(horizon, total)
        at_start = np.polynomial.polynomial.polyval(0.0, total)
        weights.append(float(start * (at_end - at_start)))
    return weights


def _lagrange_basis(points: List[float], j: int) -> np.ndarray:
    """Coefficients (lowest first) of the j-th Lagrange basis polynomial through `points`."""
    basis = np.array([1.0])
    for m, point in enumerate(points):
        if m != j:
            basis = np.polynomial.polynomial.polymul(basis, np.array([-point, 1.0]) / (points[j] - point))
    return basis


def _steps_comparable(values: List[float], max_step_ratio: Optional[float], interpolation: Interpolation) -> bool:
    """Whether consecutive gaps between `values` (u or ρ), measured in the polynomial's variable (log v, or v itself
    with ``"linear"``), are within `max_step_ratio` of each other (None: always)."""
    if max_step_ratio is None:
        return True
    points = values if interpolation == "linear" else [math.log(v) for v in values]
    gaps = [abs(b - a) for a, b in zip(points[:-1], points[1:])]
    return max(gaps) <= max_step_ratio * min(gaps)


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
        joint_heads (`str`, defaults to `"velocity"`): how a `joint` model's heads are read: `velocity` (one
            v̂ = α·ε̂ − σ·x̂0, read as a v-prediction, so x̂0 and ε̂ add up to the state) or `separate` (each head as
            it is, seed 004's "DDIM + x̂0, ε̂"). Other prediction types have one head and ignore it.
        solver (`str`, defaults to `"rk4"`): `euler` (eq. 13), `rk2` (Heun), `rk4` (classic), `ddim`
            (the exact rotation x_s = cos η_s·x̂0 + sin η_s·ε̂) or `multistep` (exponential integrator of order
            `solver_order`, one model call per step).
        step_spacing (`str`, *optional*): the rungs, always from the model's noisiest level: `angle` (uniform in
            η), `logsnr` (uniform in λ), `karras` (σ̃ = tan η Karras-spaced with exponent `rho`), `linspace` (uniform
            in the model's own time, as diffusers' `timestep_spacing="linspace"`; with `ladder_end="trailing"`,
            diffusers' `trailing`) or `information` (placed by the model's measured mmse curve, `information_curve`).
            `None` (default) = the solver's measured best: `logsnr` for `multistep`, `rk2`, `rk4`; `angle` for
            `euler`, `ddim`, and for every solver from `start_angle = π/2`. A source config's `timestep_spacing` (DDIM's
            `leading` starts below the noisiest level) is not read.
        rho (`float`, defaults to 7.0): the Karras exponent of the `karras` spacing (read from an EDM config).
        information_curve (`dict`, *optional*): the model's mmse curve `{"logsnr": [...], "mmse": [...]}` from
            :func:`~diffusers_infoflow.step_placement.calibrate_information_curve`, for `step_spacing="information"`.
        information_measure (`str`, defaults to `"mmse_decrease"`): the weight whose integral the `information`
            rungs split equally, `mmse_decrease` (−d mmse/dλ) or `information` (dI/dλ).
        information_power (`float`, defaults to 0.5): the power p of that weight (0 = uniform in λ). The defaults
            won on the shipped MNIST model at 5 and 10 calls (`benchmarks/results/fid_race.md`).
        start_angle (`float`, *optional*): the start angle in radians, in (0, π/2]; `None` = the angle of the
            training schedule's noisiest timestep. `logsnr` and `karras` need it below π/2,
            `linspace` within the training table.
        ladder_end (`str`, defaults to `"clean"`): `clean` = the last rung is the model's cleanest level; `trailing` =
            the N rungs are the starts of N equal intervals of the spacing that end there, and the last step returns
            the x̂0 of the last rung (diffusers' `trailing` with a zero final σ): no call is spent where x̂0 ≈ x.
            Rungs given to `set_timesteps` (`timesteps`, `sigmas`, `mu`) are used as given, ending as they end.
        final_step (`str`, defaults to `"x0"`): `x0` = the solve ends at the model's cleanest level (or, with
            `ladder_end="trailing"`, at the last rung) and the last step returns the model's x̂0 there (one call); `extrapolate` (`ddim`/`multistep`) = the same call, with
            x̂0 extrapolated to σ = 0 from the last two calls (Richardson in σ̃² = e^{−λ}, since along the flow
            x̂0 = x* + O(σ̃²)), for models whose cleanest level is still noisy (SD's σ̃ = 0.03); `solver` = seed
            004 as written, a full solver step down to η = 0 (an error floor, kept to reproduce the paper).
        solver_order (`int`, defaults to 3): 1 to 4, the order of `multistep` (1 = `ddim`; on the exact denoisers
            of `benchmarks/sampler_race.py` 4 leads at 5 calls on the 64-image sets, `benchmarks/README.md` §1). The other solvers
            refuse values other than the defaults of this option and the next four, which they do not use.
        predict_x0 (`bool`, defaults to `True`): `multistep` integrates x̂0 against u = cot η (`True`, x0 form)
            or ε̂ against ρ = tan η (`False`, ε form).
        use_corrector (`bool`, defaults to `True`): `multistep` corrects each sample with the model output
            evaluated at it (no extra call).
        lower_order_final (`bool`, defaults to `False`): `multistep` lowers the order of its last steps, like
            diffusers' option of that name but one step earlier and at any number of steps: the step into the last
            rung is first order (a DDIM step) and each step before it at most one order higher, so the polynomial
            is not extrapolated over the long last steps of uniform ladders, where x̂0 changes fastest. On the
            shipped MNIST model it pays on diffusers' `trailing` rungs at 10 and 20 calls and costs at 5
            (`benchmarks/README.md` §2b).
        max_step_ratio (`float`, *optional*, defaults to 2.0): `multistep` drops its oldest nodes while the gaps
            between them and the coming step differ by more than this factor, in the x0 form's predictor (whose
            weight du sits at the step's far end) and in the corrector of both forms (which keeps a start at
            λ = −∞ finite). Gaps are measured in the polynomial's variable: log-SNR, or with `interpolation="linear"`
            u (ρ) itself. `None` keeps every node, as diffusers' multistep solvers do, and trusts the rungs: it is
            for ladders fitted with it (`fit_ladder`); on rungs whose steps grow fast in that variable (uniform
            in time into the clean end; with `linear`, any λ-uniform rungs) the polynomial is extrapolated far and
            loses accuracy by orders of magnitude. Refused (for orders > 1) on grids starting at η = π/2.
        interpolation (`str`, defaults to `"logsnr"`): the variable in which `multistep`'s Lagrange polynomial
            through the last k outputs is a polynomial: `logsnr` (λ, as DPM-Solver++ and UniPC) or `linear` (the
            integration variable itself, u = α/σ in the x0 form, ρ = σ/α = Karras' σ̃ in the ε form, where order k
            without the corrector is diffusers' `LMSDiscreteScheduler` of order k, but for its last step). u grows
            ×e^{h/2} over a step h in λ, so with `linear` the `max_step_ratio` guard cuts coarse λ-uniform rungs to
            low orders (at 10 steps over a DDPM table's λ range, every step to order 1: DDIM); angle or fitted rungs
            suit it. In the x0 form it wins 5, 15 and 20 calls on the race draw of the largest 16×16 set of
            `benchmarks/sampler_race.py` (`benchmarks/README.md` §1).
        clip_sample (`bool`, defaults to `False`): clamp x̂0 to `[-clip_sample_range, clip_sample_range]` before
            it enters the solver, as DDIM's `clip_sample` does. A single-head model's ε̂ is then re-derived from the
            clamped x̂0 (ε̂ = (x − cos η·x̂0)/sin η), so the pair stays consistent with x and the ODE's slope is
            the probability flow of the clamped denoiser (a joint model's too, unless read with `joint_heads="separate"`,
            which keeps its ε head). Read from a DDPM/DDIM
            config by `from_config`, so a model saved with `clip_sample=True` is sampled with it.
        clip_sample_range (`float`, defaults to 1.0): the clamp bound.
    """

    _compatibles = [e.name for e in KarrasDiffusionSchedulers]
    order = 1  # replaced per instance by the solver's number of stages

    @classmethod
    def from_config(cls, config=None, return_unused_kwargs: bool = False, **kwargs):
        """`from_config` of any diffusers scheduler config (see the mixin). A `solver` other than `multistep` given
        here replaces a config's solver, and with it the multistep options that config carries
        (:data:`MULTISTEP_OPTIONS`), as a source sampler's options are left out; given here with such a solver,
        they are refused."""
        if config is not None and kwargs.get("solver", "multistep") != "multistep":
            config = dict(config)
            source = config.get("_class_name")
            if source is None and "noise_family" not in config:  # in memory: the class is told by its keys
                source = class_from_keys({k: v for k, v in config.items() if not k.startswith("_")}, cls.__name__)
            if source in (None, cls.__name__):  # our own options; a diffusers class's are its sampler's, left out anyway
                config = {key: value for key, value in config.items() if key not in MULTISTEP_OPTIONS}
        return super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)

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
        joint_heads: Literal["velocity", "separate"] = "velocity",
        solver: Solver = "rk4",
        step_spacing: Optional[StepSpacing] = None,
        rho: float = 7.0,
        information_curve: Optional[Dict[str, List[float]]] = None,
        information_measure: InformationMeasure = "mmse_decrease",
        information_power: float = 0.5,
        start_angle: Optional[float] = None,
        final_step: FinalStep = "x0",
        ladder_end: LadderEnd = "clean",
        solver_order: int = 3,
        predict_x0: bool = True,
        use_corrector: bool = True,
        lower_order_final: bool = False,
        max_step_ratio: Optional[float] = 2.0,
        interpolation: Interpolation = "logsnr",
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
    ):
        if noise_family not in ("discrete", "edm", "flow"):
            raise ValueError(f"noise_family must be one of ('discrete', 'edm', 'flow'), got {noise_family!r}.")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
        if step_spacing in RENAMED_SPACINGS:
            raise ValueError(f"step_spacing={step_spacing!r} is called {RENAMED_SPACINGS[step_spacing]!r} now.")
        if step_spacing is not None and step_spacing not in STEP_SPACINGS:
            raise ValueError(f"step_spacing must be one of {STEP_SPACINGS} or None (the solver's default), got {step_spacing!r}.")
        if final_step not in FINAL_STEPS:
            raise ValueError(f"final_step must be one of {FINAL_STEPS}, got {final_step!r}.")
        if ladder_end not in LADDER_ENDS:
            raise ValueError(f"ladder_end must be one of {LADDER_ENDS}, got {ladder_end!r}.")
        if ladder_end == "trailing" and final_step == "solver":
            raise ValueError("ladder_end='trailing' ends with the x̂0 of the last call; it needs final_step='x0' or 'extrapolate'.")
        if final_step == "extrapolate" and solver not in ("ddim", "multistep"):
            raise ValueError(f"final_step='extrapolate' needs a one-call-per-step solver ('ddim' or 'multistep'), got solver={solver!r}.")
        if isinstance(solver_order, bool) or solver_order not in SOLVER_ORDERS:
            raise ValueError(f"solver_order must be one of {SOLVER_ORDERS}, got {solver_order!r}.")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}.")
        flags = {"predict_x0": predict_x0, "use_corrector": use_corrector, "lower_order_final": lower_order_final, "clip_sample": clip_sample}
        for key, value in flags.items():
            if not isinstance(value, (bool, np.bool_)):  # a hand-edited "false" would read as True
                raise ValueError(f"{key} must be True or False, got {value!r}.")
        if max_step_ratio is not None:
            if isinstance(max_step_ratio, (bool, np.bool_)) or not isinstance(max_step_ratio, numbers.Real) or not 1.0 <= max_step_ratio < math.inf:
                raise ValueError(f"max_step_ratio must be a finite number >= 1 or None (never drop nodes), got {max_step_ratio!r}.")
            self.register_to_config(max_step_ratio=float(max_step_ratio))  # a numpy scalar would not serialise
        multistep_options = {"solver_order": solver_order, "predict_x0": predict_x0, "use_corrector": use_corrector,
                             "lower_order_final": lower_order_final, "max_step_ratio": max_step_ratio,
                             "interpolation": interpolation}
        changed = {key: value for key, value in multistep_options.items() if value != MULTISTEP_DEFAULTS[key]}
        if changed and solver != "multistep":
            raise ValueError(f"{changed} set the multistep solver, which solver={solver!r} does not use; leave them at "
                             f"{ {key: MULTISTEP_DEFAULTS[key] for key in changed} } or use solver='multistep'.")
        if not rho > 0:
            raise ValueError(f"rho must be > 0, got {rho!r}.")
        if not clip_sample_range > 0:
            raise ValueError(f"clip_sample_range must be > 0, got {clip_sample_range!r}.")
        self.information = information_placement(step_spacing, information_curve, information_measure, information_power)
        if self.information is not None:  # stored as used: JSON lists, the running minimum applied
            self.register_to_config(information_curve=self.information.to_config())
        self.interface = ModelInterface.from_config(self.config)
        self.register_to_config(prediction_type=self.interface.prediction_type)
        noisy_logsnr, clean_logsnr = self.interface.logsnr_range
        # The angles of the model's noisiest (τ = T-1) and cleanest (τ = 0) levels.
        self.train_angle_range = (float(angle_from_logsnr(torch.tensor(clean_logsnr, dtype=torch.float64))), float(angle_from_logsnr(torch.tensor(noisy_logsnr, dtype=torch.float64))))
        if start_angle is not None:
            if not 0.0 < float(start_angle) <= math.pi / 2:
                raise ValueError(f"start_angle must lie in (0, π/2] radians, got {start_angle!r}.")
            if step_spacing not in (None, "angle") and float(start_angle) >= math.pi / 2:
                raise ValueError(f"step_spacing={step_spacing!r} needs start_angle < π/2 (λ is -inf at π/2); use 'angle'.")
            if step_spacing == "linspace" and float(start_angle) > self.train_angle_range[1] * (1 + 1e-9):
                raise ValueError(
                    f"step_spacing='linspace' needs start_angle within the training table (<= {self.train_angle_range[1]:.6g}), "
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
        (`angle` from `start_angle = π/2`, where λ = −∞)."""
        if self.config.step_spacing is not None:
            return self.config.step_spacing
        return "angle" if self.start_angle >= math.pi / 2 else DEFAULT_SPACINGS[self.config.solver]

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
        if self.config.ladder_end == "trailing":  # the N rungs start N intervals of the spacing; the clean end is not called
            grid = self._spaced_angles(num_inference_steps + 1)
            return torch.cat([grid[:-2], grid[-1:]])
        return self._spaced_angles(num_inference_steps)

    def _spaced_angles(self, num_inference_steps: int) -> torch.Tensor:
        n, start = num_inference_steps, self.start_angle
        spacing = self.step_spacing
        clean = self.train_angle_range[0]
        if spacing == "angle":
            if self.config.final_step == "solver":  # the paper's grid η_k = η_start·(1 − k/N)
                return torch.linspace(start, 0.0, n + 1, dtype=torch.float64)
            inner = torch.linspace(start, clean, n, dtype=torch.float64) if n > 1 else torch.tensor([start], dtype=torch.float64)
            return torch.cat([inner, torch.zeros(1, dtype=torch.float64)])
        if n == 1 and self.config.final_step != "solver":  # the single step is the x̂0 call at the start
            return torch.tensor([start, 0.0], dtype=torch.float64)
        if n < 2:
            raise ValueError(f"step_spacing={spacing!r} with final_step='solver' needs num_inference_steps >= 2 (its last step is the jump to η = 0).")
        # the other spacings are the interface's, over λ from the start angle (π/2: pure noise, λ = −∞, which
        # float64's cos(π/2) ≠ 0 would not give) to the cleanest level
        noisy = -math.inf if start >= math.pi / 2 else float(logsnr_from_angle(torch.tensor(start, dtype=torch.float64)))
        logsnr_range = (noisy, float(logsnr_from_angle(torch.tensor(clean, dtype=torch.float64))))
        lam = self.interface.spaced_logsnrs(n, {"linspace": "time"}.get(spacing, spacing), self.config.rho,
                                            self._place_by_information, logsnr_range)
        return torch.cat([angle_from_logsnr(lam), torch.zeros(1, dtype=torch.float64)])

    def _model_timesteps(self, angles: torch.Tensor) -> torch.Tensor:
        """The timesteps told to the model at `angles` (clamped to the levels it can be told)."""
        lo, hi = self.interface.logsnr_range
        query_logsnr = logsnr_from_angle(angles).clamp(*self.interface.told_logsnr_range)
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
        if (self.config.solver == "multistep" and self.config.max_step_ratio is None and self.config.solver_order > 1
                and float(grid[0]) >= math.pi / 2):
            # only the ratio guard keeps that node out of the polynomial: it is infinite in log-SNR and in the ε
            # form's ρ (the corrector's weights on it are ~1e14), and the x0 form's u = 0 there is followed by steps
            # growing without bound in u (a polynomial in u through it is off by 10–10⁶ on the exact Gaussian flow)
            raise ValueError("max_step_ratio=None keeps every node, and this grid starts at λ = −∞ (η = π/2, e.g. a "
                             "flow-matching model's t = 1), whose node ruins the polynomial: infinite in log-SNR and "
                             "in the ε form's ρ = tan η, and u = 0 before steps growing without bound in u; use a "
                             "finite max_step_ratio or a start_angle below π/2.")
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

        Returns:
            `TrigAngleRKSchedulerOutput` or `tuple`: `prev_sample` (the next model input: the next stage, the next
            grid point or, after the last step, x̂0) and `pred_original_sample` (x̂0 of this call); the tuple is
            `(prev_sample, pred_original_sample)`.
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
        ρ = tan η, f = ε̂, s = α = cos η, since d(x/α)/dρ = ε̂. With the Lagrange polynomial of f in log v (in v
        with ``interpolation="linear"``) through the last k nodes integrated exactly (weights w_j from :func:`lagrange_integral_weights`),

            x_{i+1} = s_{i+1}·(x_i/s_i + Σ_j w_j f_j)
                    = α_{i+1}·x̂0_i + σ_{i+1}·ε̂_i + s_{i+1}·Σ_{j≠i} w_j (f_j − f_i) + s_{i+1}·δ_i,

        the second line using x_i^model = α_i x̂0_i + σ_i ε̂_i at the point the model saw (exact for single-head
        models and joint ones read with ``joint_heads="velocity"``; with ``"separate"`` both heads enter as they
        are, as in ``ddim``), Σ_j w_j = v_{i+1} − v_i, and δ_i =
        (x_i − x_i^model)/s_i, the corrector's change. Order k = min(`solver_order`, calls so far). The corrector
        (k ≥ 2) re-integrates the last step [v_{i-1}, v_i] with the polynomial through the last k nodes
        *including* the new one (Adams–Moulton style; the model output at x_i^model stands
        in for the one at the corrected point, as in UniPC) and shifts x_i by the difference. At the last grid
        point (η_{i+1} = 0) the update is x̂0_i: the x0 form's limit u → ∞, the ε form's first-order step to ρ = 0. With ``lower_order_final`` the order of step i (its
        predictor, and the corrector it applies to x_i) is at most N − 1 − i.
        """
        eta, eta_next = float(self.angles[i]), float(self.angles[i + 1])
        form_x0, order = self.config.predict_x0, self.config.solver_order
        if self.config.lower_order_final:
            order = max(1, min(order, self.num_inference_steps - 1 - i))
        v = 1.0 / math.tan(eta) if form_x0 else math.tan(eta)
        f = x0 if form_x0 else eps
        predictor, self._predictor = self._predictor, None
        self._history = (self._history + [(v, f)])[-self.config.solver_order:]
        if eta_next == 0.0:
            return x0  # u = ∞: the exact limit of the update with x̂0 held is x̂0 itself (ε form: DDIM's step to ρ = 0)
        a_next, s_next = math.cos(eta_next), math.sin(eta_next)
        scale_next = s_next if form_x0 else a_next
        v_next = 1.0 / math.tan(eta_next) if form_x0 else math.tan(eta_next)

        nodes = self._history[-order:]
        # x0 form: the weight du grows along the step, so a step long next to the node gaps extrapolates the
        # polynomial far where it counts most: drop the oldest nodes until the steps are comparable. (In the ε
        # form dρ shrinks along the step and the weight sits next to the current node: no guard needed.)
        ratio, interpolation = self.config.max_step_ratio, self.config.interpolation
        while form_x0 and len(nodes) > 1 and not _steps_comparable([n[0] for n in nodes] + [v_next], ratio, interpolation):
            nodes = nodes[1:]
        weights = lagrange_integral_weights([n[0] for n in nodes], v, v_next, interpolation)
        prev = a_next * x0 + s_next * eps
        for w, (_, fj) in zip(weights[:-1], nodes[:-1]):
            prev = prev + (scale_next * w) * (fj - f)

        if self.config.use_corrector and order > 1 and predictor is not None:
            used, v_from = predictor  # the last step's predictor nodes (ending at v_from) and start
            corrector = (used + [(v, f)])[-order:]
            # guarded in both forms, the coming step included: the ε form's weight dρ grows toward the step's
            # start, so a first step from λ = −∞ (start_angle = π/2) is never "corrected"
            while len(corrector) > 2 and not _steps_comparable([n[0] for n in corrector] + [v_next], ratio, interpolation):
                corrector = corrector[1:]
            if _steps_comparable([n[0] for n in corrector] + [v_next], ratio, interpolation):
                w_c = lagrange_integral_weights([n[0] for n in corrector], v_from, v, interpolation)
                w_p = lagrange_integral_weights([n[0] for n in used], v_from, v, interpolation)
                anchor = used[-1][1]  # both weight sets sum to v − v_from: only differences enter
                delta = sum(w * (fj - anchor) for w, (_, fj) in zip(w_c, corrector)) - sum(
                    w * (fj - anchor) for w, (_, fj) in zip(w_p, used)
                )  # δ_i = (x_i^corrected − x_i^model)/s_i
                prev = prev + scale_next * delta
        self._predictor = (nodes, v)
        return prev


# The multistep options' defaults, as the signature gives them (the presets of `sampling` pin them).
MULTISTEP_DEFAULTS = {name: inspect.signature(TrigAngleRKScheduler.__init__).parameters[name].default for name in MULTISTEP_OPTIONS}
