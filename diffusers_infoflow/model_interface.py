"""The model interface: how a checkpoint family is told its noise level, scales its input and what its output means.

Every family is the same Gaussian path ``x = a·x0 + b·ε`` up to scale; only the scale, the model's time input
and the meaning of its output differ:

| family (`noise_family`) | state x | model is told | input | output → (x̂0, ε̂) |
|---|---|---|---|---|
| `discrete` (DDPM/DDIM/PNDM/Euler/DPM/UniPC configs) | α x0 + σ ε, α² = ᾱ_τ | τ (fractional allowed) | x | ε, x0, v, [ε, x0] |
| `edm` (EDMEuler/EDMDPMSolver configs) | x0 + s ε | ¼·ln s | x / √(s² + σ_d²) | c_skip·x + c_out·F |
| `flow` (FlowMatch configs, `use_flow_sigmas`) | (1 − t) x0 + t ε | t · num_train_timesteps | x | v = ε − x0 |

Schedulers compute in log-SNR λ = log(a²/b²) on the variance-preserving state ``x / √(a² + b²)``
(:meth:`ModelInterface.scale`) and meet the model only through :class:`ModelInterface`. Equal λ is equal
Gaussian entropy of the VP-scaled x_t given x0, so entropy matching across families is λ matching.

:func:`scheduler_kwargs_from_config` turns any diffusers scheduler config into our config keys, reading every
key that changes the maths and refusing (``ValueError``) any it cannot honour: diffusers' own ``from_config``
drops unknown keys of compatible classes without a word.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .schedules import (
    CONTINUOUS_SCHEDULES,
    DiscreteSchedule,
    NoiseSchedule,
    family_params,
    flow_matching_schedule,
    get_betas,
    get_schedule,
)


__all__ = [
    "FAMILY_CLASSES",
    "JOINT_HEADS",
    "NOISE_FAMILIES",
    "ModelInterface",
    "scheduler_kwargs_from_config",
    "split_joint_prediction",
]

NOISE_FAMILIES = tuple(dict.fromkeys(("discrete", "edm", "flow") + CONTINUOUS_SCHEDULES))  # "edm" is both a family and a schedule
# The diffusers scheduler classes whose configs describe each family's models.
FAMILY_CLASSES: Dict[str, Tuple[str, ...]] = {
    "discrete": (
        "DDPMScheduler", "DDIMScheduler", "DDIMInverseScheduler", "PNDMScheduler", "EulerDiscreteScheduler",
        "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "LMSDiscreteScheduler", "KDPM2DiscreteScheduler",
        "KDPM2AncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
        "DPMSolverSDEScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler", "DDPMParallelScheduler",
        "DDIMParallelScheduler",
    ),
    "edm": ("EDMEulerScheduler", "EDMDPMSolverMultistepScheduler"),
    "flow": ("FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler"),
}
# Classes whose models are told their noise level in a way no family here implements (consistency models: 250·ln σ
# and their own c_skip/c_out; score-SDE VE; Stable Audio's cosine σ; iPNDM's own table), by the keys of their
# in-memory configs (CosineDPMSolver is a placeholder without torchsde, so its keys are listed here).
REFUSED_CLASSES = ("CMStochasticIterativeScheduler", "ScoreSdeVeScheduler", "TCDScheduler", "LCMScheduler", "IPNDMScheduler")
REFUSED_KEY_SETS = {
    "CosineDPMSolverMultistepScheduler": frozenset({
        "sigma_min", "sigma_max", "sigma_data", "sigma_schedule", "num_train_timesteps", "solver_order", "prediction_type",
        "rho", "solver_type", "lower_order_final", "euler_at_final", "final_sigmas_type",
    }),
}
OUR_CLASSES = ("EntropyHybridScheduler", "S2NGeneralizedScheduler", "TrigAngleRKScheduler")
PREDICTIONS: Dict[str, Tuple[str, ...]] = {
    "none": ("epsilon", "sample", "v_prediction", "joint", "flow_prediction"),
    "edm": ("epsilon", "v_prediction"),  # EDM's F-network, c_out sign + for ε, − for v (diffusers' EDM schedulers)
}
DEFAULT_PREDICTION = {"flow": "flow_prediction"}
# How a joint [ε, x0] model's heads become (x̂0, ε̂). "separate": each head as it is (Zhang & Ehinger's
# "DDIM + x̂0, ε̂"); the pair need not add up to the state x. "velocity": one v̂ = a·ε̂ − b·x̂0 read as a
# v-prediction, x̂0 = (a·x − b·v̂)/(a² + b²), a pair that adds up to x; x̂0 weighs the x0 head by b² and the ε head's
# x̂0 by a² (over a² + b²), each head where it is the more accurate. The angle ODE's slope −sin η·x̂0 + cos η·ε̂ is v̂
# under both readings (Euler/RK stages agree), but updates built on x̂0 and ε̂ themselves differ: DDIM's and the
# multistep rotation α_s·x̂0 + σ_s·ε̂ drop the part of x the heads disagree on, the last step returns x̂0, a clamp
# acts on x̂0.
JOINT_HEADS = ("velocity", "separate")
# The cleanest flow time a flow-matching model is asked about (its training covers t in (0, 1]).
FLOW_T_MIN = 1e-5

# Keys of a source config that configure *its* sampler (order, ladder, last step, variance of ancestral steps);
# from a diffusers class they are left out and the target uses its own choices (the ladder keys of LADDER_KEYS
# excepted, read by targets that place rungs with them). Values that would change the maths are refused first
# (REFUSED_VALUES), and use_flow_sigmas/flow_shift are read into the flow family before this applies.
SOURCE_SAMPLER_KEYS = frozenset({
    "algorithm_type", "solver_order", "solver_type", "lower_order_final", "euler_at_final", "final_sigmas_type",
    "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "lambda_min_clipped",
    "skip_prk_steps", "set_alpha_to_one", "predict_x0", "solver_p", "disable_corrector", "interpolation_type",
    "dynamic_thresholding_ratio", "sample_max_value", "stochastic_sampling", "noise_sampler_seed", "variance_type",
    "timestep_type", "thresholding", "invert_sigmas", "use_flow_sigmas", "flow_shift",
    # the source's ladder, for a target that places its own rungs (read by a target that accepts them)
    "timestep_spacing", "steps_offset", "rho", "sigma_schedule",
    # our own schedulers' sampler options, when converting between them
    "eta", "sampling_schedule", "sampling_num_timesteps", "sampling_schedule_params", "segments", "segment_models",
    "fractional_timesteps", "gamma", "delta", "sde_rho", "variant", "solver",
    "start_angle", "final_step", "ladder_end", "use_corrector", "max_step_ratio", "interpolation", "information_curve", "information_measure",
    "information_power",
})
# Values of source keys that would change the maths and that no scheduler here implements.
REFUSED_VALUES: Dict[str, Tuple[Any, ...]] = {
    "thresholding": (True,),
    "variance_type": ("learned", "learned_range"),  # the model also outputs a variance: 2C channels
    "timestep_type": ("continuous",),  # EulerDiscrete's ¼·ln σ time input to a VP model
    "invert_sigmas": (True,),
}
LADDER_KEYS = frozenset({"timestep_spacing", "steps_offset", "rho", "sigma_schedule"})
# Keys of our schedulers' earlier versions, refused with their new names.
RENAMED_KEYS = {"karras_rho": "rho"}


def scheduler_kwargs_from_config(config: Mapping[str, Any], accepted: Iterable[str], target: str) -> Dict[str, Any]:
    """Our scheduler's config keys from any diffusers scheduler config (or one of ours).

    Args:
        config: a scheduler config (``pipe.scheduler.config``, or a dict read from ``scheduler_config.json``).
        accepted: the target scheduler's ``__init__`` parameters.
        target: the target class name, for messages.

    Returns:
        The keyword arguments for the target's ``__init__``: the model's keys as given, ``noise_family`` set from
        the source class, the source sampler's own options (:data:`SOURCE_SAMPLER_KEYS`, and the `step_spacing` of
        another of our classes) left out.

    Raises:
        ValueError: for a source class outside :data:`FAMILY_CLASSES` (e.g. a consistency model), a key the target
            cannot read, or a value no scheduler here implements (:data:`REFUSED_VALUES`).
    """
    accepted = set(accepted)
    # Every key the source scheduler runs with is read, defaults included (diffusers' own from_config would drop
    # those listed in `_use_default_values`, e.g. DDPMScheduler's clip_sample=True).
    cfg = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    class_name = dict(config).get("_class_name")
    family = cfg.get("noise_family")
    if not (class_name == target or (class_name is None and set(cfg) <= accepted)):
        # our rung placements differ between our classes: another class's is its sampler option, not the model's
        cfg.pop("step_spacing", None)
        if cfg.get("noise_family", "discrete") != "discrete":  # β-table ladder keys: unused on EDM and flow ladders
            cfg.pop("timestep_spacing", None)
            cfg.pop("steps_offset", None)
    if class_name is None and family is None:
        # An in-memory scheduler's config carries no class name: the class whose keys it has exactly.
        class_name = class_from_keys(cfg, target)
    if class_name is not None and class_name not in OUR_CLASSES:
        found = [name for name, classes in FAMILY_CLASSES.items() if class_name in classes]
        if not found:
            allowed = ", ".join(sorted(c for classes in FAMILY_CLASSES.values() for c in classes))
            raise ValueError(
                f"{target} cannot read a {class_name} config: its models are told their noise level in a way no "
                f"family here implements (allowed classes: {allowed})."
            )
        family = found[0]
        # A saved config leaves out keys at their defaults (diffusers fills them from the class when it loads one):
        # read them at the source class's defaults, not ours (e.g. Heun's scaled-linear β range, DDIM's clip_sample).
        cfg = {**_class_defaults(class_name), **cfg}
        if "noise_family" not in cfg:
            # A key the source class does not take never changed how the checkpoint was sampled (SDXL's Euler config
            # carries DDIM's clip_sample): read the config as its class runs it, not as such a key's name says. (One
            # of our configs saved under a diffusers class name keeps its keys, so a contradiction is refused.)
            signatures = _class_signatures()
            known = frozenset().union(*signatures.values())
            cfg = {key: value for key, value in cfg.items() if key in signatures[class_name] or key not in known}  # a typo is still refused
    for key, refused in REFUSED_VALUES.items():
        if key in cfg and cfg[key] in refused:
            raise ValueError(f"{target} cannot honour {key}={cfg[key]!r} of the {class_name or 'given'} config.")
    if cfg.get("use_flow_sigmas"):
        family = "flow"
        if cfg.get("shift", 1.0) != 1.0:
            raise ValueError("a config with both use_flow_sigmas and shift is ambiguous; give flow_shift only.")
        cfg["shift"] = cfg.get("flow_shift", 1.0)
    if family == "flow":
        cfg.setdefault("prediction_type", "flow_prediction")
        if cfg.get("prediction_type") != "flow_prediction":
            raise ValueError(f"a flow-matching config needs prediction_type='flow_prediction', got {cfg['prediction_type']!r}.")
    foreign = class_name is not None and class_name not in OUR_CLASSES
    if foreign:
        for key in SOURCE_SAMPLER_KEYS - LADDER_KEYS:
            cfg.pop(key, None)
        if family != "discrete":  # DPM/UniPC/DEIS in flow mode keep VP-table keys they do not use
            for key in ("timestep_spacing", "steps_offset", "beta_schedule", "trained_betas", "rescale_betas_zero_snr"):
                cfg.pop(key, None)
        elif cfg.get("sigma_min") is not None or cfg.get("sigma_max") is not None:
            cfg.pop("sigma_min", None)  # Euler's Karras-ladder range: a sampler choice on a VP table
            cfg.pop("sigma_max", None)
    elif "preconditioning" in cfg and "preconditioning" not in accepted:
        # an S2N config converted to a scheduler whose EDM preconditioning comes with the family alone
        implied = "edm" if cfg.get("noise_family") == "edm" else "none"
        if cfg["preconditioning"] not in (None, implied):
            raise ValueError(f"{target} cannot honour preconditioning={cfg['preconditioning']!r} on a {cfg.get('noise_family')!r} model.")
        cfg.pop("preconditioning")
    if family is not None:
        cfg["noise_family"] = family
    kwargs, unknown = {}, []
    for key, value in cfg.items():
        if key in accepted:
            kwargs[key] = value
        elif key not in SOURCE_SAMPLER_KEYS:
            unknown.append(key)
    renamed = [f"{key} is {RENAMED_KEYS[key]} now" for key in unknown if key in RENAMED_KEYS]
    if renamed:
        raise ValueError(f"{target} cannot read the key(s) {sorted(unknown)} of the {class_name or 'given'} config: {'; '.join(renamed)}.")
    if unknown:
        raise ValueError(
            f"{target} cannot read the key(s) {sorted(unknown)} of the {class_name or 'given'} config; it reads "
            f"{sorted(accepted)} and replaces the source sampler's own options {sorted(SOURCE_SAMPLER_KEYS & set(cfg))}."
        )
    return kwargs


def _class_defaults(class_name: str) -> Dict[str, Any]:
    """The ``__init__`` defaults of the diffusers scheduler `class_name` (those its config records when it is built)."""
    import diffusers  # noqa: PLC0415

    parameters = inspect.signature(getattr(diffusers, class_name).__init__).parameters
    return {name: p.default for name, p in parameters.items() if name != "self" and p.default is not inspect.Parameter.empty}


@functools.lru_cache(maxsize=None)
def _class_signatures() -> Dict[str, frozenset]:
    """The ``__init__`` keys of every diffusers scheduler class a family here reads or refuses by name."""
    import diffusers  # noqa: PLC0415

    signatures = {}
    for name in sorted({c for classes in FAMILY_CLASSES.values() for c in classes} | set(REFUSED_CLASSES)):
        cls = getattr(diffusers, name, None)
        if cls is not None:
            signatures[name] = frozenset(inspect.signature(cls.__init__).parameters) - {"self"}
    return signatures


def class_from_keys(cfg: Mapping[str, Any], target: str) -> Optional[str]:
    """The diffusers scheduler class whose in-memory config (no `_class_name`) has exactly these keys; `None` for a
    plain dict of model keys (read as our own keys, where a key of another family is refused by name)."""

    keys = set(cfg)
    # an in-memory config carries exactly its class's keys; any other class-less dict is read as our own keys
    signatures = {**_class_signatures(), **REFUSED_KEY_SETS}
    candidates = [name for name, params in signatures.items() if params == keys]
    families = {next((f for f, classes in FAMILY_CLASSES.items() if name in classes), name) for name in candidates}
    if len(families) > 1:
        raise ValueError(
            f"{target} cannot tell which model family a config without `_class_name` describes (keys fit {candidates}); "
            "pass the scheduler itself (`X.from_config(scheduler.config)` of a loaded pipeline carries its class) or add `_class_name`."
        )
    return candidates[0] if candidates else None


def split_joint_prediction(prediction: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, x̂0) from a joint prediction of shape (B, 2C, H, W); an odd channel count is an error."""
    if prediction.ndim < 2 or prediction.shape[1] % 2 != 0:
        raise ValueError(f"a joint [ε, x0] prediction needs an even number of channels on dim 1, got shape {tuple(prediction.shape)}.")
    eps, x0 = prediction.chunk(2, dim=1)
    return eps, x0


