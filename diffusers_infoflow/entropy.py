"""Entropy of noisy images and entropy-matched timesteps between schedules (seed 000 §3).

Steps here count forward steps as the paper does: ``t = 1..T`` (diffusers' model timestep is ``t − 1``).
For a variance-preserving schedule ``H(x_t | x0) = (n/2)·ln(2πe·(1 − ᾱ_t))`` is strictly increasing in
``1 − ᾱ_t``, so equal entropy, equal ᾱ and equal log-SNR pick the same step; the discrete match follows the
paper literally (argmin of the entropy gap) and the fractional match solves ``H_B(t') = H_A(t)`` on the
λ-interpolant of the core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch

from .model_interface import ModelInterface
from .schedules import CONTINUOUS_SCHEDULES, DiscreteSchedule, NoiseSchedule, get_schedule


__all__ = [
    "ScheduleLike",
    "as_discrete_schedule",
    "gaussian_entropy",
    "match_model_timestep",
    "match_timestep",
    "match_timestep_fractional",
    "matched_step_table",
    "MatchedSteps",
]

ScheduleLike = Union[str, torch.Tensor, DiscreteSchedule]


def as_discrete_schedule(schedule: ScheduleLike, num_steps: Optional[int] = None, **params: float) -> DiscreteSchedule:
    """A :class:`DiscreteSchedule` from a name (+ ``num_steps``), an ``alphas_cumprod`` tensor or a schedule."""
    if isinstance(schedule, DiscreteSchedule):
        if num_steps is not None and num_steps != schedule.num_train_timesteps:
            raise ValueError(f"steps={num_steps} disagrees with the given schedule's length {schedule.num_train_timesteps}.")
        return schedule
    if isinstance(schedule, torch.Tensor):
        if num_steps is not None and num_steps != schedule.numel():
            raise ValueError(f"steps={num_steps} disagrees with the given alphas_cumprod of length {schedule.numel()}.")
        return DiscreteSchedule(schedule)
    if isinstance(schedule, str):
        if num_steps is None:
            raise ValueError(f"schedule name {schedule!r} needs its number of steps.")
        sched = get_schedule(schedule, num_steps, **params)
        assert isinstance(sched, DiscreteSchedule)
        return sched
    raise TypeError(f"expected a schedule name, an alphas_cumprod tensor or a DiscreteSchedule, got {type(schedule).__name__}.")


def _dim(sample_shape: Union[int, Sequence[int]]) -> int:
    shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
    if not shape or any((not isinstance(s, int)) or s < 1 for s in shape):
        raise ValueError(f"`sample_shape` must be a positive int or a tuple of positive ints, got {sample_shape!r}.")
    return math.prod(shape)


def gaussian_entropy(
    schedule: Union[ScheduleLike, NoiseSchedule],
    sample_shape: Union[int, Sequence[int]] = (1, 28, 28),
    *,
    num_train_timesteps: Optional[int] = None,
    t: Optional[Union[torch.Tensor, Sequence[float], float]] = None,
    **params: float,
) -> torch.Tensor:
    """Differential entropy ``H(x_t | x0) = (n/2)·ln(2πe·σ_t²)`` in nats (seed 000 eq. 5).

    Args:
        schedule: a schedule name (with ``num_train_timesteps``), an ``alphas_cumprod`` tensor, or any
            :class:`~diffusers_infoflow.schedules.NoiseSchedule` (continuous families included).
        sample_shape: the shape of one sample (or n directly); MNIST is ``(1, 28, 28)``.
        t: where to evaluate. For discrete schedules these are paper steps ``1..T`` (fractional allowed) and
            default to all of them; for continuous schedules the schedule's own time variable (required).
        **params: the schedule family's parameters when ``schedule`` is a name.

    Returns:
        float64 tensor of entropies; it rises to ``(n/2)·ln(2πe)`` as σ → 1 for VP schedules.
    """
    n = _dim(sample_shape)
    if isinstance(schedule, str) and schedule in CONTINUOUS_SCHEDULES:
        if num_train_timesteps is not None:
            raise ValueError(f"{schedule!r} is a continuous schedule: it takes no num_train_timesteps.")
        schedule = get_schedule(schedule, **params)
    if isinstance(schedule, NoiseSchedule) and not isinstance(schedule, DiscreteSchedule):
        if t is None:
            raise ValueError("continuous schedules need `t`, points in their own time variable.")
        return schedule.entropy(torch.as_tensor(t, dtype=torch.float64), n)
    sched = as_discrete_schedule(schedule, num_train_timesteps, **params)
    T = sched.num_train_timesteps
    steps = torch.arange(1, T + 1, dtype=torch.float64) if t is None else torch.as_tensor(t, dtype=torch.float64)
    _check_steps(steps, T)
    return sched.entropy(steps - 1, n)


def _check_steps(steps: torch.Tensor, T: int) -> None:
    bad = (steps < 1) | (steps > T) | torch.isnan(steps)
    if bad.any():
        raise ValueError(f"step {steps[bad].flatten()[0].item()!r} is out of range; steps count 1..{T} (T = {T}).")


def _check_step(t: int, T: int, what: str) -> None:
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"{what} must be an int forward step, got {t!r}.")
    if not 1 <= t <= T:
        raise ValueError(f"{what} {t} is out of range; steps count 1..{T} (T = {T}).")


def match_timestep(
    t: int,
    *,
    src: ScheduleLike,
    dst: ScheduleLike,
    src_steps: Optional[int] = None,
    dst_steps: Optional[int] = None,
    src_params: Optional[Dict[str, float]] = None,
    dst_params: Optional[Dict[str, float]] = None,
) -> int:
    """The step ``t'`` of ``dst`` whose noisy-image entropy is closest to step ``t`` of ``src``.

    ``t'`` = argmin over ``1..T_dst`` of ``|H_dst(t') − H_src(t)|`` (seed 000 §3.2), ties to the smaller step.

    Example (seed 000 §3.2.3): ``match_timestep(178, src="quadratic", dst="cosine", src_steps=300,
    dst_steps=300) == 130``.
    """
    a = as_discrete_schedule(src, src_steps, **(src_params or {}))
    b = as_discrete_schedule(dst, dst_steps, **(dst_params or {}))
    _check_step(t, a.num_train_timesteps, "src step")
    return int(_nearest_entropy_steps(a, b, torch.tensor([t]))[0])


def _nearest_entropy_steps(a: DiscreteSchedule, b: DiscreteSchedule, steps: torch.Tensor) -> torch.Tensor:
    """argmin_t' |H_b(t') − H_a(t)| for each paper step t of ``a``, as paper steps of ``b``."""
    # Per-coordinate entropy: n scales both sides, so the argmin does not depend on the image size.
    h_a = a.entropy(steps.to(torch.float64) - 1, 1)
    h_b = b.entropy(torch.arange(b.num_train_timesteps, dtype=torch.float64), 1)
    return torch.argmin((h_b[None, :] - h_a[:, None]).abs(), dim=1) + 1


def match_timestep_fractional(
    t: Union[int, float],
    *,
    src: ScheduleLike,
    dst: ScheduleLike,
    src_steps: Optional[int] = None,
    dst_steps: Optional[int] = None,
    src_params: Optional[Dict[str, float]] = None,
    dst_params: Optional[Dict[str, float]] = None,
) -> float:
    """The fractional step ``t' ∈ [1, T_dst]`` with exactly ``H_dst(t') = H_src(t)`` (λ interpolated linearly).

    ``t`` may itself be fractional. Raises ``ValueError`` when the source noise level lies outside the range
    that ``dst`` covers (use :func:`match_timestep` for the nearest step instead).
    """
    a = as_discrete_schedule(src, src_steps, **(src_params or {}))
    b = as_discrete_schedule(dst, dst_steps, **(dst_params or {}))
    _check_steps(torch.tensor([float(t)]), a.num_train_timesteps)
    lam = a.logsnr(float(t) - 1.0)
    lo, hi = b.logsnr_range
    if not lo <= float(lam) <= hi:
        raise ValueError(
            f"step {t} of the source has log-SNR {float(lam):.6g}, outside the destination's range "
            f"[{lo:.6g}, {hi:.6g}]; no fractional step matches (match_timestep gives the nearest)."
        )
    return float(b.t_from_logsnr(lam)) + 1.0


def match_model_timestep(timestep: Union[float, Sequence[float], torch.Tensor], *, src: Any, dst: Any) -> torch.Tensor:
    """The model timestep(s) of `dst` at the same noise level as model timestep(s) `timestep` of `src`, across
    checkpoint families (VP tables, EDM, flow matching).

    The rule is scale-invariant: equal Gaussian entropy ``H(x_t | x0)`` of the *variance-preserving* state
    ``x_t / √(a² + b²)`` (the raw state's entropy carries the family's arbitrary scale), which is equal log-SNR.
    For two VP tables it is :func:`match_timestep_fractional` in model-timestep units.

    Args:
        timestep: what `src`'s model is told (a table's τ, EDM's c_noise, flow matching's t·1000).
        src, dst: schedulers of this package, :class:`~diffusers_infoflow.model_interface.ModelInterface` objects,
            or any diffusers scheduler configs.

    Returns:
        `dst`'s model timesteps (float32, or int64 when they land on a table's integers).
    """
    lam = _as_interface(src).logsnr_from_model_timesteps(timestep)
    target = _as_interface(dst)
    lo, hi = target.logsnr_range
    if bool(((lam < lo) | (lam > hi)).any()):
        raise ValueError(f"a source level (λ = {lam.min().item():.4g}..{lam.max().item():.4g}) lies outside dst's range [{lo:.4g}, {hi:.4g}].")
    return target.model_timesteps(lam)[0]


def _as_interface(obj: Any) -> ModelInterface:
    if isinstance(obj, ModelInterface):
        return obj
    if isinstance(getattr(obj, "interface", None), ModelInterface):
        return obj.interface
    from .schedulers import S2NGeneralizedScheduler  # noqa: PLC0415 (schedulers import this module)

    config = obj.config if hasattr(obj, "config") else obj
    if not isinstance(config, Mapping):
        raise TypeError(f"expected a scheduler, a ModelInterface or a scheduler config, got {type(obj).__name__}.")
    config = dict(config)
    config.setdefault("_class_name", type(obj).__name__ if hasattr(obj, "config") else None)
    return S2NGeneralizedScheduler.from_config(config).interface


@dataclass
class MatchedSteps:
    """For each source step: its entropy and the matched step of every destination (rounded and fractional)."""

    src_name: str
    src_steps: torch.Tensor  # (K,) int64 paper steps
    src_entropy: torch.Tensor  # (K,) float64 nats
    matched: Dict[str, torch.Tensor]  # dst label -> (K,) int64 paper steps
    matched_fractional: Dict[str, torch.Tensor]  # dst label -> (K,) float64, NaN where out of range

    def rows(self) -> List[Dict[str, float]]:
        out = []
        for i, t in enumerate(self.src_steps.tolist()):
            row: Dict[str, float] = {"src_step": t, "entropy_nats": float(self.src_entropy[i])}
            for label in self.matched:
                row[label] = int(self.matched[label][i])
                row[label + " (fractional)"] = float(self.matched_fractional[label][i])
            out.append(row)
        return out


def matched_step_table(
    src: ScheduleLike,
    dsts: Dict[str, DiscreteSchedule],
    *,
    src_steps: Optional[int] = None,
    steps: Optional[Sequence[int]] = None,
    sample_shape: Union[int, Sequence[int]] = (1, 28, 28),
    src_name: str = "src",
) -> MatchedSteps:
    """Matched steps from ``src`` into every schedule of ``dsts`` ({label: schedule}) for ``steps`` (default all)."""
    a = as_discrete_schedule(src, src_steps)
    T = a.num_train_timesteps
    step_list = torch.arange(1, T + 1) if steps is None else torch.as_tensor(list(steps), dtype=torch.int64)
    _check_steps(step_list.to(torch.float64), T)
    lam = a.logsnr(step_list.to(torch.float64) - 1)
    h_src = a.entropy(step_list.to(torch.float64) - 1, _dim(sample_shape))
    matched, fractional = {}, {}
    for label, b in dsts.items():
        matched[label] = _nearest_entropy_steps(a, b, step_list)
        lo, hi = b.logsnr_range
        inside = (lam >= lo) & (lam <= hi)
        frac = torch.full_like(lam, float("nan"))
        if inside.any():
            frac[inside] = b.t_from_logsnr(lam[inside]) + 1
        fractional[label] = frac
    return MatchedSteps(src_name, step_list, h_src, matched, fractional)
