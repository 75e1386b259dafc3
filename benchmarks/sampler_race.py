"""Benchmark: deterministic-sampler accuracy on exact denoisers, ours against diffusers' built-ins.

Every sampler integrates the probability-flow ODE of an exact ε-denoiser, called like a diffusers UNet on the
linear-β DDPM table (T = 1000), from the same pure-noise draw x_T at t = 999 (``randn · init_noise_sigma`` in the
sampler's own units; a run whose first call is elsewhere is excluded). The target is
``x* = D_0(Φ_{999→0}(x_T))``: the exact ODE to the cleanest level t = 0, then the exact x̂0 there (what a
pipeline returns in the limit of many steps). Budgets count **model calls** (a counting wrapper); each family
gets its best setting per budget; samplers that stop at t = 0 get one more counted call returning x̂0 ("+D0").

Problems, ``--batch`` samples each: Gaussian data with MNIST's per-pixel mean and variance (x* in closed form),
and the ``EmpiricalDenoiser`` of the first SIZE MNIST training images at RESOLUTION² (``--sets``), whose x* is a
training image, from a fine RK4 reference checked against DPM-Solver++ 3M on 1,000 steps; there the table also
counts the samples that end on the reference's image. Our information-placed rungs use the denoiser's mmse curve
measured on 256 of its data points (``calibrate_information_curve``); our fitted rungs come from ``fit_ladder`` on
a calibration draw of the same size (seed ``FIT_SEED``), one fit per setting, problem and step count. Every
problem races every setting (``--empirical-grid all``): racing only each built-in family's three best settings so
far on the later sets (``top3``, faster) had hidden a built-in that is exact at 10 calls on ``mnist64@16``.

    python benchmarks/sampler_race.py                # everything (about 2 h on one core)
    python benchmarks/sampler_race.py --merge        # race only settings added since the saved results (on --sets)
    python benchmarks/sampler_race.py --quick        # a handful of samplers, for development (writes to /tmp)
    python benchmarks/sampler_race.py --confirm 1024 # each cell's 8 best a side again, on a fresh draw of 1,024
    python benchmarks/sampler_race.py --render-only  # rewrite the tables and plot from the saved JSON

Writes ``benchmarks/results/sampler_race.{json,md,png}`` after every problem (a run without ``--merge`` first moves
the saved file to ``sampler_race.before-<date-time>.json``); a ``--merge`` keeps the saved confirmation and marks the problems
that gained settings as stale. Within a problem, each finished setting goes to ``sampler_race.progress-<problem>.json``
(removed when the problem is written), so that ``--merge`` resumes a stopped run where it stopped. The discussion is in
``benchmarks/README.md`` §1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from _results import saved_for_merge, write_atomic
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.utils import logging as diffusers_logging

from diffusers_infoflow import (
    EmpiricalDenoiser,
    GaussianDenoiser,
    calibrate_information_curve,
    fit_ladder,
    get_schedule,
)
from diffusers_infoflow.sampling import denoise
from diffusers_infoflow.schedulers import EntropyHybridScheduler, S2NGeneralizedScheduler, TrigAngleRKScheduler
from diffusers_infoflow.schedulers.scheduling_s2n_generalized import spacing_kwargs
from diffusers_infoflow.schedulers.scheduling_trig_angle_rk import angle_from_logsnr
from diffusers_infoflow.testing import sample_trig_angle


T = 1000
T_MAX = T - 1
BASE = {"num_train_timesteps": T, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear", "prediction_type": "epsilon"}
RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------------------------------------- problems


@dataclass
class Problem:
    name: str
    description: str
    denoiser: torch.nn.Module
    x_T: torch.Tensor  # float64, (B, 1, 28, 28), the draw at t = 999
    target: Optional[torch.Tensor] = None
    info: Dict = field(default_factory=dict)
    nearest: Optional[torch.Tensor] = None  # empirical problem: index of the data point each target sample is
    information_curve: Optional[Dict] = None  # the denoiser's measured mmse curve, for the information rungs


class CountingModel:
    """``model(sample, t) -> ε̂`` that counts calls and records the timesteps it was told."""

    def __init__(self, denoiser):
        self.denoiser = denoiser
        self.calls = 0
        self.timesteps: List[float] = []

    def __call__(self, sample: torch.Tensor, timestep) -> torch.Tensor:
        self.calls += 1
        self.timesteps.append(float(torch.as_tensor(timestep).flatten()[0]))
        return self.denoiser(sample, timestep).sample


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()) ** 2).mean().sqrt())


def denoise_at_t0(denoiser, z: torch.Tensor) -> torch.Tensor:
    """D_0(z): the exact x̂0 at the t = 0 level (float64), without going through a counted call."""
    sched = denoiser.schedule
    a, s = sched.alpha(0.0).view(1, 1, 1, 1), sched.sigma(0.0).view(1, 1, 1, 1)
    return denoiser.posterior_mean(z.double(), a, s)


def reference_rk4(denoiser, x_T: torch.Tensor, num_steps: int):
    """RK4 in η on a λ-uniform grid λ(999) → λ(0) with the exact posterior mean (4·num_steps evaluations).

    Returns (z0, D_0(z0)): the state at the t = 0 level and the endpoint x*."""
    sched = denoiser.schedule
    lam = torch.linspace(float(sched.logsnr(T_MAX)), float(sched.logsnr(0.0)), num_steps + 1, dtype=torch.float64)
    angles = angle_from_logsnr(lam)

    def pair_fn(x, eta):
        a = torch.tensor(math.cos(eta), dtype=torch.float64).view(1, 1, 1, 1)
        s = torch.tensor(math.sin(eta), dtype=torch.float64).view(1, 1, 1, 1)
        x0 = denoiser.posterior_mean(x, a, s)
        return x0, (x - a * x0) / s

    z0 = sample_trig_angle(pair_fn, x_T.double(), angles.tolist(), solver="rk4")
    return z0, denoise_at_t0(denoiser, z0)


def reference_dpmpp(denoiser, x_T: torch.Tensor):
    """diffusers' DPM-Solver++(3M) on all 1000 integer timesteps 999..0, final_sigmas_type="zero" (ends with x̂0 at t=0).

    Returns (z0, endpoint): z0 is the model input of the last call (the state at t = 0)."""
    sched = DPMSolverMultistepScheduler(**BASE, solver_order=3, algorithm_type="dpmsolver++", final_sigmas_type="zero")
    sched.set_timesteps(timesteps=list(range(T_MAX, -1, -1)))
    x = x_T.double().clone()
    for t in sched.timesteps:
        z_last = x
        x = sched.step(denoiser(x, t).sample, t, x).prev_sample
    return z_last, x


def mnist_or_none(split_limit: int, resolution: int = 28):
    """The first `split_limit` MNIST training images in [-1, 1], area-resized to `resolution` (None without the file)."""
    try:
        from diffusers_infoflow.metrics import load_mnist

        images = load_mnist("train", split_limit).double() * 2 - 1
    except (FileNotFoundError, OSError, ValueError) as err:
        print(f"[sampler_race] MNIST not available ({err}).", flush=True)
        return None
    if resolution != images.shape[-1]:
        images = torch.nn.functional.interpolate(images, size=(resolution, resolution), mode="area")
    return images


def calibrate(problem: Problem, data: torch.Tensor) -> None:
    """The denoiser's mmse curve on a data batch (48 levels, one batched call each): the information rungs' input."""
    problem.information_curve = calibrate_information_curve(problem.denoiser, DDPMScheduler(**BASE), data, num_levels=48, batch_size=len(data))
    problem.info["calibration_calls"] = 48


def gaussian_problem(batch: int, seed: int) -> Problem:
    schedule = get_schedule("linear", T)
    mnist = mnist_or_none(10000)
    if mnist is not None:
        mean, var = mnist.mean(0), mnist.var(0).clamp(min=1e-4)
        what = "x0 ~ N(μ, diag(v)), μ/v = per-pixel MNIST mean/variance in [-1,1] (train[:10000]), v floored at 1e-4"
    else:
        gen = torch.Generator().manual_seed(seed + 100)
        mean = torch.zeros(1, 28, 28, dtype=torch.float64)
        var = torch.exp(torch.empty(1, 28, 28, dtype=torch.float64).uniform_(math.log(1e-4), 0.0, generator=gen))
        what = "x0 ~ N(0, diag(v)), v log-uniform in [1e-4, 1] (MNIST file missing)"
    den = GaussianDenoiser(mean, var, schedule, prediction_type="epsilon")
    x_T = torch.randn((batch, 1, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    calibration_data = mean + var.sqrt() * torch.randn((256, 1, 28, 28), generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64)
    z0 = den.ode_solution(x_T, T_MAX, 0)
    target = denoise_at_t0(den, z0)
    # Context: the same ODE continued to clean data (λ = +∞): x = μ + sqrt(v)·(z_T − α_T μ)/sqrt(α_T² v + σ_T²).
    a_T, s_T = schedule.alpha(float(T_MAX)).item(), schedule.sigma(float(T_MAX)).item()
    to_clean = mean + var.sqrt() * (x_T - a_T * mean) / (a_T**2 * var + s_T**2).sqrt()
    info = {
        "variance_min": float(var.min()),
        "variance_max": float(var.max()),
        "target_rms": rms(target, torch.zeros_like(target)),
        "rms_target_vs_ode_to_lambda_inf": rms(target, to_clean),
        "rms_target_vs_state_at_t0_without_D0": rms(target, z0),
    }
    problem = Problem("gaussian", what, den, x_T, target, info)
    calibrate(problem, calibration_data)
    return problem


def empirical_problem(batch: int, seed: int, num_data: int, ref_steps: int, resolution: int = 28,
                      check_reference: bool = True) -> Problem:
    data = mnist_or_none(num_data, resolution)
    if data is None:
        raise SystemExit(f"sampler_race: mnist{num_data}@{resolution} needs MNIST (put mnist.npz at ../shared/data/ or "
                         "set $INFOFLOW_MNIST).")
    schedule = get_schedule("linear", T)
    den = EmpiricalDenoiser(data.float(), schedule, prediction_type="epsilon")
    x_T = torch.randn((batch, 1, resolution, resolution), generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    start = time.perf_counter()
    z0, ref = reference_rk4(den, x_T, ref_steps)
    dist, nearest = torch.cdist(ref.flatten(1), den.data).min(1)
    info = {"num_data": len(data), "reference": f"RK4 in η, λ-uniform grid, {ref_steps} steps ({4 * ref_steps} evaluations), then D_0"}
    if check_reference:
        z0_half, ref_half = reference_rk4(den, x_T, ref_steps // 2)
        z0_dpm, ref_dpm = reference_dpmpp(den, x_T)
        info.update({
            "rms_ref_vs_rk4_half_grid": rms(ref, ref_half),
            "rms_ref_vs_dpmpp3m_1000_steps": rms(ref, ref_dpm),
            "rms_state_at_t0_ref_vs_rk4_half_grid": rms(z0, z0_half),
            "rms_state_at_t0_ref_vs_dpmpp3m_1000_steps": rms(z0, z0_dpm),
        })
    info.update({
        "target_rms": rms(ref, torch.zeros_like(ref)),
        "target_max_rms_distance_to_nearest_data_point": float(dist.max()) / resolution,
        "median_rms_distance_between_data_points": float(torch.cdist(den.data[:200], den.data[:200]).median()) / resolution,
        "reference_seconds": time.perf_counter() - start,
    })
    name = f"mnist{len(data)}@{resolution}"
    problem = Problem(name, f"EmpiricalDenoiser of MNIST train[:{len(data)}] in [-1,1] at {resolution}×{resolution}", den, x_T, ref, info)
    problem.nearest = nearest  # the data point each target sample is
    calibrate(problem, data[torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + 7))[:256]])
    return problem


def validate_references(problem: Problem, ref_steps: int) -> Dict[str, float]:
    """Both fine references against the closed form of problem (a)."""
    return {
        f"rk4_{ref_steps}_steps_vs_closed_form": rms(reference_rk4(problem.denoiser, problem.x_T, ref_steps)[1], problem.target),
        "dpmpp3m_1000_steps_vs_closed_form": rms(reference_dpmpp(problem.denoiser, problem.x_T)[1], problem.target),
    }


# ---------------------------------------------------------------------------------------------- samplers


@dataclass
class Config:
    family: str  # the row of the table, e.g. "DPM++ 2M"
    setting: str  # what was varied, human-readable
    make: Callable[[], object]
    ours: bool = False
    space: str = "vp"  # "vp": the sample is x_t; "ve": the sample is x_t/α_t (Euler, Heun, LMS)
    plus_d0: bool = False  # one more (counted) call at t = 0 returning x̂0
    set_steps: Optional[Callable[[object, int], None]] = None
    step_kwargs: Dict = field(default_factory=dict)
    uses_curve: bool = False  # `make` takes the problem's information curve
    fitted: bool = False  # rungs from fit_ladder on the problem's calibration draw

    @property
    def name(self) -> str:
        return f"{self.family} [{self.setting}]"

    def prepare(self, n: int, problem: Problem):
        sched = self.make(problem.information_curve) if self.uses_curve else self.make()
        if self.fitted:
            sched.set_timesteps(timesteps=fitted_ladder(problem, self.name, sched, n))
        elif self.set_steps is None:
            sched.set_timesteps(n)
        else:
            self.set_steps(sched, n)
        return sched

    def calls(self, n: int, problem: Problem) -> int:
        return len(self.prepare(n, problem).timesteps) + int(self.plus_d0)


FIT_SEED = 4321  # the calibration draw of fit_ladder: neither the race's x_T (seed, seed + 1) nor --confirm's


def fitted_ladder(problem: Problem, name: str, sched, n: int) -> List[float]:
    """fit_ladder's n rungs for the setting `name` (its scheduler `sched`) on this problem, fitted to the solver's
    own 200-step run from a calibration draw of the race's size; the rungs and the fit's model calls go into the
    problem's info, by setting and step count (--confirm and --merge re-use these rungs, they do not fit again)."""
    ladders = problem.info.setdefault("fitted_ladders", {}).setdefault(name, {})  # JSON keys: the step count as a string
    if str(n) not in ladders:
        noise = torch.randn(problem.x_T.shape, generator=torch.Generator().manual_seed(FIT_SEED), dtype=torch.float64)
        model = CountingModel(problem.denoiser)
        ladders[str(n)] = fit_ladder(model, sched, n, noise)
        problem.info.setdefault("fit_ladder_calls", {}).setdefault(name, {})[str(n)] = model.calls
    return ladders[str(n)]


