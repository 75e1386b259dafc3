"""γ sweeps of the generalised S2N sampler (seed 001 §4) on an exact denoiser, with JSON and a plot.

Seed 001 tunes γ of Corollary 1 at a fixed number of function evaluations (NFE): deterministic (ρ = 0) on EDM
checkpoints, stochastic (ρ = 1) over a (γ, δ) grid. Here the model is the Bayes-optimal
:class:`~diffusers_infoflow.testing.EmpiricalDenoiser` of a small data set (an MNIST subset when
``mnist.npz`` is present, else uniform random images), so sample quality has exact, cheap measures:

* ``ode_error``: RMS per pixel between a sampler's final sample and the probability-flow ODE endpoint from
  the same starting noise, the latter taken from a many-step deterministic run (deterministic sweep only);
* ``nearest_data_distance``: RMS per pixel from each final sample to its nearest data point (the exact
  denoiser's true samples are the data points, so 0 is perfect; the last step returns x̂0 at σ_min, which
  for an exact denoiser of few points is almost always a data point, so this mostly stays near 0);
* ``frechet_distance``: the Fréchet distance between Gaussians fitted to the samples and to the data set in
  the data's top principal components (an FID with PCA features): whether the samples visit the data points
  with the right frequencies, the quality a memorising exact denoiser can get wrong;
* ``out_of_range``: the fraction of pixels outside the data range [−1, 1] by more than 0.01 (seed 001: too
  large a γ leaves the pixel range).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..images import to_unit_images
from ..metrics.data import locate_mnist
from ..sampling import denoise
from ..schedulers.scheduling_s2n_generalized import S2NGeneralizedScheduler
from ..testing import EmpiricalDenoiser


__all__ = [
    "SweepPoint",
    "load_sweep_data",
    "sample_final",
    "nearest_data_distance",
    "frechet_distance",
    "gamma_sweep",
    "gamma_delta_grid",
    "run_sweep",
]

# How far outside [−1, 1] a pixel must be to count as out of range (a margin for float rounding).
RANGE_MARGIN = 0.01


@dataclass
class SweepPoint:
    """One sampler setting and its quality; ``ode_error`` is ``None`` for stochastic settings."""

    gamma: float
    delta: float
    sde_rho: float
    nfe: int
    nearest_data_distance: float
    frechet_distance: float
    out_of_range: float
    ode_error: Optional[float] = None


def load_sweep_data(
    num_points: int = 256, image_size: int = 14, seed: int = 0, path: Optional[str] = None
) -> Tuple[torch.Tensor, str]:
    """``num_points`` images (N, 1, image_size, image_size) in [−1, 1] and a description of their source.

    Args:
        path: an MNIST ``.npz``, whose first ``num_points`` training digits are area-downsampled from 28×28;
            ``"random"`` for uniform random images drawn with ``seed``; ``None`` for the MNIST file that
            :func:`~diffusers_infoflow.metrics.locate_mnist` finds, or random images when there is none.

    Raises:
        FileNotFoundError: when an explicit ``path`` does not exist.
    """
    if num_points < 1 or image_size < 1:
        raise ValueError(f"num_points and image_size must be >= 1, got {num_points} and {image_size}.")
    if path is None:
        try:
            path = str(locate_mnist())
        except FileNotFoundError:
            path = "random"
    elif path != "random" and not os.path.isfile(path):
        raise FileNotFoundError(f"MNIST data {path!r} not found; give an existing .npz, or 'random' for random images.")
    if path != "random":
        with np.load(path) as archive:
            if "x_train" not in archive.files:
                raise ValueError(f"MNIST data {path!r} has no array 'x_train' (it has {archive.files}).")
            digits = to_unit_images(archive["x_train"][:num_points])  # uint8 or float in [0, 1], checked
        images = torch.nn.functional.interpolate(digits, size=(image_size, image_size), mode="area")
        return images * 2 - 1, f"MNIST x_train[:{len(images)}] at {image_size}x{image_size} from {path}"
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(
        (num_points, 1, image_size, image_size), generator=generator
    ) * 2 - 1, f"uniform random images (seed {seed})"


def sample_final(
    scheduler: S2NGeneralizedScheduler, model: EmpiricalDenoiser, noise: torch.Tensor, nfe: int, seed: int = 0
) -> torch.Tensor:
    """Runs ``scheduler`` for ``nfe`` model calls from ``noise`` (unit variance; scaled by init_noise_sigma)."""
    scheduler.set_timesteps(nfe)
    return denoise(scheduler, model, noise * scheduler.init_noise_sigma, torch.Generator().manual_seed(seed))


def nearest_data_distance(samples: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Per sample, the RMS per pixel distance to the nearest data point."""
    flat, points = samples.flatten(1).to(torch.float64), data.flatten(1).to(torch.float64)
    squared = (flat**2).sum(1, keepdim=True) - 2 * flat @ points.T + (points**2).sum(1)[None, :]
    return (squared.min(1).values.clamp(min=0) / flat.shape[1]).sqrt()


