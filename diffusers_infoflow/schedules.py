"""The noise-schedule core: one object per schedule giving α, σ, log-SNR, entropy and the inverse.

Every scheduler and metric in this package reads noise levels from here. Conventions:

* Forward marginal ``q(x_t | x0) = N(α_t x0, σ_t² I)``; log-SNR ``λ_t = log(α_t² / σ_t²)``, decreasing in t.
* Discrete DDPM tables (:class:`DiscreteSchedule`) use diffusers' timestep convention: the model timestep
  ``k ∈ [0, T-1]`` reads ``alphas_cumprod[k]``, which is the papers' forward step ``t = k + 1``. Between
  integer timesteps λ is interpolated linearly (as DPM-Solver's ``NoiseScheduleVP`` does), so fractional
  timesteps are well defined and the inverse λ → timestep is exact on that interpolant.
* Continuous families (:class:`ContinuousSchedule`) use their own time variable (``t ∈ [0, 1]``, or σ itself
  for EDM) and closed forms from seed 001's Table 1.

All schedule maths runs in float64; results are cast by the callers to the dtype and device of their inputs.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch


__all__ = [
    "DISCRETE_SCHEDULES",
    "CONTINUOUS_SCHEDULES",
    "DIFFUSERS_BETA_SCHEDULE_ALIASES",
    "NoiseSchedule",
    "DiscreteSchedule",
    "ContinuousSchedule",
    "family_params",
    "get_betas",
    "get_schedule",
    "flow_matching_schedule",
    "gaussian_entropy_per_dim",
]

# Cap on β for schedules whose last ᾱ would reach 0 (cosine, trig, jsd): iDDPM's 0.999.
MAX_BETA = 0.999

# diffusers' own `beta_schedule` names that mean exactly one of ours (same formula, checked in the tests).
DIFFUSERS_BETA_SCHEDULE_ALIASES: Dict[str, str] = {
    "scaled_linear": "quadratic",
    "squaredcos_cap_v2": "cosine",
}

ArrayLike = Union[torch.Tensor, float, int, Sequence[float]]


def _as_float64(x: ArrayLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64)
    return torch.as_tensor(x, dtype=torch.float64)


def _check_unit_interval(name: str, value: float) -> None:
    if not (0.0 < float(value) < 1.0):
        raise ValueError(f"`{name}` must lie strictly between 0 and 1, got {value!r}.")


# --------------------------------------------------------------------------------------------------
# Discrete β tables (seed 000 Table 1, seed 003 §5.1, seed 004 §3.1)
# --------------------------------------------------------------------------------------------------


def _linear(T: int, beta_start: float, beta_end: float) -> torch.Tensor:
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def _quadratic(T: int, beta_start: float, beta_end: float) -> torch.Tensor:
    return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2


def _sigmoid(T: int, beta_start: float, beta_end: float) -> torch.Tensor:
    return torch.sigmoid(torch.linspace(-6.0, 6.0, T, dtype=torch.float64)) * (beta_end - beta_start) + beta_start


def _betas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """β_t = 1 − ᾱ_t/ᾱ_{t−1} for a table ᾱ_0 = 1, ᾱ_1, ..., ᾱ_T, capped at MAX_BETA."""
    return (1.0 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(max=MAX_BETA)


def _cosine(T: int, s: float) -> torch.Tensor:
    if not s >= 0:
        raise ValueError(f"cosine offset `s` must be >= 0, got {s!r}.")
    u = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return _betas_from_alphas_cumprod(f / f[0])


def _power(T: int, beta_start: float, beta_end: float, p: float) -> torch.Tensor:
    if not p > 0:
        raise ValueError(f"power schedule exponent `p` must be > 0, got {p!r}.")
    u = torch.linspace(0.0, 1.0, T, dtype=torch.float64)
    return beta_start + (beta_end - beta_start) * u**p


def _wave(T: int, beta_start: float, beta_end: float, amplitude: float, cycles: float) -> torch.Tensor:
    # Seed 003's "sine wave" schedule has no formula; ours is the linear ramp modulated by a sine,
    #   β(u) = β_lin(u) · (1 + A·sin(2π·cycles·u)),  u ∈ [0, 1],
    # which stays positive for 0 <= A < 1 and keeps ᾱ strictly decreasing.
    if not 0.0 <= amplitude < 1.0:
        raise ValueError(f"wave schedule `amplitude` must lie in [0, 1), got {amplitude!r}.")
    if not cycles > 0:
        raise ValueError(f"wave schedule `cycles` must be > 0, got {cycles!r}.")
    u = torch.linspace(0.0, 1.0, T, dtype=torch.float64)
    return _linear(T, beta_start, beta_end) * (1.0 + amplitude * torch.sin(2 * math.pi * cycles * u))


def _trig(T: int) -> torch.Tensor:
    # Seed 004: η_t = (t/T)·π/2 and ᾱ_t = cos² η_t; ᾱ_T = 0 exactly, so the table caps β at MAX_BETA.
    eta = torch.arange(T + 1, dtype=torch.float64) / T * (math.pi / 2)
    return _betas_from_alphas_cumprod(torch.cos(eta) ** 2)


def _jsd(T: int) -> torch.Tensor:
    # β_t = 1/(T − t + 1), i.e. ᾱ_t = 1 − t/T; the last β is 1, capped like the cosine family.
    t = torch.arange(1, T + 1, dtype=torch.float64)
    return (1.0 / (T - t + 1)).clamp(max=MAX_BETA)


# name -> (builder, the parameters it takes with their defaults)
_DISCRETE_BUILDERS: Dict[str, Tuple[Callable[..., torch.Tensor], Dict[str, float]]] = {
    "linear": (_linear, {"beta_start": 1e-4, "beta_end": 0.02}),
    "quadratic": (_quadratic, {"beta_start": 1e-4, "beta_end": 0.02}),
    "sigmoid": (_sigmoid, {"beta_start": 1e-4, "beta_end": 0.02}),
    "cosine": (_cosine, {"s": 0.008}),
    "power": (_power, {"beta_start": 1e-4, "beta_end": 0.02, "p": 2.0}),
    "wave": (_wave, {"beta_start": 1e-4, "beta_end": 0.02, "amplitude": 0.5, "cycles": 4.0}),
    "trig": (_trig, {}),
    "jsd": (_jsd, {}),
}
DISCRETE_SCHEDULES: Tuple[str, ...] = tuple(_DISCRETE_BUILDERS)


def _canonical_discrete_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"schedule name must be a string, got {type(name).__name__}.")
    canonical = DIFFUSERS_BETA_SCHEDULE_ALIASES.get(name, name)
    if canonical not in _DISCRETE_BUILDERS:
        allowed = ", ".join(DISCRETE_SCHEDULES + tuple(DIFFUSERS_BETA_SCHEDULE_ALIASES))
        raise ValueError(f"Unknown beta schedule {name!r}; allowed: {allowed}.")
    return canonical


def family_params(name: str, beta_start: float, beta_end: float, extra: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """The keyword arguments of :func:`get_betas` for a family: the β range where the family takes one, plus extras."""
    canonical = DIFFUSERS_BETA_SCHEDULE_ALIASES.get(name, name)
    params: Dict[str, float] = {}
    if canonical in ("linear", "quadratic", "sigmoid", "power", "wave"):
        params.update(beta_start=beta_start, beta_end=beta_end)
    params.update(extra or {})
    return params


def get_betas(name: str, num_train_timesteps: int, **params: float) -> torch.Tensor:
    """β_1..β_T of a named discrete schedule, float64, shape ``(num_train_timesteps,)``.

    Args:
        name: one of ``linear, quadratic, sigmoid, cosine, power, wave, trig, jsd`` or diffusers' aliases
            ``scaled_linear`` (= quadratic) and ``squaredcos_cap_v2`` (= cosine).
        num_train_timesteps: T, at least 2.
        **params: the family's parameters: ``beta_start``/``beta_end`` (linear, quadratic, sigmoid, power,
            wave), ``s`` (cosine), ``p`` (power; seed 003 uses 1.5, 2 and 10), ``amplitude``/``cycles``
            (wave). Unknown parameters are an error, never ignored.
    """
    canonical = _canonical_discrete_name(name)
    if isinstance(num_train_timesteps, bool) or not isinstance(num_train_timesteps, int) or num_train_timesteps < 2:
        raise ValueError(f"`num_train_timesteps` must be an integer >= 2, got {num_train_timesteps!r}.")
    builder, defaults = _DISCRETE_BUILDERS[canonical]
    unknown = set(params) - set(defaults)
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise ValueError(f"Schedule {name!r} takes no parameter(s) {sorted(unknown)}; allowed: {allowed}.")
    kwargs = {**defaults, **params}
    for key in ("beta_start", "beta_end"):
        if key in kwargs:
            _check_unit_interval(key, kwargs[key])
    betas = builder(num_train_timesteps, **kwargs)
    if not bool(((betas > 0) & (betas < 1)).all()):
        bad = betas[~((betas > 0) & (betas < 1))][0].item()
        raise ValueError(f"Schedule {name!r} with {kwargs} gives β = {bad!r}; every β must lie in (0, 1).")
    return betas


# --------------------------------------------------------------------------------------------------
# Schedule objects
# --------------------------------------------------------------------------------------------------


def gaussian_entropy_per_dim(sigma: torch.Tensor) -> torch.Tensor:
    """Differential entropy (nats) of one coordinate of ``N(·, σ²)``: ½·ln(2πe·σ²)."""
    return 0.5 * torch.log(2 * math.pi * math.e * sigma**2)


class NoiseSchedule:
    """α(t), σ(t), λ(t) and the inverse t(λ) of one noise schedule, in float64.

    Subclasses implement :meth:`logsnr`, :meth:`log_alpha` and :meth:`t_from_logsnr` over the domain
    ``[t_min, t_max]`` (``t_max`` is the noisiest end).
    """

    t_min: float
    t_max: float

    def log_alpha(self, t: ArrayLike) -> torch.Tensor:
        raise NotImplementedError

    def logsnr(self, t: ArrayLike) -> torch.Tensor:
        raise NotImplementedError

    def t_from_logsnr(self, logsnr: ArrayLike) -> torch.Tensor:
        raise NotImplementedError

    def alpha(self, t: ArrayLike) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: ArrayLike) -> torch.Tensor:
        # σ = α·exp(−λ/2); written this way so VE/EDM (α = 1) and VP share one formula.
        return torch.exp(self.log_alpha(t) - 0.5 * self.logsnr(t))

    def marginal(self, x0: torch.Tensor, noise: torch.Tensor, t: float) -> torch.Tensor:
        """The forward marginal α_t·x0 + σ_t·ε at one time t of this schedule, in the dtype of `x0`."""
        if noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} differs from the samples' {tuple(x0.shape)}.")
        level = torch.tensor([float(t)], dtype=torch.float64)
        return float(self.alpha(level)) * x0 + float(self.sigma(level)) * noise.to(device=x0.device, dtype=x0.dtype)

    def entropy(self, t: ArrayLike, dim: int) -> torch.Tensor:
        """H(x_t | x0) = (n/2)·ln(2πe·σ_t²) in nats for data of ``dim`` = n coordinates (seed 000 eq. 5)."""
        return dim * gaussian_entropy_per_dim(self.sigma(t))

    @property
    def logsnr_range(self) -> Tuple[float, float]:
        """(λ at t_max, λ at t_min): the noisiest and cleanest log-SNR the schedule covers."""
        return float(self.logsnr(self.t_max)), float(self.logsnr(self.t_min))

    def _check_t(self, t: torch.Tensor) -> torch.Tensor:
        if torch.isnan(t).any():
            raise ValueError("timestep contains NaN.")
        lo, hi = self.t_min, self.t_max
        bad = (t < lo - _RANGE_TOLERANCE * max(1.0, abs(lo))) | (t > hi + _RANGE_TOLERANCE * max(1.0, abs(hi)))
        if bad.any():
            raise ValueError(f"timestep {t[bad].flatten()[0].item()!r} is outside the schedule's range [{lo}, {hi}].")
        return t.clamp(lo, hi)

    def _check_logsnr(self, lam: torch.Tensor) -> torch.Tensor:
        if torch.isnan(lam).any():
            raise ValueError("log-SNR contains NaN.")
        lo, hi = self.logsnr_range
        bad = (lam < lo - _RANGE_TOLERANCE * max(1.0, abs(lo))) | (lam > hi + _RANGE_TOLERANCE * max(1.0, abs(hi)))
        if bad.any():
            raise ValueError(
                f"log-SNR {lam[bad].flatten()[0].item()!r} is outside this schedule's range [{lo:.6g}, {hi:.6g}]."
            )
        return lam.clamp(lo, hi)


# Relative slack of the range checks: a few float32 ulps, so that an end point that went through float32
# (a pipeline's timesteps) or through our own inverse is accepted and clamped; anything further out is an error.
_RANGE_TOLERANCE = 4 * torch.finfo(torch.float32).eps


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation (like numpy.interp) for increasing ``xp``; x must lie in [xp[0], xp[-1]]."""
    idx = torch.searchsorted(xp, x.contiguous(), right=True).clamp(1, len(xp) - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    f0, f1 = fp[idx - 1], fp[idx]
    w = (x - x0) / (x1 - x0)
    return f0 + w * (f1 - f0)


class DiscreteSchedule(NoiseSchedule):
    """A variance-preserving DDPM table ᾱ_0..ᾱ_{T-1} (diffusers' indexing), λ piecewise linear in the index.

    Example:
        >>> sched = DiscreteSchedule.from_name("cosine", 1000)
        >>> sched.t_from_logsnr(sched.logsnr(123.4))  # tensor(123.4000, dtype=torch.float64)
    """

    def __init__(self, alphas_cumprod: ArrayLike):
        ac = _as_float64(alphas_cumprod).flatten()
        if ac.numel() < 2:
            raise ValueError(f"alphas_cumprod needs at least 2 entries, got {ac.numel()}.")
        # A zero-terminal-SNR table (Lin et al. 2023) ends with ᾱ = 0 exactly: the one entry allowed to be 0.
        if torch.isnan(ac).any() or not bool((ac[:-1] > 0).all() and ((ac >= 0) & (ac < 1)).all()):
            raise ValueError("every alphas_cumprod entry must lie strictly between 0 and 1 (the last may be 0; no NaN).")
        if not bool((ac[1:] < ac[:-1]).all()):
            raise ValueError("alphas_cumprod must be strictly decreasing (every β > 0).")
        self.alphas_cumprod = ac
        self.log_alphas_cumprod = torch.log(ac)
        self.logsnr_table = torch.log(ac) - torch.log1p(-ac)
        self.zero_terminal_snr = bool(ac[-1] == 0)
        self.t_min = 0.0
        self.t_max = float(ac.numel() - 1)
        self._grid = torch.arange(ac.numel(), dtype=torch.float64)

    @classmethod
    def from_betas(cls, betas: ArrayLike, rescale_zero_terminal_snr: bool = False) -> "DiscreteSchedule":
        """The table ᾱ = Π(1 − β); with `rescale_zero_terminal_snr`, Lin et al. (2023)'s rescaling
        √ᾱ' = (√ᾱ − √ᾱ_T)·√ᾱ_1/(√ᾱ_1 − √ᾱ_T), so that the last level is pure noise (λ = −∞)."""
        alphas_cumprod = torch.cumprod(1.0 - _as_float64(betas), dim=0)
        if rescale_zero_terminal_snr:
            root = alphas_cumprod.sqrt()
            root = (root - root[-1]) * root[0] / (root[0] - root[-1])
            alphas_cumprod = root**2
        return cls(alphas_cumprod)

    @classmethod
    def from_name(cls, name: str, num_train_timesteps: int, **params: float) -> "DiscreteSchedule":
        return cls.from_betas(get_betas(name, num_train_timesteps, **params))

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    def logsnr(self, t: ArrayLike) -> torch.Tensor:
        t = self._check_t(_as_float64(t))
        if not self.zero_terminal_snr:
            return _interp(t, self._grid, self.logsnr_table)
        # λ_{T-1} = −∞: on the last interval interpolate √ᾱ linearly down to 0 instead (invertible).
        last = t > self.t_max - 1
        lam = torch.empty_like(t)
        lam[~last] = _interp(t[~last], self._grid[:-1], self.logsnr_table[:-1])
        alpha2 = self.alphas_cumprod[-2] * (self.t_max - t[last]) ** 2
        lam[last] = torch.log(alpha2) - torch.log1p(-alpha2)
        return lam

    def log_alpha(self, t: ArrayLike) -> torch.Tensor:
        # α² = sigmoid(λ) on the λ interpolant; equals the table at integer timesteps.
        return 0.5 * torch.nn.functional.logsigmoid(self.logsnr(t))

    def sigma(self, t: ArrayLike) -> torch.Tensor:
        # σ² = sigmoid(−λ), exact at λ = −∞ too.
        return torch.exp(0.5 * torch.nn.functional.logsigmoid(-self.logsnr(t)))

    def t_from_logsnr(self, logsnr: ArrayLike) -> torch.Tensor:
        lam = self._check_logsnr(_as_float64(logsnr))
        # λ decreases with t: interpolate on the reversed (increasing) table.
        if not self.zero_terminal_snr:
            return _interp(lam, self.logsnr_table.flip(0), self._grid.flip(0))
        last = lam < self.logsnr_table[-2]
        t = torch.empty_like(lam)
        t[~last] = _interp(lam[~last], self.logsnr_table[:-1].flip(0), self._grid[:-1].flip(0))
        t[last] = self.t_max - torch.sigmoid(lam[last]).sqrt() / self.alphas_cumprod[-2].sqrt()
        return t


class ContinuousSchedule(NoiseSchedule):
    """A closed-form family from seed 001's Table 1 (see :func:`get_schedule` for the names)."""

    def __init__(
        self,
        name: str,
        log_alpha_fn: Callable[[torch.Tensor], torch.Tensor],
        log_sigma_fn: Callable[[torch.Tensor], torch.Tensor],
        t_min: float,
        t_max: float,
        params: Dict[str, float],
        t_from_logsnr_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ):
        self.name = name
        self._t_from_logsnr_fn = t_from_logsnr_fn
        self._log_alpha_fn = log_alpha_fn
        self._log_sigma_fn = log_sigma_fn
        self.t_min = float(t_min)
        self.t_max = float(t_max)
        self.params = dict(params)

    def __repr__(self) -> str:
        return f"ContinuousSchedule({self.name!r}, t ∈ [{self.t_min}, {self.t_max}], {self.params})"

    def log_alpha(self, t: ArrayLike) -> torch.Tensor:
        return self._log_alpha_fn(self._check_t(_as_float64(t)))

    def sigma(self, t: ArrayLike) -> torch.Tensor:
        return torch.exp(self._log_sigma_fn(self._check_t(_as_float64(t))))

    def logsnr(self, t: ArrayLike) -> torch.Tensor:
        t = self._check_t(_as_float64(t))
        return 2.0 * (self._log_alpha_fn(t) - self._log_sigma_fn(t))

    def t_from_logsnr(self, logsnr: ArrayLike) -> torch.Tensor:
        lam = self._check_logsnr(_as_float64(logsnr))
        if self._t_from_logsnr_fn is not None:
            return self._t_from_logsnr_fn(lam).clamp(self.t_min, self.t_max)
        # λ is strictly decreasing on the domain: bisection in float64 to machine precision.
        lo = torch.full_like(lam, self.t_min)
        hi = torch.full_like(lam, self.t_max)
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            too_clean = self.logsnr(mid) > lam
            lo = torch.where(too_clean, mid, lo)
            hi = torch.where(too_clean, hi, mid)
        return 0.5 * (lo + hi)


def _vp(beta_min: float = 0.1, beta_max: float = 20.0, eps: float = 1e-5) -> ContinuousSchedule:
    beta_d = beta_max - beta_min
    log_alpha = lambda t: -0.25 * t**2 * beta_d - 0.5 * t * beta_min  # noqa: E731
    log_sigma = lambda t: 0.5 * torch.log(-torch.expm1(2 * log_alpha(t)))  # noqa: E731
    return ContinuousSchedule("vp", log_alpha, log_sigma, eps, 1.0, {"beta_min": beta_min, "beta_max": beta_max, "eps": eps})


def _ve(sigma_min: float = 0.01, sigma_max: float = 50.0) -> ContinuousSchedule:
    log_alpha = lambda t: torch.zeros_like(t)  # noqa: E731
    log_sigma = lambda t: math.log(sigma_min) + t * math.log(sigma_max / sigma_min)  # noqa: E731
    return ContinuousSchedule("ve", log_alpha, log_sigma, 0.0, 1.0, {"sigma_min": sigma_min, "sigma_max": sigma_max})


def _iddpm(s: float = 0.008, eps: float = 1e-5, t_max: float = 0.9946) -> ContinuousSchedule:
    # α(t) = cos(π/2·(t+s)/(1+s)) / cos(π/2·s/(1+s)); t_max keeps α > 0 (DPM-Solver's cosine bound).
    norm = math.log(math.cos(math.pi / 2 * s / (1 + s)))
    log_alpha = lambda t: torch.log(torch.cos(math.pi / 2 * (t + s) / (1 + s))) - norm  # noqa: E731
    log_sigma = lambda t: 0.5 * torch.log(-torch.expm1(2 * log_alpha(t)))  # noqa: E731
    return ContinuousSchedule("iddpm", log_alpha, log_sigma, eps, t_max, {"s": s, "eps": eps, "t_max": t_max})


def _fm_ot(eps: float = 1e-3, t_max: float = 1.0 - 1e-3) -> ContinuousSchedule:
    log_alpha = lambda t: torch.log1p(-t)  # noqa: E731
    log_sigma = lambda t: torch.log(t)  # noqa: E731
    return ContinuousSchedule("fm-ot", log_alpha, log_sigma, eps, t_max, {"eps": eps, "t_max": t_max})


def _edm(sigma_min: float = 0.002, sigma_max: float = 80.0) -> ContinuousSchedule:
    # The time variable is σ itself (EDM's convention); Karras ρ-spacing is a sampler choice.
    log_alpha = lambda t: torch.zeros_like(t)  # noqa: E731
    log_sigma = lambda t: torch.log(t)  # noqa: E731
    return ContinuousSchedule("edm", log_alpha, log_sigma, sigma_min, sigma_max, {"sigma_min": sigma_min, "sigma_max": sigma_max})


def flow_matching_schedule(t_min: float) -> ContinuousSchedule:
    """Rectified flow x_t = (1 − t)·x0 + t·ε on [t_min, 1] (diffusers' FlowMatch schedulers, SD3, FLUX):
    λ = 2·ln((1 − t)/t), so t = 1 is pure noise (λ = −∞) and t = sigmoid(−λ/2) is the exact inverse."""
    if not 0.0 < t_min < 1.0:
        raise ValueError(f"t_min must lie in (0, 1), got {t_min!r}.")
    log_alpha = lambda t: torch.log1p(-t)  # noqa: E731
    log_sigma = lambda t: torch.log(t)  # noqa: E731
    inverse = lambda lam: torch.sigmoid(-0.5 * lam)  # noqa: E731
    return ContinuousSchedule("flow", log_alpha, log_sigma, t_min, 1.0, {"t_min": t_min}, t_from_logsnr_fn=inverse)


_CONTINUOUS_BUILDERS: Dict[str, Callable[..., ContinuousSchedule]] = {
    "vp": _vp,
    "ve": _ve,
    "iddpm": _iddpm,
    "fm-ot": _fm_ot,
    "edm": _edm,
}
CONTINUOUS_SCHEDULES: Tuple[str, ...] = tuple(_CONTINUOUS_BUILDERS)


def get_schedule(name: str, num_train_timesteps: Optional[int] = None, **params: float) -> NoiseSchedule:
    """A schedule object by name.

    Discrete names (:data:`DISCRETE_SCHEDULES` and diffusers' aliases) need ``num_train_timesteps`` and
    return a :class:`DiscreteSchedule`; continuous names ``vp, ve, iddpm, fm-ot, edm`` return a
    :class:`ContinuousSchedule` with seed 001's defaults (VP β_min = 0.1, β_max = 20; VE σ ∈ [0.01, 50];
    iDDPM s = 0.008; FM-OT α = 1 − t, σ = t; EDM σ ∈ [0.002, 80]).
    """
    if name in _CONTINUOUS_BUILDERS:
        if num_train_timesteps is not None:
            raise ValueError(f"continuous schedule {name!r} takes no `num_train_timesteps` (got {num_train_timesteps!r}).")
        try:
            schedule = _CONTINUOUS_BUILDERS[name](**params)
        except TypeError as err:
            raise ValueError(f"bad parameters {params} for continuous schedule {name!r}: {err}") from None
        lo, hi = schedule.logsnr_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"schedule {name!r} with {params} has no valid log-SNR range (got [{lo}, {hi}]).")
        return schedule
    if num_train_timesteps is None:
        allowed = ", ".join(DISCRETE_SCHEDULES + CONTINUOUS_SCHEDULES)
        if name not in _DISCRETE_BUILDERS and name not in DIFFUSERS_BETA_SCHEDULE_ALIASES:
            raise ValueError(f"Unknown schedule {name!r}; allowed: {allowed}.")
        raise ValueError(f"discrete schedule {name!r} needs `num_train_timesteps`.")
    return DiscreteSchedule.from_name(name, num_train_timesteps, **params)