def _custom_to_zero(sched, n):
    """Custom integer timesteps linspace(999, 0, n) (last call at t = 0), through diffusers' ``timesteps=``."""
    sched.set_timesteps(timesteps=np.linspace(T_MAX, 0, n).round().astype(int).tolist())


SIGMA_OPTIONS = {  # diffusers' ways to place the rungs
    "linspace": {"timestep_spacing": "linspace"},
    "trailing": {"timestep_spacing": "trailing"},
    "leading": {"timestep_spacing": "leading"},
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
    "lu": {"use_lu_lambdas": True},
}


def builtin_configs() -> List[Config]:
    cfgs: List[Config] = []

    def add(family, cls, setting, kwargs, **extra):
        cfgs.append(Config(family, setting, lambda cls=cls, kw={**BASE, **kwargs}: cls(**kw), **extra))

    for spacing in ("linspace", "trailing", "leading"):
        for one in (True, False):
            add("DDIM", DDIMScheduler, f"{spacing}, set_alpha_to_one={one}" + ("" if one else " +D0"),
                {"timestep_spacing": spacing, "set_alpha_to_one": one}, plus_d0=not one)
    for order, solver_types in ((2, ("midpoint", "heun")), (3, ("midpoint",))):
        family = f"DPM++ {order}M"
        for st in solver_types:
            for sig in ("linspace", "trailing", "karras", "exponential", "lu", "custom-to-0"):
                for final in ("zero", "sigma_min"):
                    for lof in (True, False):
                        kw = {"solver_order": order, "algorithm_type": "dpmsolver++", "solver_type": st,
                                  "final_sigmas_type": final, "lower_order_final": lof}
                        kw.update(SIGMA_OPTIONS.get(sig, {}))
                        setting = f"{sig}, final={final}{' +D0' if final == 'sigma_min' else ''}, lower_order_final={lof}"
                        if order == 2:
                            setting += f", {st}"
                        add(family, DPMSolverMultistepScheduler, setting, kw, plus_d0=final == "sigma_min",
                            set_steps=_custom_to_zero if sig == "custom-to-0" else None)
    for order in (2, 3):
        for sig in ("linspace", "karras", "exponential", "custom-to-0"):
            for final in ("zero", "sigma_min"):
                for lof in (True, False):
                    kw = {"solver_order": order, "algorithm_type": "dpmsolver++", "final_sigmas_type": final, "lower_order_final": lof}
                    kw.update(SIGMA_OPTIONS.get(sig, {}) if sig != "linspace" else {})
                    add(f"DPM++ {order}S (singlestep)", DPMSolverSinglestepScheduler,
                        f"{sig}, final={final}{' +D0' if final == 'sigma_min' else ''}, lower_order_final={lof}", kw,
                        plus_d0=final == "sigma_min", set_steps=_custom_to_zero if sig == "custom-to-0" else None)
    for variant in ("bh1", "bh2"):
        for order in (2, 3, 4):  # UniPC solves for any order; 4 as for our multistep
            for sig in ("linspace", "trailing", "karras", "exponential"):
                for final in ("zero", "sigma_min"):
                    for lof in (True, False):
                        kw = {"solver_order": order, "solver_type": variant, "final_sigmas_type": final, "lower_order_final": lof}
                        kw.update(SIGMA_OPTIONS[sig])
                        add(f"UniPC {variant}", UniPCMultistepScheduler,
                            f"order {order}, {sig}, final={final}{' +D0' if final == 'sigma_min' else ''}, lower_order_final={lof}",
                            kw, plus_d0=final == "sigma_min")
    for order in (2, 3):
        for sig in ("linspace", "trailing", "karras", "exponential"):
            for lof in (True, False):
                kw = {"solver_order": order, "lower_order_final": lof}
                kw.update(SIGMA_OPTIONS[sig])
                # DEIS always ends at the t = 0 level (its last sigma is σ_min): +D0 finishes the job.
                add("DEIS", DEISMultistepScheduler, f"order {order}, {sig}, lower_order_final={lof}, +D0", kw, plus_d0=True)
    for sig in ("linspace", "trailing", "karras", "exponential"):
        add("Heun", HeunDiscreteScheduler, sig, SIGMA_OPTIONS[sig], space="ve")
        for order in (2, 3, 4):
            add("LMS", LMSDiscreteScheduler, f"order {order}, {sig}", SIGMA_OPTIONS[sig], space="ve", step_kwargs={"order": order})
        for final in ("zero", "sigma_min"):
            add("Euler", EulerDiscreteScheduler, f"{sig}, final={final}{' +D0' if final == 'sigma_min' else ''}",
                {**SIGMA_OPTIONS[sig], "final_sigmas_type": final}, space="ve", plus_d0=final == "sigma_min")
    add("Euler", EulerDiscreteScheduler, "log_linear interpolation, final=zero",
        {"interpolation_type": "log_linear"}, space="ve")
    for spacing in ("linspace", "trailing", "leading"):
        for prk in (True, False):
            for one in (True, False):
                add("PNDM", PNDMScheduler,
                    f"{spacing}, skip_prk_steps={prk}, set_alpha_to_one={one}" + ("" if one else " +D0"),
                    {"timestep_spacing": spacing, "skip_prk_steps": prk, "set_alpha_to_one": one}, plus_d0=not one)
    return cfgs


