"""Restoration metrics between ``x0`` and ``x_t`` along the forward process (seed 000 Figs 5–10).

For each schedule (any :class:`~diffusers_infoflow.schedules.NoiseSchedule`, e.g. ``linear``/``cosine``/``quadratic``/
``sigmoid`` at T = 300, 500, 1000), ``x_t = α_t x0 + σ_t ε`` is drawn at a set of timesteps with one fixed noise
tensor ε shared by all schedules and steps (so curves differ only through α_t, σ_t), and MI, MSE, ED, cosine
similarity and SSIM between ``x0`` and ``x_t`` are averaged over the images.

Pixel space: images are mapped from [0, 1] to diffusers' model space [−1, 1] before noising, as DDPM training does;
all metrics are computed there (SSIM ``data_range = 2``). MI bins ``x0`` over [−1, 1] and ``x_t`` over
``[min x_t, max x_t]`` of that step's batch (the noisy values leave [−1, 1]; a data-driven range avoids clipping,
and it is recorded per step in ``mi_restored_range``). The plug-in MI is biased upwards (about 0.3 nats per
MNIST image with 64 bins even for independent variables), so each step also reports ``mutual_information_floor``,
the MI of the same pixels with x_t's pixel positions shuffled: what the estimator says when there is no
information. Timesteps are diffusers' ``k = 0..T−1``; plots use the papers' ``t = k + 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch

from ..schedules import DiscreteSchedule, NoiseSchedule, get_schedule
from .mutual_information import histogram_mutual_information
from .restoration import restoration_metrics


__all__ = ["CURVE_METRICS", "forward_process_curves", "plot_forward_process_curves", "schedules_from_names"]

CURVE_METRICS = ("mutual_information", "mse", "euclidean_distance", "cosine_similarity", "ssim")
MODEL_RANGE = (-1.0, 1.0)


def schedules_from_names(names: Sequence[str], lengths: Sequence[int]) -> Dict[str, NoiseSchedule]:
    """``{"cosine T=300": DiscreteSchedule, …}`` for every name × length (each given once: a repeat is refused, not merged)."""
    for what, values in (("schedule names", list(names)), ("lengths", [int(v) for v in lengths])):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"{what} {repeated} are given more than once.")
    return {f"{name} T={length}": get_schedule(name, int(length)) for length in lengths for name in names}


def forward_process_curves(
    images: torch.Tensor,
    schedules: Mapping[str, DiscreteSchedule],
    *,
    num_points: int = 50,
    mi_bins: int = 64,
    seed: int = 0,
) -> Dict[str, Dict[str, List[float]]]:
    """Mean restoration metrics of ``x_t`` against ``x0`` at ``num_points`` timesteps of each schedule.

    Args:
        images: clean images ``(N, C, H, W)`` in [0, 1].
        schedules: label → discrete schedule (see :func:`schedules_from_names`).
        num_points: timesteps per schedule, evenly spaced over ``0..T−1`` (both ends included; at most T distinct).
        mi_bins: histogram bins per variable for the MI.
        seed: seeds the shared noise ε.

    Returns:
        label → ``{"t": [...], "logsnr": [...], "mi_restored_range": [[lo, hi], ...], "mutual_information_floor": [...],
        <metric>: [...]}`` for the metrics in :data:`CURVE_METRICS` (MI and its independence floor in nats).
    """
    if images.ndim != 4 or images.shape[0] < 1:
        raise ValueError(f"`images` must be (N, C, H, W) with N >= 1, got {tuple(images.shape)}.")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("`images` must lie in [0, 1].")
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"`num_points` must be an integer >= 2, got {num_points!r}.")
    if not schedules:
        raise ValueError("`schedules` is empty.")
    x0 = images.to(torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    # one fixed shuffle of pixel positions: it keeps every image's values and breaks their pairing with x0
    shuffle = torch.randperm(x0[0].numel(), generator=torch.Generator().manual_seed(seed + 1))
    curves: Dict[str, Dict[str, List[float]]] = {}
    for label, schedule in schedules.items():
        if not isinstance(schedule, DiscreteSchedule):
            raise TypeError(f"schedule {label!r} must be a DiscreteSchedule, got {type(schedule).__name__}.")
        steps = torch.linspace(0, schedule.num_train_timesteps - 1, num_points).round().to(torch.int64).unique()
        curve: Dict[str, List] = {"t": [], "logsnr": [], "mi_restored_range": [], "mutual_information_floor": [],
                                  **{m: [] for m in CURVE_METRICS}}
        for step in steps.tolist():
            x_t = schedule.alpha(step).item() * x0 + schedule.sigma(step).item() * noise
            restored_range = (x_t.min().item(), x_t.max().item())
            means = restoration_metrics(
                x0, x_t, value_range=MODEL_RANGE, mi_bins=mi_bins, mi_restored_range=restored_range
            )["mean"]
            curve["t"].append(step + 1)
            curve["logsnr"].append(schedule.logsnr(step).item())
            curve["mi_restored_range"].append(list(restored_range))
            shuffled = x_t.flatten(1)[:, shuffle].view_as(x_t)
            floor = histogram_mutual_information(x0, shuffled, bins=mi_bins, value_range=MODEL_RANGE,
                                                 y_value_range=restored_range, reduction="per_sample")
            curve["mutual_information_floor"].append(floor.mean().item())
            for metric in CURVE_METRICS:
                curve[metric].append(means[metric].item())
        curves[label] = curve
    return curves


_AXIS_LABELS = {
    "mutual_information": "MI (nats)",
    "mse": "MSE",
    "euclidean_distance": "ED (per-image L2)",
    "cosine_similarity": "cosine similarity",
    "ssim": "SSIM",
}


def plot_forward_process_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]], path: Union[str, Path], title: Optional[str] = None
) -> Path:
    """One panel per metric (seed 000 Figs 5–10 in one figure), metric against t for every schedule; writes ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = math.ceil(len(CURVE_METRICS) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, CURVE_METRICS):
        for label, curve in curves.items():
            (line,) = ax.plot(curve["t"], curve[metric], label=label)
            if metric == "mutual_information" and "mutual_information_floor" in curve:
                ax.plot(curve["t"], curve["mutual_information_floor"], ls=":", color=line.get_color(), lw=1)
        if metric == "mutual_information":
            ax.set_title("dotted: the estimator's floor (pixels shuffled)", fontsize=8)
        ax.set_xlabel("t")
        ax.set_ylabel(_AXIS_LABELS[metric])
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(CURVE_METRICS):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