class ModelInterface:
    """One checkpoint family's view of noise: schedule, scaling, time input and output meaning (see the module).

    Args:
        schedule: α, σ and λ over the family's own time variable (τ, σ or t).
        prediction_type: `epsilon`, `sample`, `v_prediction`, `joint` ([ε, x0] on channels), `flow_prediction`.
        time_input: what the model is told: `index` (the table's τ; integers stay integers), `c_noise`
            (¼·ln σ̃, σ̃ = e^{−λ/2}), `flow` (t · `num_train_timesteps`) or `time` (the schedule's time).
        preconditioning: `none`, or `edm` (input c_in·x/α, output c_skip·x/α + c_out·F, Karras et al. 2022).
        sigma_data: EDM's σ_d.
        num_train_timesteps: the `flow` time scale.
        ladder: the family's native ladder settings (see :meth:`native_logsnrs`).
        logsnr_range: (noisiest, cleanest) λ that ladders span; default: the schedule's whole domain. What a model
            can be told is wider (:attr:`told_logsnr_range`): a pipeline's own rungs beyond the ladder are honoured.
        joint_heads: how a `joint` model's two heads are read (see :data:`JOINT_HEADS`).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction_type: str,
        time_input: str,
        preconditioning: str = "none",
        sigma_data: Optional[float] = None,
        num_train_timesteps: int = 1000,
        ladder: Optional[Dict[str, Any]] = None,
        logsnr_range: Optional[Tuple[float, float]] = None,
        joint_heads: str = "velocity",
    ):
        if joint_heads not in JOINT_HEADS:
            raise ValueError(f"joint_heads must be one of {JOINT_HEADS}, got {joint_heads!r}.")
        if preconditioning not in PREDICTIONS:
            raise ValueError(f"preconditioning must be one of {tuple(PREDICTIONS)}, got {preconditioning!r}.")
        if prediction_type not in PREDICTIONS[preconditioning]:
            raise ValueError(
                f"prediction_type must be one of {PREDICTIONS[preconditioning]} with preconditioning={preconditioning!r}, "
                f"got {prediction_type!r}."
            )
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.time_input = time_input
        self.preconditioning = preconditioning
        self.sigma_data = sigma_data
        self.num_train_timesteps = num_train_timesteps
        self.ladder = dict(ladder or {})
        self.joint_heads = joint_heads
        noisy, clean = schedule.logsnr_range if logsnr_range is None else logsnr_range
        self.logsnr_range = (noisy, clean)
        # the levels a model can be told: its schedule's domain (a table's ends, flow's t in [FLOW_T_MIN, 1]); EDM's
        # c_noise takes any σ > 0
        self.told_logsnr_range = (-math.inf, math.inf) if time_input == "c_noise" else schedule.logsnr_range
        if math.isinf(noisy) and preconditioning == "edm":
            raise ValueError("preconditioning='edm' scales by σ, which is infinite at this schedule's noisiest level (pure "
                             "noise, λ = −∞, e.g. rescale_betas_zero_snr=True); use preconditioning='none' there.")
        if math.isinf(noisy) and prediction_type == "epsilon" and preconditioning == "none":
            raise ValueError(
                "this schedule's noisiest level is pure noise (λ = −∞, e.g. rescale_betas_zero_snr=True), where an "
                "epsilon-prediction model carries no x̂0; zero-terminal-SNR models predict v "
                "(prediction_type='v_prediction'), as Lin et al. (2023) require."
            )
        self.state_kind = _state_kind(schedule)
        self.init_noise_sigma = float(self.scale(torch.tensor([noisy], dtype=torch.float64)))

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ModelInterface":
        """The interface described by one of our schedulers' configs (diffusers' key names)."""
        get = lambda key, default=None: config.get(key, default) if config.get(key) is not None else default  # noqa: E731
        family = get("noise_family", "discrete")
        if family not in NOISE_FAMILIES:
            raise ValueError(f"noise_family must be one of {NOISE_FAMILIES}, got {family!r}.")
        num_train = int(get("num_train_timesteps", 1000))
        default_precond = "edm" if family == "edm" else "none"
        preconditioning = get("preconditioning", default_precond)
        prediction_type = get("prediction_type", DEFAULT_PREDICTION.get(family, "epsilon"))
        sigma_data = get("sigma_data", 0.5 if preconditioning == "edm" else None)
        if sigma_data is not None and not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data!r}.")
        if sigma_data is not None and preconditioning != "edm" and family != "edm":
            raise ValueError(f"sigma_data={sigma_data!r} applies to noise_family ('edm',) or preconditioning='edm', not to {family!r}.")
        ladder: Dict[str, Any] = {}
        logsnr_range = None
        _refuse_other_family_keys(config, family)
        if family == "discrete":
            if config.get("trained_betas") is not None:
                betas = torch.as_tensor(np.asarray(config["trained_betas"]), dtype=torch.float64)
                if betas.numel() != num_train:
                    raise ValueError(f"trained_betas has {betas.numel()} entries but num_train_timesteps = {num_train}.")
            else:
                name = get("beta_schedule", "linear")
                betas = get_betas(name, num_train, **family_params(name, get("beta_start", 1e-4), get("beta_end", 0.02), get("schedule_params")))
            schedule: NoiseSchedule = DiscreteSchedule.from_betas(betas, rescale_zero_terminal_snr=bool(get("rescale_betas_zero_snr", False)))
            ladder.update(timestep_spacing=get("timestep_spacing", "leading"), steps_offset=int(get("steps_offset", 0)))
        elif family == "edm":
            sigma_min, sigma_max = float(get("sigma_min", 0.002)), float(get("sigma_max", 80.0))
            schedule = get_schedule("edm", sigma_min=sigma_min, sigma_max=sigma_max)
            ladder.update(sigma_schedule=get("sigma_schedule", "karras"), rho=float(get("rho", 7.0)))
        elif family == "flow":
            ladder.update(
                shift=float(get("shift", 1.0)), use_dynamic_shifting=bool(get("use_dynamic_shifting", False)),
                time_shift_type=get("time_shift_type", "exponential"), shift_terminal=get("shift_terminal"),
            )
            if ladder["time_shift_type"] not in ("exponential", "linear"):
                raise ValueError(f"time_shift_type must be 'exponential' or 'linear', got {ladder['time_shift_type']!r}.")
            if not ladder["shift"] > 0:
                raise ValueError(f"shift must be > 0, got {ladder['shift']!r}.")
            if ladder["shift_terminal"] is not None and not 0 < ladder["shift_terminal"] < 1:
                raise ValueError(f"shift_terminal must lie in (0, 1), got {ladder['shift_terminal']!r}.")
            # Where our own ladders end: FlowMatchEulerDiscreteScheduler's default last rung (static shift).
            t_clean = 1.0 / num_train
            if not ladder["use_dynamic_shifting"]:
                t_clean = _static_shift(_static_shift(t_clean, ladder["shift"]), ladder["shift"])
            # The model takes any t in (0, 1]; ladders span (−∞, λ(t_clean)) unless a pipeline passes its own.
            schedule = flow_matching_schedule(FLOW_T_MIN)
            logsnr_range = (-math.inf, float(schedule.logsnr(t_clean)))
        else:
            params = dict(get("schedule_params", {}))
            for key in ("sigma_min", "sigma_max"):
                if config.get(key) is not None:
                    params[key] = float(config[key])
            schedule = get_schedule(family, **params)
        time_input = {"discrete": "index", "flow": "flow"}.get(family, "time")
        if preconditioning == "edm":
            time_input = "c_noise"
        return cls(schedule, prediction_type, time_input, preconditioning, sigma_data, num_train, ladder, logsnr_range,
                   get("joint_heads", "velocity"))

    # ------------------------------------------------------------------ noise levels

    @property
    def family_time_is_index(self) -> bool:
        return isinstance(self.schedule, DiscreteSchedule)

    def times(self, logsnr: torch.Tensor) -> torch.Tensor:
        """The schedule's own time at λ (float64)."""
        return self.schedule.t_from_logsnr(logsnr)

    def alpha_sigma(self, logsnr: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The family's (a, b) of x = a·x0 + b·ε at λ (float64), in closed form for every λ in [−∞, +∞]:
        a² + b² = 1 (VP), a = 1 (EDM, VE) or a + b = 1 (flow matching); λ = +∞ is clean data (1, 0)."""
        lam = torch.as_tensor(logsnr, dtype=torch.float64)
        if self.state_kind == "vp":
            return torch.exp(0.5 * torch.nn.functional.logsigmoid(lam)), torch.exp(0.5 * torch.nn.functional.logsigmoid(-lam))
        ratio = torch.exp(-0.5 * lam)  # b / a
        if self.state_kind == "ve":
            return torch.ones_like(lam), ratio
        a = torch.sigmoid(0.5 * lam)
        return a, torch.where(torch.isneginf(lam), torch.ones_like(lam), a * ratio)

    def scale(self, logsnr: torch.Tensor) -> torch.Tensor:
        """√(a² + b²): the family state is this times the variance-preserving state (float64)."""
        a, b = self.alpha_sigma(logsnr)
        return torch.hypot(a, b)

    def model_timesteps(self, logsnr: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(what the model is told, the λ of exactly that value) at levels λ.

        The told value is float32 (or int64 for integer table indices); the returned λ is that value's own
        level in float64, so an update can use exactly the noise level the model sees.
        """
        lam = torch.as_tensor(logsnr, dtype=torch.float64).flatten()
        if self.time_input == "c_noise":
            told = (-0.125 * lam).to(torch.float32)  # ¼·ln σ̃
        else:
            t = self.times(lam)
            if self.time_input == "index" and bool((t == t.round()).all()):
                told = t.round().to(torch.long)
            elif self.time_input == "flow":
                told = (t * self.num_train_timesteps).to(torch.float32)
            else:
                told = t.to(torch.float32)
        return told, self.logsnr_from_model_timesteps(told)

    def logsnr_from_model_timesteps(self, timesteps: Union[torch.Tensor, float, Sequence[float]]) -> torch.Tensor:
        """The level λ (float64) of model timesteps, the inverse of :meth:`model_timesteps`."""
        told = torch.as_tensor(timesteps).detach().to("cpu", torch.float64).flatten()
        if self.time_input == "c_noise":
            lam = -8.0 * told
            lo, hi = self.logsnr_range  # float32 c_noise rounds the ends just outside: snap them back
            return torch.where((lam - lo).abs() <= 1e-5 * (1 + abs(lo)), torch.full_like(lam, lo),
                               torch.where((lam - hi).abs() <= 1e-5 * (1 + abs(hi)), torch.full_like(lam, hi), lam))
        t = told / self.num_train_timesteps if self.time_input == "flow" else told
        if not self.family_time_is_index:
            t = self._snap_into_domain(t)
        return self.schedule.logsnr(t)

    def _snap_into_domain(self, t: torch.Tensor) -> torch.Tensor:
        lo, hi = self.schedule.t_min, self.schedule.t_max
        near = lambda x, end: (x - end).abs() <= 1e-6 * max(1.0, abs(end))  # noqa: E731
        return torch.where(near(t, lo), torch.full_like(t, lo), torch.where(near(t, hi), torch.full_like(t, hi), t))

    # ------------------------------------------------------------------ the model boundary

    def _edm_coefficients(self, lam: float) -> Tuple[float, float, float]:
        """EDM's c_in, c_skip, c_out at σ̃ = e^{−λ/2} (signs as diffusers' EDM schedulers)."""
        sigma, sd = math.exp(-0.5 * lam), self.sigma_data
        norm = math.hypot(sigma, sd)
        c_out = sigma * sd / norm
        return 1.0 / norm, sd**2 / norm**2, (c_out if self.prediction_type == "epsilon" else -c_out)

    def scale_model_input(self, sample: torch.Tensor, logsnr: float) -> torch.Tensor:
        """What the model sees of the family state `sample` at level λ."""
        if self.preconditioning == "none":
            return sample
        alpha = float(self.alpha_sigma(torch.tensor([logsnr], dtype=torch.float64))[0])
        return sample * (self._edm_coefficients(logsnr)[0] / alpha)

    def unscale_model_input(self, model_input: torch.Tensor, logsnr: float) -> torch.Tensor:
        """The family state from what the model sees: the inverse of :meth:`scale_model_input`."""
        if self.preconditioning == "none":
            return model_input
        alpha = float(self.alpha_sigma(torch.tensor([logsnr], dtype=torch.float64))[0])
        return model_input * (alpha / self._edm_coefficients(logsnr)[0])

    def output_channels(self, sample_channels: int) -> int:
        return 2 * sample_channels if self.prediction_type == "joint" else sample_channels

    def predictions(
        self, model_output: torch.Tensor, sample: torch.Tensor, logsnr: float, clip_range: Optional[float] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(x̂0, ε̂) from a model output at level λ for the family state `sample` (in the dtype of `sample`).

        A joint model's heads are read as :attr:`joint_heads` says. With `clip_range`, x̂0 is clamped to ±clip_range
        and ε̂ re-derived from the clamp (ε̂ = (x − a·x̂0)/b, the probability flow of the clamped denoiser), except
        that a joint model read with ``joint_heads="separate"`` keeps its ε head.
        """
        a, b = (float(v) for v in self.alpha_sigma(torch.tensor([logsnr], dtype=torch.float64)))
        x, out, kind = sample, model_output, self.prediction_type
        if kind == "joint" and self.joint_heads == "velocity":
            eps_head, x0_head = split_joint_prediction(out)
            out, kind = a * eps_head - b * x0_head, "v_prediction"  # both heads as one v̂, read as a v model's
        if self.preconditioning == "edm":
            _, c_skip, c_out = self._edm_coefficients(logsnr)
            x0, eps = c_skip * (x / a) + c_out * out, None
        elif kind == "joint":
            eps, x0 = split_joint_prediction(out)
        elif kind == "epsilon":
            eps = out
            x0 = (x - b * eps) / a
        elif kind == "sample":
            x0, eps = out, None
        elif kind == "v_prediction":  # v = a·ε − b·x0
            norm = a * a + b * b
            x0, eps = (a * x - b * out) / norm, (b * x + a * out) / norm
        else:  # flow_prediction, v = ε − x0
            x0, eps = (x - b * out) / (a + b), (x + a * out) / (a + b)
        if clip_range is not None:
            x0 = x0.clamp(-clip_range, clip_range)
            if kind != "joint":
                eps = None
        if eps is None:
            eps = (x - a * x0) / b
        return x0, eps

    def model_output(self, x0: torch.Tensor, eps: torch.Tensor, sample: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        """The output an exact model of this family gives for the pair (x0, ε) at levels λ (one per sample)."""
        a, b = (v.to(x0.device, x0.dtype).view(-1, *([1] * (x0.ndim - 1))) for v in self.alpha_sigma(logsnr))
        kind = self.prediction_type
        if self.preconditioning == "edm":
            coeffs = [self._edm_coefficients(float(lam)) for lam in torch.as_tensor(logsnr, dtype=torch.float64).flatten()]
            c_skip = torch.tensor([c[1] for c in coeffs], dtype=x0.dtype, device=x0.device).view_as(a)
            c_out = torch.tensor([c[2] for c in coeffs], dtype=x0.dtype, device=x0.device).view_as(a)
            return (x0 - c_skip * sample / a) / c_out
        if kind == "epsilon":
            return eps
        if kind == "sample":
            return x0
        if kind == "v_prediction":
            return a * eps - b * x0
        if kind == "flow_prediction":
            return eps - x0
        return torch.cat([eps, x0], dim=1)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """The forward marginal a·x0 + b·ε at model timesteps (one per sample, or one for all)."""
        a, b = self._pair_coefficients(original_samples, noise, timesteps)
        return a * original_samples + b * noise

    def velocity(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """v = a·ε − b·x0 at model timesteps: the target of a `v_prediction` model without preconditioning, as
        :meth:`model_output` reads one (Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion
        Models", on VP tables)."""
        if self.preconditioning == "edm":
            raise ValueError("with preconditioning='edm' a v_prediction model's output is EDM's F-network target "
                             "(c_out-scaled), not a·ε − b·x0; get_velocity is defined for preconditioning='none'.")
        a, b = self._pair_coefficients(original_samples, noise, timesteps)
        return a * noise - b * original_samples

    def _pair_coefficients(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> Tuple[torch.Tensor, torch.Tensor]:
        """(a, b) at model timesteps, shaped to broadcast over (x0, ε) samples in their dtype and device."""
        if noise.shape != original_samples.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} differs from the samples' {tuple(original_samples.shape)}.")
        a, b = self.alpha_sigma(self.logsnr_from_model_timesteps(timesteps))
        shape = (-1,) + (1,) * (original_samples.ndim - 1)
        return tuple(v.to(original_samples.device, original_samples.dtype).view(shape) for v in (a, b))

    # ------------------------------------------------------------------ native ladders

    def spaced_logsnrs(
        self,
        num_inference_steps: int,
        spacing: str,
        rho: float = 7.0,
        place: Optional[Callable[[int, float, float], torch.Tensor]] = None,
        logsnr_range: Optional[Tuple[float, float]] = None,
    ) -> torch.Tensor:
        """`num_inference_steps` rungs (λ, noisiest first) from `logsnr_range` (default: the ladder range): uniform in
        λ (`logsnr`), Karras et al. (2022) eq. 5 in σ̃ = e^{−λ/2} with exponent `rho` (`karras`), uniform in the
        schedule's own time (`time`), or `place(n, λ_noisy, λ_clean)` (`information`: rungs from a measured mmse
        curve). A pure-noise end (λ = −∞) is the first rung and the others are spaced from the next level."""
        n = num_inference_steps
        noisy, clean = self.logsnr_range if logsnr_range is None else logsnr_range
        if spacing == "time":
            ends = torch.tensor([noisy, clean], dtype=torch.float64).clamp(*self.logsnr_range)
            t_noisy, t_clean = (float(v) for v in self.times(ends))
            lam = self.schedule.logsnr(torch.linspace(t_noisy, t_clean, n, dtype=torch.float64))
            lam[0] = noisy
            if n > 1:  # one rung is the noisiest level, where sampling starts
                lam[-1] = clean
            return lam
        pure_noise = math.isinf(noisy)
        m = n - 1 if pure_noise else n
        if m < 1:
            return torch.tensor([noisy], dtype=torch.float64)
        start = finite_noisy_logsnr(self) if pure_noise else noisy
        ramp = torch.linspace(0.0, 1.0, m, dtype=torch.float64)
        if spacing == "logsnr":
            lam = start + ramp * (clean - start)
        elif spacing == "karras":
            s_max, s_min = math.exp(-start / 2) ** (1 / rho), math.exp(-clean / 2) ** (1 / rho)
            lam = -2.0 * rho * torch.log(s_max + ramp * (s_min - s_max))
            lam[0] = start
            if m > 1:
                lam[-1] = clean
        elif spacing == "information" and place is not None:
            # from pure noise the first finite rung is placed too, not pinned at the noisiest finite level, where the
            # mmse is the data variance and a call learns nothing
            lam = place(m + 1, start, clean)[1:] if pure_noise else place(m, start, clean)
        else:
            raise ValueError(f"spacing must be 'logsnr', 'karras', 'time' or 'information' (with `place`), got {spacing!r}.")
        return torch.cat([torch.tensor([noisy], dtype=torch.float64), lam]) if pure_noise else lam

    def native_logsnrs(
        self,
        num_inference_steps: Optional[int] = None,
        timesteps: Optional[Sequence[float]] = None,
        sigmas: Optional[Sequence[float]] = None,
        mu: Optional[float] = None,
    ) -> torch.Tensor:
        """The rungs (λ, noisiest first, float64) of the family's own diffusers scheduler.

        `discrete`: `timestep_spacing`/`steps_offset` over the table (DDIM's ladder), or explicit integer
        `timesteps`, or Euler-style `sigmas` σ̃ = √((1 − ᾱ)/ᾱ). `edm`: Karras (`rho`) or exponential σ from
        σ_max to σ_min, or explicit `sigmas`. Explicit σ are the levels of the calls; a last σ = 0 (Euler's lists,
        diffusers' ``AysSchedules``) is the clean end, which every ladder here reaches after its calls, and σ within
        1e-4 (relative) beyond the table's ends, as printed lists round them, are taken as the ends.
        `flow`: FlowMatchEulerDiscreteScheduler's ladder, with the pipeline's `sigmas` (in (0, 1]) and `mu` when
        given: t shifted statically (`shift`) or dynamically (`mu`), then stretched to `shift_terminal` (also for
        DPM-Solver/UniPC configs with `use_flow_sigmas`, whose own ladders differ); explicit `timesteps` are told as
        given (t = timestep / num_train_timesteps).
        """
        flow = self.time_input == "flow"
        if sigmas is not None and not flow and len(sigmas) > 1 and float(sigmas[-1]) == 0.0:
            sigmas = list(sigmas)[:-1]  # Euler's lists end at σ = 0 (diffusers' AysSchedules): the clean end, always reached here
        given = [name for name, value in (("timesteps", timesteps), ("sigmas", sigmas)) if value is not None]
        if len(given) > 1:
            raise ValueError("pass at most one of `timesteps` and `sigmas`.")
        if not given:
            if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
                raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
        elif num_inference_steps is not None and num_inference_steps != len(timesteps if sigmas is None else sigmas):
            raise ValueError(f"num_inference_steps={num_inference_steps} disagrees with the {len(timesteps if sigmas is None else sigmas)} given {given[0]}.")
        if mu is not None and not flow:
            raise ValueError("`mu` (flow-matching's dynamic shift) applies only to a flow-matching model.")
        if flow and self.ladder["use_dynamic_shifting"] and mu is None and timesteps is None:
            raise ValueError("this flow-matching config has use_dynamic_shifting=True: pass `mu` to set_timesteps.")
        if timesteps is not None:
            if mu is not None:
                raise ValueError("`mu` shifts sigmas, not explicit `timesteps`: pass `sigmas` with `mu`, or `timesteps` alone.")
            told = torch.as_tensor(np.asarray(timesteps, dtype=np.float64))
            return _check_descending_noise(self.logsnr_from_model_timesteps(told), "timesteps")
        n = num_inference_steps if sigmas is None else len(sigmas)
        if flow:
            if sigmas is None:
                N = self.num_train_timesteps
                t_end = 1.0 / N if self.ladder["use_dynamic_shifting"] else _static_shift(1.0 / N, self.ladder["shift"])
                t = np.linspace(1.0, t_end, n)
            else:
                t = np.asarray(sigmas, dtype=np.float64)
                if not bool(((t > 0.0) & (t <= 1.0)).all()):
                    raise ValueError(f"flow-matching `sigmas` must lie in (0, 1] (1 is pure noise; the clean end is appended "
                                     f"by the scheduler), got {t.min():.6g} to {t.max():.6g}.")
            if self.ladder["use_dynamic_shifting"]:
                e = math.exp(mu) if self.ladder["time_shift_type"] == "exponential" else mu
                t = e / (e + (1.0 / t - 1.0))
            else:
                t = _static_shift(t, self.ladder["shift"])
            if self.ladder["shift_terminal"]:
                t = 1.0 - (1.0 - t) / ((1.0 - t[-1]) / (1.0 - self.ladder["shift_terminal"]))
            t = torch.as_tensor(t, dtype=torch.float64).clamp(max=1.0)  # the shifts' round-off above 1
            return _check_descending_noise(self.schedule.logsnr(t), "sigmas")
        if sigmas is not None:
            s = torch.as_tensor(np.asarray(sigmas, dtype=np.float64))
            if bool((s <= 0).any()):
                raise ValueError("`sigmas` must be > 0 but for a last 0 (the clean end, appended by the scheduler).")
            logsnr = -2.0 * torch.log(s)
            # printed σ lists round the table's ends (AysSchedules' 14.615 for SD's 14.6146): snap those to the ends
            noisiest, cleanest = self.logsnr_range
            logsnr = torch.where((logsnr < noisiest) & (logsnr >= noisiest - _PRINTED_ROUNDING), torch.full_like(logsnr, noisiest), logsnr)
            logsnr = torch.where((logsnr > cleanest) & (logsnr <= cleanest + _PRINTED_ROUNDING), torch.full_like(logsnr, cleanest), logsnr)
            return _check_descending_noise(logsnr, "sigmas")
        if self.family_time_is_index:
            T = self.schedule.num_train_timesteps
            if n > T:
                raise ValueError(f"num_inference_steps must be an integer in [1, {T}] (the table's levels), got {n!r}.")
            return spaced_table_logsnrs(self.schedule, n, self.ladder["timestep_spacing"], self.ladder["steps_offset"])
        # EDM: Karras or exponential σ from σ_max to σ_min (EDMEulerScheduler, EDMDPMSolverMultistepScheduler)
        return self.spaced_logsnrs(n, "logsnr" if self.ladder.get("sigma_schedule") == "exponential" else "karras", self.ladder.get("rho", 7.0))


def _state_kind(schedule: NoiseSchedule) -> str:
    """Which scale relation the schedule's (α, σ) keep: `vp` (α² + σ² = 1), `ve` (α = 1) or `flow` (α + σ = 1)."""
    t = torch.linspace(schedule.t_min, schedule.t_max, 7, dtype=torch.float64)[1:-1]
    a, b = schedule.alpha(t), schedule.sigma(t)
    for kind, residual in (("vp", a**2 + b**2 - 1), ("ve", a - 1), ("flow", a + b - 1)):
        if float(residual.abs().max()) < 1e-9:
            return kind
    raise ValueError(f"{schedule!r} keeps none of α² + σ² = 1, α = 1, α + σ = 1; the model interface needs one.")


def finite_noisy_logsnr(interface: "ModelInterface") -> float:
    """The noisiest finite level: the ladder's own noisy end, or when that is pure noise (λ = −∞) the next level
    a model is trained on (the table's τ = T − 2; flow's t = 1 − 1/num_train_timesteps)."""
    noisy = interface.logsnr_range[0]
    if math.isfinite(noisy):
        return noisy
    schedule = interface.schedule
    step = 1.0 if isinstance(schedule, DiscreteSchedule) else 1.0 / interface.num_train_timesteps
    return float(schedule.logsnr(schedule.t_max - step))


def spaced_table_logsnrs(schedule: DiscreteSchedule, num_steps: int, spacing: str, steps_offset: int) -> torch.Tensor:
    """The λ (noisiest first) of diffusers' `timestep_spacing` rungs on a β table; an offset past the table is an error."""
    T = schedule.num_train_timesteps
    idx = spaced_indices(spacing, T, num_steps, steps_offset)
    if idx[0] > T - 1:
        raise ValueError(f"steps_offset={steps_offset} pushes the first timestep to {idx[0]} > {T - 1}.")
    return schedule.logsnr(torch.from_numpy(idx).to(torch.float64))


def spaced_indices(spacing: str, num_train: int, num_steps: int, steps_offset: int) -> np.ndarray:
    """diffusers' three timestep spacings (Lin et al. 2023, Table 2) as descending 0-based indices."""
    if spacing == "linspace":
        idx = np.linspace(0, num_train - 1, num_steps).round()[::-1].astype(np.int64)
    elif spacing == "leading":
        idx = (np.arange(0, num_steps) * (num_train // num_steps)).round()[::-1].astype(np.int64) + steps_offset
    elif spacing == "trailing":
        idx = np.round(np.arange(num_train, 0, -num_train / num_steps)).astype(np.int64) - 1
    else:
        raise ValueError(f"timestep_spacing must be 'leading', 'trailing' or 'linspace' here, got {spacing!r}.")
    return idx.copy()


def _static_shift(t, shift: float):
    return shift * t / (1 + (shift - 1) * t)


# Slack in λ for explicit σ lists at the table's ends: 2e-4 in λ is 1e-4 relative in σ, five significant digits.
_PRINTED_ROUNDING = 2e-4


def _check_descending_noise(logsnr: torch.Tensor, what: str) -> torch.Tensor:
    if len(logsnr) == 0 or bool((logsnr[1:] <= logsnr[:-1]).any()):
        raise ValueError(f"`{what}` must be strictly descending noise levels (from noisy to clean).")
    return logsnr


# Keys that belong to one family only; set on another family they would be ignored, so they are refused.
_FAMILY_ONLY_KEYS: Dict[str, Tuple[str, ...]] = {
    "rescale_betas_zero_snr": ("discrete",),
    "trained_betas": ("discrete",),
    "sigma_schedule": ("edm",),
    "shift": ("flow",),
    "use_dynamic_shifting": ("flow",),
    "shift_terminal": ("flow",),
    "sigma_min": ("edm", "ve"),
    "sigma_max": ("edm", "ve"),
    "beta_schedule": ("discrete",),
    "schedule_params": ("discrete",) + tuple(name for name in CONTINUOUS_SCHEDULES if name != "edm"),  # EDM: sigma_min/max
}
_KEY_DEFAULTS = {"rescale_betas_zero_snr": False, "shift": 1.0, "use_dynamic_shifting": False, "beta_schedule": "linear", "schedule_params": {}}


def _refuse_other_family_keys(config: Mapping[str, Any], family: str) -> None:
    for key, families in _FAMILY_ONLY_KEYS.items():
        value = config.get(key)
        if value is not None and value != _KEY_DEFAULTS.get(key) and family not in families:
            raise ValueError(f"{key}={value!r} applies to noise_family {families}, not to {family!r}.")