# (measure, power) of the information rungs raced: power 0 would be uniform in λ, 1 the measure itself.
INFORMATION_VARIANTS = (("information", 0.25), ("information", 0.5), ("information", 1.0), ("mmse_decrease", 0.25), ("mmse_decrease", 0.5))


def our_configs() -> List[Config]:
    cfgs: List[Config] = []

    def add(family, cls, setting, kwargs):
        cfgs.append(Config(family, setting, lambda kw={**BASE, **kwargs}: cls(**kw), ours=True))

    def add_information(family, cls, setting, kwargs):
        for measure, power in INFORMATION_VARIANTS:
            kw = {**BASE, **kwargs, "step_spacing": "information", "information_measure": measure, "information_power": power}
            cfgs.append(Config(family, f"{setting}information ({measure}^{power})",
                               lambda curve, kw=kw: cls(**kw, information_curve=curve), ours=True, uses_curve=True))

    for spacing in ("linspace", "trailing", "leading"):
        add("EntropyHybrid (η=0)", EntropyHybridScheduler, spacing, {"eta": 0.0, "timestep_spacing": spacing})
    for spacing in ("linspace", "trailing", "logsnr", "karras"):
        cfgs.append(Config("S2N (ρ=0)", f"from_preset('deterministic') (γ=0.026), {spacing}", ours=True,
                           make=lambda sp=spacing: S2NGeneralizedScheduler.from_preset("deterministic", {**BASE, **spacing_kwargs(sp)})))
    for gamma in (-0.05, 0.0, 0.05, 0.1):
        for spacing in ("linspace", "trailing", "logsnr", "karras"):
            add("S2N (ρ=0)", S2NGeneralizedScheduler, f"γ={gamma}, {spacing}", {"gamma": gamma, "sde_rho": 0.0, **spacing_kwargs(spacing)})
        if gamma >= 0:
            add_information("S2N (ρ=0)", S2NGeneralizedScheduler, f"γ={gamma}, ", {"gamma": gamma, "sde_rho": 0.0})
    spacings = ("angle", "logsnr", "karras", "linspace")
    for solver in ("euler", "rk2", "rk4", "ddim"):
        for spacing in spacings:
            add(f"TrigAngleRK {solver}", TrigAngleRKScheduler, spacing, {"solver": solver, "step_spacing": spacing})
        add_information(f"TrigAngleRK {solver}", TrigAngleRKScheduler, "", {"solver": solver})
    for order in (2, 3, 4):
        for predict_x0 in (True, False):
            for corrector in (True, False):
                kw = {"solver": "multistep", "solver_order": order, "predict_x0": predict_x0, "use_corrector": corrector}
                form = f"{'x0' if predict_x0 else 'ε'} form, corrector={'on' if corrector else 'off'}"
                # trailing: the last call is not at the clean end; max_step_ratio=None keeps every node as diffusers'
                # solvers do; polynomials in u itself for the x0 form only (the ε form's, in ρ = σ̃, is diffusers' LMS)
                interpolations = ("logsnr", "linear") if predict_x0 else ("logsnr",)
                for end, ratio, interpolation in itertools.product(("clean", "trailing"), (2.0, None), interpolations):
                    family = f"TrigAngleRK multistep order {order}"
                    kw_end = {**kw, "ladder_end": end, "max_step_ratio": ratio, "interpolation": interpolation}
                    suffix = ((", trailing" if end == "trailing" else "") + (", max_step_ratio=None" if ratio is None else "")
                              + (", interpolation=linear" if interpolation == "linear" else ""))
                    for spacing in spacings:
                        add(family, TrigAngleRKScheduler, f"{spacing}, {form}{suffix}", {**kw_end, "step_spacing": spacing})
                    add_information(family, TrigAngleRKScheduler, f"{form}{suffix}, ", kw_end)
    for order in (3, 4):  # fitted rungs (each fit costs thousands of calls) for the x0 form only, where they won
        for corrector in (True, False):
            kw = {**BASE, "solver": "multistep", "solver_order": order, "use_corrector": corrector, "step_spacing": "linspace",
                  "ladder_end": "trailing"}
            cfgs.append(Config(f"TrigAngleRK multistep order {order}",
                               f"fitted ladder (fit_ladder from linspace), x0 form, corrector={'on' if corrector else 'off'}, trailing",
                               lambda kw=kw: TrigAngleRKScheduler(**kw), ours=True, fitted=True))
    for interpolation in ("logsnr", "linear"):  # fitted from the information rungs, every node kept
        kw = {**BASE, "solver": "multistep", "solver_order": 4, "use_corrector": True, "ladder_end": "trailing",
              "step_spacing": "information", "information_measure": "information", "information_power": 0.5,
              "max_step_ratio": None, "interpolation": interpolation}
        cfgs.append(Config("TrigAngleRK multistep order 4",
                           "fitted ladder (fit_ladder from information (information^0.5)), x0 form, corrector=on, trailing, "
                           "max_step_ratio=None" + (", interpolation=linear" if interpolation == "linear" else ""),
                           lambda curve, kw=kw: TrigAngleRKScheduler(**kw, information_curve=curve), ours=True,
                           uses_curve=True, fitted=True))
    return cfgs


# ---------------------------------------------------------------------------------------------- running


def steps_for_budget(cfg: Config, budget: int, problem: Problem):
    """The largest N whose call count is <= budget (searching down from N = budget), with that count."""
    for n in range(budget, 0, -1):
        try:
            calls = cfg.calls(n, problem)
        except Exception:  # some spacings need N >= 2, some N are refused
            continue
        if calls <= budget:
            return n, calls
    return None, None