def frechet_distance(samples: torch.Tensor, data: torch.Tensor, num_components: int = 32) -> float:
    """Fréchet distance ``‖μ₁ − μ₂‖² + tr(C₁ + C₂ − 2(C₁^½ C₂ C₁^½)^½)`` between Gaussian fits of ``samples``
    and ``data``, both projected on the data's top ``num_components`` principal directions."""
    points = data.flatten(1).to(torch.float64)
    centre = points.mean(0)
    basis = torch.linalg.svd(points - centre, full_matrices=False).Vh[:num_components].T
    a, b = (samples.flatten(1).to(torch.float64) - centre) @ basis, (points - centre) @ basis
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    evals, evecs = torch.linalg.eigh(cov_a)
    root_a = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross)


def _quality(final: torch.Tensor, data: torch.Tensor) -> Dict[str, float]:
    return {
        "nearest_data_distance": float(nearest_data_distance(final, data).mean()),
        "frechet_distance": frechet_distance(final, data),
        "out_of_range": _out_of_range(final),
    }


def _out_of_range(samples: torch.Tensor) -> float:
    return float((samples.abs() > 1 + RANGE_MARGIN).to(torch.float64).mean())


def _setup(data: torch.Tensor, scheduler_config: Dict, num_samples: int, seed: int):
    scheduler = S2NGeneralizedScheduler(**scheduler_config)
    if scheduler.config.preconditioning != "none":
        raise ValueError("the sweep's exact denoiser is told the schedule's own time: use preconditioning='none'.")
    model = EmpiricalDenoiser(data.to(torch.float64), scheduler.schedule, "epsilon")
    noise = torch.randn((num_samples, *data.shape[1:]), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return model, noise


def gamma_sweep(
    data: torch.Tensor,
    gammas: Sequence[float],
    nfe: int,
    scheduler_config: Dict,
    num_samples: int = 64,
    reference_nfe: int = 500,
    seed: int = 0,
) -> List[SweepPoint]:
    """Deterministic sampler (ρ = 0) at ``nfe`` for each γ: ODE-endpoint error and the measures of :func:`_quality`.

    The ODE endpoint is the γ = 0 (DDIM/Euler) sampler's result with ``reference_nfe`` steps.
    """
    model, noise = _setup(data, scheduler_config, num_samples, seed)
    reference = sample_final(
        S2NGeneralizedScheduler(**{**scheduler_config, "gamma": 0.0, "sde_rho": 0.0}), model, noise, reference_nfe
    )
    points = []
    for gamma in gammas:
        scheduler = S2NGeneralizedScheduler(**{**scheduler_config, "gamma": float(gamma), "sde_rho": 0.0, "delta": 1.0})
        final = sample_final(scheduler, model, noise, nfe)
        ode_error = float(((final - reference) ** 2).flatten(1).mean(1).sqrt().mean())
        points.append(SweepPoint(float(gamma), 1.0, 0.0, nfe, ode_error=ode_error, **_quality(final, data)))
    return points


def gamma_delta_grid(
    data: torch.Tensor,
    gammas: Sequence[float],
    deltas: Sequence[float],
    nfe: int,
    scheduler_config: Dict,
    num_samples: int = 64,
    seed: int = 0,
) -> List[SweepPoint]:
    """Stochastic sampler (ρ = 1) at ``nfe`` over the (γ, δ) grid: Fréchet and nearest-data distances, range excess.

    Every setting starts from the same noise and draws ξ from the same seed.
    """
    model, noise = _setup(data, scheduler_config, num_samples, seed)
    points = []
    for gamma in gammas:
        for delta in deltas:
            config = {**scheduler_config, "gamma": float(gamma), "delta": float(delta), "sde_rho": 1.0}
            final = sample_final(S2NGeneralizedScheduler(**config), model, noise, nfe, seed=seed + 1)
            points.append(SweepPoint(float(gamma), float(delta), 1.0, nfe, **_quality(final, data)))
    return points


def _plot(
    path: str,
    deterministic: List[SweepPoint],
    stochastic: List[SweepPoint],
    gammas: Sequence[float],
    deltas: Sequence[float],
    exact_frechet: float,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    g = [p.gamma for p in deterministic]
    # two scales: the RMS error is ~0.1 where the Fréchet distance is ~10, so each gets its own axis
    left.plot(g, [p.ode_error for p in deterministic], "o-", color="C0", label="RMS error vs. ODE endpoint (left)")
    left.set_ylabel("RMS error per pixel", color="C0")
    frechet_axis = left.twinx()
    frechet_axis.plot(g, [p.frechet_distance for p in deterministic], "s--", color="C1", label="Fréchet distance to the data, PCA-32 (right)")
    frechet_axis.axhline(exact_frechet, color="C1", lw=0.8, ls=":", label="Fréchet distance of exact draws (right)")
    frechet_axis.set_ylabel("Fréchet distance", color="C1")
    left.axvline(0.0, color="grey", lw=0.5)
    left.set_xlabel("γ")
    left.set_title(f"deterministic (ρ = 0), {deterministic[0].nfe} model calls")
    lines = left.get_legend_handles_labels(), frechet_axis.get_legend_handles_labels()
    left.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=8)
    grid = np.array([p.frechet_distance for p in stochastic]).reshape(len(gammas), len(deltas))
    image = right.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    right.set_xticks(range(len(deltas)), [f"{d:g}" for d in deltas])
    right.set_yticks(range(len(gammas)), [f"{v:g}" for v in gammas])
    right.set_xlabel("δ")
    right.set_ylabel("γ")
    right.set_title(f"stochastic (ρ = 1), {stochastic[0].nfe} model calls: Fréchet (exact draws: {exact_frechet:.3f})")
    for (i, j), value in np.ndenumerate(grid):
        right.text(j, i, f"{value:.3f}", ha="center", va="center", color="white", fontsize=8)
    fig.colorbar(image, ax=right)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_sweep(
    output_dir: str,
    gammas: Sequence[float] = (-0.1, -0.05, -0.025, 0.0, 0.013, 0.026, 0.05, 0.1, 0.2),
    nfe: int = 18,
    grid_gammas: Sequence[float] = (0.0, 0.5, 1.0, 1.25, 1.5),
    grid_deltas: Sequence[float] = (0.8, 0.9, 0.95, 1.0),
    grid_nfe: int = 50,
    scheduler_config: Optional[Dict] = None,
    num_samples: int = 512,
    num_points: int = 256,
    image_size: int = 14,
    reference_nfe: int = 500,
    seed: int = 0,
    data_path: Optional[str] = None,
) -> Dict[str, object]:
    """Both sweeps; writes ``s2n_gamma_sweep.json`` and ``s2n_gamma_sweep.png`` to ``output_dir`` and returns the
    JSON content. ``scheduler_config`` defaults to the EDM family (σ ∈ [0.002, 80], Karras ρ = 7 spacing),
    seed 001's setting for the deterministic γ, with the exact denoiser told σ directly."""
    scheduler_config = dict(scheduler_config or {"noise_family": "edm", "preconditioning": "none"})
    data, source = load_sweep_data(num_points, image_size, seed, data_path)
    deterministic = gamma_sweep(data, gammas, nfe, scheduler_config, num_samples, reference_nfe, seed)
    stochastic = gamma_delta_grid(data, grid_gammas, grid_deltas, grid_nfe, scheduler_config, num_samples, seed)
    # the Fréchet distance of an exact sampler: as many uniform draws of data points, same finite-sample bias
    exact_draws = data[torch.randint(len(data), (num_samples,), generator=torch.Generator().manual_seed(seed))]
    results = {
        "data": source,
        "frechet_distance_of_exact_draws": frechet_distance(exact_draws, data),
        "scheduler_config": scheduler_config,
        "num_samples": num_samples,
        "reference_nfe": reference_nfe,
        "seed": seed,
        "deterministic": [asdict(p) for p in deterministic],
        "stochastic": [asdict(p) for p in stochastic],
    }
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "s2n_gamma_sweep.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    _plot(
        os.path.join(output_dir, "s2n_gamma_sweep.png"),
        deterministic,
        stochastic,
        grid_gammas,
        grid_deltas,
        results["frechet_distance_of_exact_draws"],
    )
    return results