def run(cfg: Config, problem: Problem, n: int) -> Dict:
    sched = cfg.prepare(n, problem)
    model = CountingModel(problem.denoiser)
    if cfg.space == "ve":
        sigma_max = float(sched.sigmas[0])
        x = problem.x_T * math.sqrt(1.0 + sigma_max**2)
    else:
        x = problem.x_T.clone()
    x = denoise(sched, model, x, **cfg.step_kwargs)
    sigma_last = None
    if cfg.space == "ve":  # back to x_t = α·(x/α) at the final level (σ = 0 there unless +D0)
        sigma_last = float(sched.sigmas[-1])
        x = x / math.sqrt(1.0 + sigma_last**2)
    if cfg.plus_d0:
        eps = model(x, torch.tensor(0))
        sch = problem.denoiser.schedule
        x = (x.double() - sch.sigma(0.0).item() * eps.double()) / sch.alpha(0.0).item()
    if not torch.isfinite(x).all():
        raise FloatingPointError("non-finite sample")
    first = model.timesteps[0]
    extra = {}
    if problem.nearest is not None:  # empirical: did the sample land on the same data point as the reference?
        landed = torch.cdist(x.double().flatten(1), problem.denoiser.data).min(1).indices
        extra["same_data_point"] = int((landed == problem.nearest).sum())
    return {
        **extra,
        "steps": n,
        "calls": model.calls,
        "first_timestep": first,
        "last_timestep": model.timesteps[-1],
        "start_ok": abs(first - T_MAX) < 1e-3,
        "rms_error": rms(x, problem.target),
    }


def race(problem: Problem, configs: List[Config], budgets: List[int],
         after_setting: Optional[Callable[[List[Dict]], None]] = None) -> List[Dict]:
    """Every setting at every budget; ``after_setting(rows so far)`` is called once each setting is done."""
    rows = []
    for cfg in configs:
        for budget in budgets:
            row = {"family": cfg.family, "setting": cfg.setting, "ours": cfg.ours, "budget": budget}
            n, calls = steps_for_budget(cfg, budget, problem)
            if n is None:
                row.update(rms_error=None, error="no N gives <= budget calls")
            else:
                try:
                    row.update(run(cfg, problem, n))
                    if row["calls"] != calls:
                        row["note"] = f"predicted {calls} calls, counted {row['calls']}"
                except Exception as err:  # a diffusers option that breaks at this N: record, do not crash
                    row.update(steps=n, rms_error=None, error=f"{type(err).__name__}: {err}"[:200])
            rows.append(row)
        if after_setting is not None:
            after_setting(rows)
    return rows


def best_table(rows: List[Dict], budgets: List[int]) -> Dict[str, Dict[int, Dict]]:
    """family -> budget -> best valid run (start at t=999, finite error, calls <= budget)."""
    best: Dict[str, Dict[int, Dict]] = {}
    for r in rows:
        if r.get("rms_error") is None or not r.get("start_ok") or r["calls"] > r["budget"]:
            continue
        slot = best.setdefault(r["family"], {})
        if r["budget"] not in slot or r["rms_error"] < slot[r["budget"]]["rms_error"]:
            slot[r["budget"]] = r
    return best


BAR = 0.7  # the target: our best RMS at most this times the best built-in's (ties at round-off count)
FLOOR = 1e-9  # errors below this are round-off (the empirical problem snaps to data points): compared as equal


def followup_settings(rows: List[Dict], keep: int = 3) -> set:
    """(family, setting) pairs worth re-running on problem (b): every valid setting of ours, and for each built-in
    family the `keep` best settings at each budget on problem (a)."""
    chosen, by_slot = set(), {}
    for r in rows:
        if r.get("rms_error") is None or not r.get("start_ok"):
            continue
        if r["ours"]:
            chosen.add((r["family"], r["setting"]))
        else:
            by_slot.setdefault((r["family"], r["budget"]), []).append(r)
    for slot in by_slot.values():
        for r in sorted(slot, key=lambda r: r["rms_error"])[:keep]:
            chosen.add((r["family"], r["setting"]))
    return chosen


def investigate_gaussian(problem: Problem, budgets: List[int]) -> Dict:
    """(1) how far a finer, oracle-tuned γ takes S2N; (2) TrigAngleRK's clean end: the library's x̂0 final step
    converges to x* at the solver's order, seed 004's last RK step to η = 0 (``final_step="solver"``) stalls at
    a floor (errors vs x*, and vs the ODE to λ = +∞); the multistep solver for comparison."""
    out: Dict = {}
    gammas = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3)
    sweep = {}
    for b in budgets:
        trials = []
        for spacing in ("linspace", "trailing", "logsnr", "karras"):
            for g in gammas:
                cfg = Config("S2N", f"γ={g}, {spacing}", lambda g=g, sp=spacing: S2NGeneralizedScheduler(**BASE, gamma=g, **spacing_kwargs(sp)))
                trials.append((run(cfg, problem, b)["rms_error"], cfg.setting))
        trials.sort()
        sweep[str(b)] = [f"{e:.3g} ({st})" for e, st in trials[:3]]
    out["s2n_oracle_gamma_sweep_top3"] = {"gammas": list(gammas), "best": sweep}
    sched = problem.denoiser.schedule
    a_T, s_T = sched.alpha(float(T_MAX)).item(), sched.sigma(float(T_MAX)).item()
    mean, var = problem.denoiser.mean, problem.denoiser.variance
    to_clean = mean + var.sqrt() * (problem.x_T - a_T * mean) / (a_T**2 * var + s_T**2).sqrt()
    conv = {}
    runs = [(f"{solver} logsnr N={n} final_step={fs}", {"solver": solver, "final_step": fs}, n)
            for solver in ("rk2", "rk4") for n in (12, 50, 200) for fs in ("x0", "solver")]
    runs += [(f"multistep order 3 logsnr N={n}", {"solver": "multistep", "solver_order": 3}, n) for n in (12, 50, 200)]
    for label, extra, n in runs:
        cfg = Config("t", label, lambda extra=extra: TrigAngleRKScheduler(**BASE, step_spacing="logsnr", **extra))
        sched_ = cfg.prepare(n, problem)
        model = CountingModel(problem.denoiser)
        x = denoise(sched_, model, problem.x_T.clone())
        conv[label] = {"calls": model.calls, "rms_vs_target": rms(x, problem.target), "rms_vs_ode_to_lambda_inf": rms(x, to_clean)}
    out["trig_rk_convergence"] = conv
    # S2N with γ ≠ 0: the last rung to λ = +∞ returns x̂0 + γ/(1+γ)·(σ_t/α_t)·ε̂, not x̂0 (Corollary 1 taken to
    # the clean end), so it keeps an O(γ·σ_0) distance to x* however many rungs it takes.
    floor = {}
    z0 = problem.denoiser.ode_solution(problem.x_T, T_MAX, 0)
    a0, s0 = sched.alpha(0.0).item(), sched.sigma(0.0).item()
    eps0 = (z0 - a0 * problem.target) / s0  # ε̂ at t = 0 on the exact trajectory
    for g in (0.0, 0.026, 0.1):
        cfg = Config("S2N", "", lambda g=g: S2NGeneralizedScheduler(**BASE, gamma=g, step_spacing="logsnr"))
        floor[f"γ={g}"] = {
            **{f"rms_vs_target_N={n}": run(cfg, problem, n)["rms_error"] for n in (50, 200, 1000)},
            "final_step_shift_rms": rms(g / (1 + g) * s0 / a0 * eps0, torch.zeros_like(eps0)),
        }
    out["s2n_gamma_final_step_floor"] = floor
    return out


def side(r: Dict) -> str:
    return "ours" if r["ours"] else "builtin"


def _compare(ro: Dict, rb: Dict):
    ratio = max(ro["rms_error"], FLOOR) / max(rb["rms_error"], FLOOR)
    if max(ro["rms_error"], rb["rms_error"]) <= FLOOR:
        return ratio, f"tie (both below the round-off floor {FLOOR:g})"
    if ratio == 1.0:  # e.g. both put the same sample on the same other training image
        return ratio, "ours equals the best built-in"
    if ratio < 1:
        return ratio, "ours beats the best built-in by ×%.3g" % (1 / ratio)
    return ratio, "ours trails the best built-in by ×%.3g" % ratio


def _meets_bar(ro: Dict, rb: Dict, ratio: float, text: str) -> bool:
    """Issue 14's bar for one cell: at most BAR of the built-in's RMS (or a tie at round-off), with at least as many
    samples on the reference's training image where the problem counts them."""
    return (ratio <= BAR or text.startswith("tie")) and ro.get("same_data_point", 0) >= rb.get("same_data_point", 0)


def verdict(best: Dict[str, Dict[int, Dict]], budgets: List[int]) -> List[Dict]:
    """Per budget: our best against the best built-in."""
    out = []
    for b in budgets:
        entries = {k: [(fam, d[b]) for fam, d in best.items() if b in d and side(d[b]) == k] for k in ("ours", "builtin")}
        if not entries["ours"] or not entries["builtin"]:
            continue
        fo, ro = min(entries["ours"], key=lambda p: p[1]["rms_error"])
        fb, rb = min(entries["builtin"], key=lambda p: p[1]["rms_error"])
        ratio, text = _compare(ro, rb)
        v = {
            "budget": b,
            "best_ours": f"{fo} [{ro['setting']}]",
            "best_ours_rms": ro["rms_error"],
            "best_ours_calls": ro["calls"],
            "best_builtin": f"{fb} [{rb['setting']}]",
            "best_builtin_rms": rb["rms_error"],
            "best_builtin_calls": rb["calls"],
            "ours_over_builtin": ratio,
            "verdict": text,
        }
        v["meets_bar"] = _meets_bar(ro, rb, ratio, text)
        if "same_data_point" in ro:
            v["same_data_point_ours_builtin"] = [ro["same_data_point"], rb["same_data_point"]]
        out.append(v)
    return out


def fixed_settings(problems: Dict[str, Dict], budgets: List[int]) -> Dict[str, Dict]:
    """Per side, the one setting (family + setting, the same at every budget and on every problem) with the smallest
    geometric-mean RMS over all (problem, budget) cells, among the settings raced on every problem; and its cells.

    The per-cell best of the tables above picks a setting per problem and budget with hindsight; a user picks one
    setting beforehand, and this is the best such choice for each side."""
    cells: Dict[tuple, Dict] = {}
    for pname, pres in problems.items():
        for r in pres["all_runs"]:
            if r.get("rms_error") is None or not r.get("start_ok") or r["calls"] > r["budget"] or r["budget"] not in budgets:
                continue
            cells.setdefault((r["ours"], r["family"], r["setting"]), {})[(pname, r["budget"])] = r
    wanted = {(p, b) for p in problems for b in budgets}
    out = {}
    for ours in (True, False):
        scored = []
        for (side_, family, setting), runs in cells.items():
            if side_ != ours or set(runs) != wanted:
                continue
            score = sum(math.log(max(r["rms_error"], FLOOR)) for r in runs.values()) / len(runs)
            scored.append((score, family, setting, runs))
        if scored:
            score, family, setting, runs = min(scored, key=lambda item: item[0])
            out["ours" if ours else "builtin"] = {
                "family": family, "setting": setting, "geometric_mean_rms": math.exp(score),
                "cells": {f"{p}|{b}": {k: runs[(p, b)].get(k) for k in ("rms_error", "calls", "same_data_point")} for p, b in sorted(runs)},
            }
    return out


LADDERS = ("fitted", "information", "logsnr", "karras", "angle", "linspace")


def ladder_comparison(problems: Dict[str, Dict], budgets: List[int]) -> Dict[str, Dict[str, Dict]]:
    """For our multistep solver (any order, form, corrector and end): the best RMS per problem and budget on each
    kind of ladder, so information-placed rungs are compared with the others on the same solver."""
    out: Dict[str, Dict[str, Dict]] = {}
    for pname, pres in problems.items():
        for r in pres["all_runs"]:
            if (r.get("rms_error") is None or not r.get("start_ok") or r["calls"] > r["budget"]
                    or not r["family"].startswith("TrigAngleRK multistep")):
                continue
            ladder = next(name for name in LADDERS if name in r["setting"])
            cell = out.setdefault(pname, {}).setdefault(str(r["budget"]), {})
            if ladder not in cell or r["rms_error"] < cell[ladder]["rms_error"]:
                cell[ladder] = {"rms_error": r["rms_error"], "same_data_point": r.get("same_data_point"), "setting": r["setting"]}
    return out


CONFIRM_AT_MOST = 8  # settings per side and cell re-run on the fresh draw


def confirm(results: Dict, batch: int, seed: int, ref_steps: int, names: Optional[List[str]] = None) -> Dict:
    """Each side's best settings of every cell re-run on a fresh draw of `batch` samples; each side's best there.

    The race picks each side's best per cell out of hundreds of settings on one draw, so the winning errors are
    biased low; on the multimodal sets the RMS is set by the few samples that start near a boundary between training
    images, and where both sides are exact the winner is any of dozens of settings. Here each side's
    ``CONFIRM_AT_MOST`` best settings of the cell run again from a new x_T (seed `seed`, a new reference), the same
    number for both sides. They are ranked by race RMS, and those at round-off by their geometric-mean RMS over all
    the problem's budgets (their race RMS there is noise). A fixed number, not "within a factor of the best": that
    rule gave a side whose race winner was alone at round-off that one candidate, a draw's luck. `names`: only
    these problems."""
    configs = {(c.family, c.setting): c for c in our_configs() + builtin_configs()}
    out = {"batch": batch, "seed": seed, "at_most": CONFIRM_AT_MOST, "rule": "best by race RMS", "problems": {}}
    for pname, pres in results["problems"].items():
        if names is not None and pname not in names:
            continue
        start = time.perf_counter()
        if pname == "gaussian":
            problem = gaussian_problem(batch, seed)
        else:
            size, res = pname.removeprefix("mnist").split("@")
            problem = empirical_problem(batch, seed, int(size), ref_steps, int(res), check_reference=False)
        # the race's fitted rungs, run again, not fitted again (a copy: the saved info stays as it is)
        problem.info["fitted_ladders"] = {name: dict(by_steps) for name, by_steps in pres["info"].get("fitted_ladders", {}).items()}
        valid = [r for r in pres["all_runs"] if r.get("rms_error") is not None and r.get("start_ok") and r["calls"] <= r["budget"]]
        logs = {}
        for r in valid:
            logs.setdefault((r["family"], r["setting"]), []).append(math.log(max(r["rms_error"], FLOOR)))
        overall = {key: sum(values) / len(values) for key, values in logs.items()}  # log of the geometric mean
        cells = []
        for budget in sorted({r["budget"] for r in valid}):
            cell = {"budget": budget}
            for key, ours in (("ours", True), ("builtin", False)):
                ranked = sorted((r for r in valid if r["budget"] == budget and r["ours"] == ours),
                                key=lambda r: (max(r["rms_error"], FLOOR), overall[(r["family"], r["setting"])]))
                reruns = []
                for r in ranked[:CONFIRM_AT_MOST]:
                    cfg = configs[(r["family"], r["setting"])]
                    if cfg.fitted and str(r["steps"]) not in problem.info["fitted_ladders"].get(cfg.name, {}):
                        raise SystemExit(f"--confirm: the saved race has no fitted rungs for {cfg.name} "
                                         f"at {r['steps']} steps on {pname}; run --merge first.")
                    reruns.append({"setting": f"{r['family']} [{r['setting']}]", "race_rms_error": r["rms_error"],
                                   **run(cfg, problem, r["steps"])})
                cell[key] = min(reruns, key=lambda q: q["rms_error"])
                cell[f"{key}_candidates"] = len(reruns)
            ratio, text = _compare(cell["ours"], cell["builtin"])
            cell.update(ours_over_builtin=ratio, verdict=text, meets_bar=_meets_bar(cell["ours"], cell["builtin"], ratio, text))
            cells.append(cell)
            print(f"[confirm {pname}] {budget:>3} calls ({cell['ours_candidates']} vs {cell['builtin_candidates']} settings): {text}", flush=True)
        out["problems"][pname] = {"cells": cells, "seconds": time.perf_counter() - start, "command": " ".join(["python"] + sys.argv)}
    return out


# ---------------------------------------------------------------------------------------------- reporting

MARK = {"ours": "★ ", "builtin": ""}


def _ratio_table(cells: Dict[str, Dict[int, tuple]], budgets: List[int]) -> List[str]:
    """Markdown rows of problem -> budget -> (ratio ours / built-in, meets the bar, verdict, [same-image counts] or None)."""
    lines = ["| problem | " + " | ".join(f"{b} calls" for b in budgets) + " |", "|" + "---|" * (len(budgets) + 1)]
    for pname, by_budget in cells.items():
        row = []
        for b in budgets:
            if b not in by_budget:
                row.append("—")
                continue
            ratio, meets_bar, text, same = by_budget[b]
            if text.startswith("tie"):
                value = "tie"
            elif ratio * FLOOR > 1e-3:  # the built-in is at round-off and ours is not: a ratio of ~1e7 says nothing
                value = "built-in exact"
            else:
                value = f"{ratio:.3g}{' ✓' if meets_bar else ''}"
            row.append(value + (" [%d/%d]" % tuple(same) if same else ""))
        lines.append(f"| {pname} | " + " | ".join(row) + " |")
    return lines + [""]


def markdown(results: Dict, budgets: List[int]) -> str:
    lines = ["# Sampler accuracy race on exact denoisers", "",
             "Generated by `" + results["command"] + "` (see the docstring of `benchmarks/sampler_race.py`).", "",
             "RMS error (all pixels of all samples) of the final sample against the exact probability-flow ODE "
             "endpoint **x\\* = D_0(Φ_{999→0}(x_T))**: the exact ODE from t = 999 (λ_min) to the cleanest training "
             "level t = 0, then the exact x̂0 there. Budget = model calls, counted by a wrapper; each cell is the "
             "family's best setting at that budget, with its actual calls in brackets. ★ = ours, unmarked = "
             "diffusers 0.42 built-ins. **bold** = best of ★ and best built-in per column. Linear-β DDPM table, "
             "T = 1000, every run starts at t = 999 from the same x_T, float64 (diffusers' own tables are float32).", ""]
    lines += ["## Summary: our best over the best built-in", "",
              f"RMS ratio per problem and budget (< 1: ours ahead; ✓ = at most {BAR} or a tie at round-off, with at least "
              "as many samples on the reference's training image), and [ours/built-in] samples on that image.", ""]
    lines += _ratio_table({pname: {v["budget"]: (v["ours_over_builtin"], v["meets_bar"], v["verdict"], v.get("same_data_point_ours_builtin"))
                                   for v in pres["verdict"]} for pname, pres in results["problems"].items()}, budgets)
    confirmation = results.get("confirmation")
    if confirmation:
        seed_flag = f" --seed {results['seed']}" if results["seed"] else ""  # the confirmation's seed is --seed + 1000
        lines += ["## Each side's best settings on a fresh draw", "",
                  f"Each side's {confirmation['at_most']} best settings of every cell (by race RMS; those at round-off ranked by "
                  "their geometric-mean RMS over all budgets), run again from a new x_T of "
                  f"{confirmation['batch']} samples (seed {confirmation['seed']}, new reference), and each side's best "
                  "there: the race's winning errors are biased low by the choice among hundreds of settings, and on the "
                  "multimodal sets they are set by the few samples that start near a boundary between training images. "
                  "Ratio ours / built-in, ✓ as above, [ours/built-in] samples on the reference's image.", ""]
        lines += _ratio_table({
            pname: {c["budget"]: (c["ours_over_builtin"], c["meets_bar"], c["verdict"],
                                  [c["ours"]["same_data_point"], c["builtin"]["same_data_point"]] if "same_data_point" in c["ours"] else None)
                    for c in pres["cells"]}
            for pname, pres in confirmation["problems"].items()}, budgets)
        if confirmation.get("stale"):
            lines += [f"Stale: the race added settings to {', '.join(confirmation['stale'])} after this confirmation, "
                      "so their best settings may have changed (`python benchmarks/sampler_race.py --confirm "
                      f"{confirmation['batch']}{seed_flag} --confirm-problems {' '.join(confirmation['stale'])}`).", ""]
        missing = [pname for pname in results["problems"] if pname not in confirmation["problems"]]
        if missing:
            lines += [f"Not yet confirmed on this race: {', '.join(missing)} (`python benchmarks/sampler_race.py "
                      f"--confirm {confirmation['batch']}{seed_flag} --confirm-problems {' '.join(missing)}`).", ""]
    fixed = results.get("fixed_settings", {})
    if len(fixed) == 2:
        lines += ["## One setting per side, chosen once for every problem and budget", "",
                  "The setting of each side with the smallest geometric-mean RMS over all cells (among the settings raced "
                  f"on every problem): ★ {fixed['ours']['family']} [{fixed['ours']['setting']}] against "
                  f"{fixed['builtin']['family']} [{fixed['builtin']['setting']}]. Cells: RMS ours / built-in, "
                  "[samples on the reference's image, ours/built-in].", "",
                  "| problem | " + " | ".join(f"{b} calls" for b in budgets) + " |", "|" + "---|" * (len(budgets) + 1)]
        for pname in results["problems"]:
            row = []
            for b in budgets:
                o, d = (fixed[k]["cells"].get(f"{pname}|{b}") for k in ("ours", "builtin"))
                if o is None or d is None:
                    row.append("—")
                    continue
                same = f" [{o['same_data_point']}/{d['same_data_point']}]" if o.get("same_data_point") is not None else ""
                row.append(f"{o['rms_error']:.2e} / {d['rms_error']:.2e}{same}")
            lines.append(f"| {pname} | " + " | ".join(row) + " |")
        lines.append("")
    ladders = results.get("ladder_comparison", {})
    if ladders:
        lines += ["## Ladders for our multistep solver", "",
                  "Best RMS of `TrigAngleRKScheduler(solver=\"multistep\")` (any order, form, corrector, end) per kind of "
                  "rungs: information-placed (from the denoiser's measured mmse curve) / the best of the others (which).", "",
                  "| problem | " + " | ".join(f"{b} calls" for b in budgets) + " |", "|" + "---|" * (len(budgets) + 1)]
        for pname, cells in ladders.items():
            row = []
            for b in budgets:
                cell = cells.get(str(b), {})
                others = [(v["rms_error"], name) for name, v in cell.items() if name != "information"]
                if "information" not in cell or not others:
                    row.append("—")
                    continue
                rms_other, name = min(others)
                row.append(f"{cell['information']['rms_error']:.2e} / {rms_other:.2e} ({name})")
            lines.append(f"| {pname} | " + " | ".join(row) + " |")
        lines.append("")
    for pname, pres in results["problems"].items():
        best = pres["best"]
        lines += [f"## Problem: {pname}", "", pres["description"], ""]
        if pres.get("info"):
            lines += ["```", json.dumps(pres["info"], indent=1), "```", ""]
        if "same_data_point" in next(iter(next(iter(best.values())).values())):
            lines += [f"[k/{pres['info']['batch']}] = samples that end on the same data point as the reference.", ""]
        lines += ["| sampler | " + " | ".join(f"{b} calls" for b in budgets) + " |", "|" + "---|" * (len(budgets) + 1)]
        col_best = {}
        for b in budgets:
            for k in ("ours", "builtin"):
                vals = [d[str(b)]["rms_error"] for d in best.values() if str(b) in d and side(d[str(b)]) == k]
                col_best[(b, k)] = max(min(vals), FLOOR) if vals else None
        order = {"ours": 0, "builtin": 1}
        fams = sorted(best, key=lambda f: (order[side(next(iter(best[f].values())))], f))
        for fam in fams:
            d = best[fam]
            k = side(next(iter(d.values())))
            cells = []
            for b in budgets:
                r = d.get(str(b))
                if r is None:
                    cells.append("—")
                    continue
                c = f"{r['rms_error']:.2e} ({r['calls']})"
                if "same_data_point" in r:
                    c += f" [{r['same_data_point']}/{pres['info']['batch']}]"
                if col_best.get((b, k)) is not None and max(r["rms_error"], FLOOR) == col_best[(b, k)]:
                    c = f"**{c}**"
                cells.append(c)
            lines.append(f"| {MARK[k]}{fam} | " + " | ".join(cells) + " |")
        lines += ["", "Winning settings:", ""]
        for fam in fams:
            settings = "; ".join(f"{b}: {best[fam][str(b)]['setting']}" for b in budgets if str(b) in best[fam])
            lines.append(f"- {fam}: {settings}")
        lines += ["", "Verdict (best ★ vs best built-in; ratio = ours / built-in RMS, > 1 means ours trails):", "",
                  "| calls | best ours | RMS | best built-in | RMS | ratio |",
                  "|---|---|---|---|---|---|"]
        for v in pres["verdict"]:
            same = (" [same data point: %d vs %d of %d]" % (*v["same_data_point_ours_builtin"], pres["info"]["batch"])
                    if "same_data_point_ours_builtin" in v else "")
            lines.append(f"| {v['budget']} | {v['best_ours']} | {v['best_ours_rms']:.2e} | {v['best_builtin']} | "
                         f"{v['best_builtin_rms']:.2e} | {v['ours_over_builtin']:.3g}{same} |")
        inv = pres.get("investigation")
        if inv:
            lines += ["", "### Investigation", "",
                      "S2N with a finer, oracle-tuned γ (grid " + ", ".join(str(g) for g in inv["s2n_oracle_gamma_sweep_top3"]["gammas"])
                      + "; best three per budget):", "", "| calls | best | 2nd | 3rd |", "|---|---|---|---|"]
            for b, top in inv["s2n_oracle_gamma_sweep_top3"]["best"].items():
                lines.append(f"| {b} | " + " | ".join(top) + " |")
            lines += ["", "TrigAngleRK convergence (the library's x̂0 final step vs seed 004's last RK step to η = 0, "
                      "final_step=\"solver\"; RMS vs x* and vs the ODE continued to λ = +∞):", "", "| run | calls | RMS vs x* | RMS vs ODE to λ=+∞ |", "|---|---|---|---|"]
            for k, v in inv["trig_rk_convergence"].items():
                lines.append(f"| {k} | {v['calls']} | {v['rms_vs_target']:.2e} | {v['rms_vs_ode_to_lambda_inf']:.2e} |")
            lines += ["", "S2N (logsnr rungs) with γ ≠ 0: the last rung to λ = +∞ returns x̂0 + γ/(1+γ)·(σ_0/α_0)·ε̂, "
                      "a floor of that size:", "", "| γ | N=50 | N=200 | N=1000 | final-step shift (floor) |", "|---|---|---|---|---|"]
            for k, v in inv["s2n_gamma_final_step_floor"].items():
                lines.append(f"| {k} | {v['rms_vs_target_N=50']:.2e} | {v['rms_vs_target_N=200']:.2e} | "
                             f"{v['rms_vs_target_N=1000']:.2e} | {v['final_step_shift_rms']:.2e} |")
        if pres.get("excluded"):
            lines += ["", "Excluded runs (do not start at t = 999, no N fits the budget, or failed): " + "; ".join(pres["excluded"])]
        lines.append("")
    return "\n".join(lines)


def plot(results: Dict, budgets: List[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = list(results["problems"].items())
    from matplotlib.ticker import NullFormatter

    columns = min(3, len(probs))
    rows = math.ceil(len(probs) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(8.5 * columns, 5.5 * rows), squeeze=False)
    for ax in axes.flat[len(probs):]:
        ax.set_visible(False)
    style = {"ours": ("-", "o", 2.2), "builtin": ("--", "x", 1.2)}
    families = sorted({fam for _, pres in probs for fam in pres["best"]})  # one colour per family in every panel
    cmap = plt.get_cmap("tab20")
    legend = {}
    for ax, (pname, pres) in zip(axes.flat, probs):
        best = pres["best"]
        for fam in sorted(best):
            i = families.index(fam)
            d = best[fam]
            k = side(next(iter(d.values())))
            pts = sorted((r["calls"], max(r["rms_error"], FLOOR)) for r in d.values())
            ls, mk, lw = style[k]
            (line,) = ax.plot([q[0] for q in pts], [q[1] for q in pts], ls, marker=mk, lw=lw, color=cmap(i % 20))
            legend.setdefault(MARK[k] + fam, line)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(budgets)
        ax.set_xticklabels([str(b) for b in budgets])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("model calls")
        ax.set_ylabel(f"RMS error vs exact ODE endpoint (floored at {FLOOR:g})")
        ax.set_title(f"{pname}: best setting per sampler (★ ours solid, diffusers dashed)")
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(list(legend.values()), list(legend), fontsize=9, loc="center right")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-calls", "--budgets", dest="budgets", type=int, nargs="+", default=[5, 10, 15, 20, 50])
    parser.add_argument("--problems", nargs="+", default=["gaussian", "empirical"], choices=["gaussian", "empirical"])
    parser.add_argument("--batch", type=int, default=128, help="samples of every problem")
    parser.add_argument("--sets", nargs="+", default=["64@28", "512@28", "4096@28", "64@16", "1024@16"],
                        help="the empirical problems, SIZE@RESOLUTION: the first SIZE MNIST training images at RESOLUTION²")
    parser.add_argument("--ref-steps", type=int, default=400, help="RK4 steps of the fine reference (4 calls each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="only a few samplers (development)")
    parser.add_argument("--empirical-grid", choices=["top3", "all"], default="all",
                        help="settings run on the empirical sets after the first: 'all' = everything everywhere; 'top3' "
                        "(faster, can miss a built-in's winner) = all of ours + each built-in family's 3 best settings "
                        "per budget on any problem raced before (the Gaussian and the first set run everything)")
    parser.add_argument("--output-dir", default=None, help="default: benchmarks/results (a temp dir with --quick)")
    parser.add_argument("--merge", action="store_true", help="keep the runs of the output directory's sampler_race.json "
                        "(same budgets, batch, seed and --ref-steps) and race only the settings it lacks, e.g. after adding options")
    parser.add_argument("--confirm", type=int, default=None, metavar="N",
                        help="re-run every cell's best settings of the saved race on a fresh draw of N samples (seed --seed + 1000)")
    parser.add_argument("--confirm-problems", nargs="+", default=None, metavar="NAME",
                        help="with --confirm: only these problems of the saved race (e.g. mnist64@16); the others keep "
                        "an earlier confirmation of the same size")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md/.png (and the fixed-setting summary) "
                        "from the output directory's sampler_race.json without racing")
    args = parser.parse_args()
    if args.output_dir is None:
        import tempfile

        args.output_dir = str(Path(tempfile.gettempdir()) / "sampler_race_quick") if args.quick else str(RESULTS)
    if args.confirm_problems is not None and args.confirm is None:
        parser.error("--confirm-problems needs --confirm N")
    if args.render_only or args.confirm is not None:
        out = Path(args.output_dir)
        results = json.loads((out / "sampler_race.json").read_text())
        if args.confirm is not None:
            if args.confirm < 1:
                parser.error(f"--confirm needs a positive number of samples, got {args.confirm}")
            warnings.filterwarnings("ignore")
            diffusers_logging.set_verbosity_error()
            torch.set_num_threads(1)
            unknown = sorted(set(args.confirm_problems or []) - set(results["problems"]))
            if unknown:
                parser.error(f"--confirm-problems: {unknown} are not in the saved race ({sorted(results['problems'])})")
            confirmation = confirm(results, args.confirm, args.seed + 1000, args.ref_steps, args.confirm_problems)
            earlier = results.get("confirmation", {})
            if args.confirm_problems and all(earlier.get(k) == confirmation[k] for k in ("batch", "seed", "at_most", "rule")):
                # the other problems keep their earlier confirmation (each entry names the command that made it)
                confirmation["problems"] = {**earlier["problems"], **confirmation["problems"]}
            stale = [name for name in earlier.get("stale", []) if name in confirmation["problems"]
                     and args.confirm_problems is not None and name not in args.confirm_problems]  # kept, not rerun
            if stale:
                confirmation["stale"] = stale
            results["confirmation"] = confirmation
        save_results(results, out)
        print(f"rewrote {out}/sampler_race.{{json,md,png}}")
        return
    warnings.filterwarnings("ignore")
    diffusers_logging.set_verbosity_error()
    # One thread: the tensors are small, and torch's logsigmoid (used by DiscreteSchedule.log_alpha) enters a
    # parallel region on every call, which costs milliseconds per call on a loaded 2-core machine.
    torch.set_num_threads(1)
    t0 = time.perf_counter()

    merged_from = {}
    out = Path(args.output_dir)
    draw = {"budgets": args.budgets, "batch": args.batch, "seed": args.seed, "ref_steps": args.ref_steps}
    if args.merge and ((out / "sampler_race.json").is_file() or not any(out.glob("sampler_race.progress-*.json"))):
        # the kept runs must come from the same draws, references and budgets (an interrupted first run has only
        # its progress files)
        merged_from = saved_for_merge(out / "sampler_race", **draw)
    configs = our_configs() + builtin_configs()
    if args.quick:
        keep = {"EntropyHybrid (η=0)", "TrigAngleRK rk4", "TrigAngleRK multistep order 3", "DPM++ 3M", "UniPC bh2", "DDIM"}
        configs = [c for c in configs if c.family in keep][::3]
    results = {"budgets": args.budgets, "batch": args.batch, "seed": args.seed, "ref_steps": args.ref_steps,
               "num_train_timesteps": T, "beta_schedule": "linear(1e-4, 0.02)",
               "target": "x* = D_0(Φ_{999→0}(x_T)): exact PF-ODE from t=999 to t=0, then the exact x̂0 at t=0",
               "problems": {}, "configs": len(configs)}
    jobs = [("gaussian", None)] if "gaussian" in args.problems else []
    if "empirical" in args.problems:
        for spec in args.sets:
            size, _, res = spec.partition("@")
            if not (size.isdigit() and res.isdigit() and int(size) > 0 and int(res) > 0):
                parser.error(f"--sets entries are SIZE@RESOLUTION, e.g. 512@28; got {spec!r}")
            jobs.append(("empirical", (int(size), int(res))))
    if any(kind == "empirical" for kind, _ in jobs) and mnist_or_none(1) is None:
        jobs = [job for job in jobs if job[0] != "empirical"]
        results["problems_skipped"] = ["empirical: MNIST data missing"]
        if not jobs:
            parser.error("nothing to race: the empirical sets need MNIST (put mnist.npz at ../shared/data/ or set "
                         "$INFOFLOW_MNIST), and --problems has no gaussian")
    keep_earlier = not args.merge and (out / "sampler_race.json").is_file()  # moved aside at this run's first write
    out.mkdir(parents=True, exist_ok=True)
    followup = set()
    for kind, spec in jobs:
        start = time.perf_counter()
        if kind == "gaussian":
            problem = gaussian_problem(args.batch, args.seed)
            problem.info["reference_checks"] = validate_references(problem, args.ref_steps)
            configs_b = configs
        else:
            problem = empirical_problem(args.batch, args.seed, spec[0], args.ref_steps, spec[1])
            first_set = not any(name.startswith("mnist") for name in results["problems"])
            if args.empirical_grid == "top3" and not first_set:
                configs_b = [c for c in configs if c.ours or (c.family, c.setting) in followup]
                problem.info["settings_run"] = (f"{len(configs_b)} of {len(configs)} (ours: all; built-ins: top 3 per family "
                                                "and budget on any problem raced before)")
            else:
                configs_b = configs
        problem.info["batch"] = args.batch
        pname = problem.name
        print(f"[{pname}] {problem.description}\n[{pname}] info: {json.dumps(problem.info)}", flush=True)
        earlier = merged_from.get("problems", {}).get(pname)
        progress_path = out / f"sampler_race.progress-{pname}.json"
        progress = saved_for_merge(progress_path, **draw) if args.merge and progress_path.is_file() else None
        if progress is not None:  # an interrupted run's finished settings of this problem count as seen
            earlier = {"info": {}, "all_runs": [], "investigation": None, **(earlier or {})}
            earlier["all_runs"] = earlier["all_runs"] + progress["rows"]
            earlier["info"] = {**earlier["info"], **{key: {**earlier["info"].get(key, {}), **progress["info"].get(key, {})}
                                                     for key in ("fitted_ladders", "fit_ladder_calls")}}
            print(f"[{pname}] --merge: {len(progress['rows'])} runs from the interrupted race in {progress_path}", flush=True)
        if earlier is not None:  # --merge: race only the settings this problem has not seen, keep the rest
            for key in ("fitted_ladders", "fit_ladder_calls"):  # the kept settings' rungs, for --confirm
                problem.info[key] = {**earlier["info"].get(key, {}), **problem.info.get(key, {})}
            seen = {(r["family"], r["setting"]) for r in earlier["all_runs"]}
            configs_b = [c for c in configs_b if (c.family, c.setting) not in seen]
            print(f"[{pname}] --merge: {len(configs_b)} new settings", flush=True)
        carried = progress["rows"] if progress is not None else []
        carried_seconds = progress["seconds"] if progress is not None else 0.0

        def save_progress(new_rows: List[Dict]) -> None:
            """This problem's finished settings so far, so that a stopped run loses at most one setting."""
            write_atomic(progress_path, json.dumps({
                **draw, "rows": carried + new_rows,
                "seconds": carried_seconds + time.perf_counter() - start,
                "info": {key: problem.info.get(key, {}) for key in ("fitted_ladders", "fit_ladder_calls")},
            }, separators=(",", ":")))

        # the fitted settings last: each fits its rungs at every budget (~30 min on 4,096 images), so a stopped run
        # has raced every built-in first (what is left can then only improve our side)
        configs_b = sorted(configs_b, key=lambda c: c.fitted)
        rows = (earlier["all_runs"] if earlier is not None else []) + race(problem, configs_b, args.budgets, save_progress)
        followup |= followup_settings(rows)
        investigation = earlier["investigation"] if earlier is not None else None
        if investigation is None and pname == "gaussian" and not args.quick:
            investigation = investigate_gaussian(problem, args.budgets)
        best = best_table(rows, args.budgets)
        verdicts = verdict(best, args.budgets)
        excluded = sorted({f"{r['family']} [{r['setting']}]" + (f" ({r['error']})" if r.get('error') else " (starts at t=%g)" % r['first_timestep'])
                           for r in rows if r.get("rms_error") is None or not r.get("start_ok", False)})
        results["problems"][pname] = {
            "description": problem.description,
            "info": problem.info,
            "best": {fam: {str(b): r for b, r in d.items()} for fam, d in best.items()},
            "verdict": verdicts,
            "investigation": investigation,
            "excluded": excluded,
            "all_runs": rows,
            "seconds": time.perf_counter() - start + carried_seconds,
        }
        print(f"[{pname}] {len(rows)} runs in {time.perf_counter() - start:.1f}s", flush=True)
        for v in verdicts:
            print(f"[{pname}] {v['budget']:>3} calls: ours {v['best_ours_rms']:.3e} ({v['best_ours']}) vs built-in "
                  f"{v['best_builtin_rms']:.3e} ({v['best_builtin']}) -> {v['verdict']}", flush=True)
        if keep_earlier:
            kept = out / f"sampler_race.before-{time.strftime('%Y%m%d-%H%M%S')}.json"
            os.replace(out / "sampler_race.json", kept)
            print(f"[sampler_race] the earlier results are kept as {kept}", flush=True)
            keep_earlier = False
        write_results(results, merged_from, out, t0)
        progress_path.unlink(missing_ok=True)


def write_results(results: Dict, merged_from: Dict, out: Path, t0: float) -> None:
    """Write the race so far (after every problem, so that an interrupted run keeps what it finished; ``--merge``
    then races only what is missing): with ``--merge``, the saved problems this run has not raced stay as they were,
    in their order, and the saved confirmation stays, naming the problems that gained settings since as stale."""
    results = dict(results)
    if merged_from:
        raced = dict(results["problems"])
        results["problems"] = {name: raced.pop(name, saved) for name, saved in merged_from["problems"].items()}
        results["problems"].update(raced)
        if "confirmation" in merged_from:
            confirmation = dict(merged_from["confirmation"])
            grown = {name for name, saved in merged_from["problems"].items()
                     if len(results["problems"][name]["all_runs"]) > len(saved["all_runs"])}
            stale = sorted(grown.union(confirmation.get("stale", [])).intersection(confirmation["problems"]))
            if stale:
                confirmation["stale"] = stale
            results["confirmation"] = confirmation
    results["seconds_total"] = time.perf_counter() - t0 + merged_from.get("seconds_total", 0.0)
    results["torch_threads"] = torch.get_num_threads()
    results["machine"] = platform.machine()
    results["command"] = " ".join(["python"] + sys.argv)
    if merged_from:
        results["command"] = f"{merged_from['command']} && {results['command']}"
    save_results(results, out)
    print(f"wrote {out}/sampler_race.{{json,md,png}} ({len(results['problems'])} problems, {results['seconds_total']:.0f}s)",
          flush=True)


def save_results(results: Dict, out: Path) -> None:
    """The summaries drawn from the runs, then the .json, .md and .png, each replaced whole."""
    results["fixed_settings"] = fixed_settings(results["problems"], results["budgets"])
    results["ladder_comparison"] = ladder_comparison(results["problems"], results["budgets"])
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "sampler_race.json", json.dumps(results, separators=(",", ":")))
    write_atomic(out / "sampler_race.md", markdown(results, results["budgets"]))
    write_atomic(out / "sampler_race.png", lambda staged: plot(results, results["budgets"], staged))


if __name__ == "__main__":
    main()
