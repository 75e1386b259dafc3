"""TrigAngleRKScheduler (seed 004 §3, SPEC §6): convergence order, accuracy per model call, API behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from diffusers_infoflow import GaussianDenoiser
from diffusers_infoflow.ablations import SEED004_TABLE2, ablation_row, steps_for_calls
from diffusers_infoflow.reference_solvers import sample_trig_angle
from diffusers_infoflow.schedulers import TrigAngleRKScheduler
from diffusers_infoflow.schedulers.scheduling_trig_angle_rk import (
    angle_from_logsnr,
    logsnr_from_angle,
)

from .scheduler_checks import SchedulerChecks, sample_loop

DATA_SHAPE = (1, 4, 4)
_gen = torch.Generator().manual_seed(0)
MEAN = 0.5 * torch.randn(DATA_SHAPE, generator=_gen)
VARIANCE = 0.01 + 0.99 * torch.rand(DATA_SHAPE, generator=_gen)


def _wide_table_betas(num_train_timesteps: int = 1000):
    """A training table covering η ∈ [1e-5, π/2 − 1e-3], so the model is exact almost up to both ends."""
    eta = torch.linspace(1e-5, math.pi / 2 - 1e-3, num_train_timesteps, dtype=torch.float64)
    alphas_cumprod = torch.cat([torch.ones(1, dtype=torch.float64), torch.cos(eta) ** 2])
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).tolist()


WIDE = {"trained_betas": _wide_table_betas(), "num_train_timesteps": 1000}


def exact_clean(x: torch.Tensor, start_angle: float) -> torch.Tensor:
    """The exact probability-flow map of N(MEAN, diag(VARIANCE)) data from angle `start_angle` to η = 0."""
    a, s = math.cos(start_angle), math.sin(start_angle)
    mean, var = MEAN.double(), VARIANCE.double()
    return mean + var.sqrt() * (x.double() - a * mean) / (a * a * var + s * s).sqrt()


def gaussian_model(scheduler, prediction_type="epsilon"):
    return GaussianDenoiser(MEAN, VARIANCE, scheduler.train_schedule, prediction_type=prediction_type)


def start_noise(batch=32, seed=1):
    return torch.randn((batch, *DATA_SHAPE), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def solve(scheduler, model, x, num_inference_steps):
    return sample_loop(scheduler, lambda z, t: model(z, t).sample, x, num_inference_steps)


def rms(a, b):
    return float(((a.double() - b.double()) ** 2).mean().sqrt())


# ---------------------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("solver,order,steps", [("euler", 1, (8, 16, 32)), ("rk2", 2, (6, 12, 24)), ("rk4", 4, (6, 12))])
def test_convergence_order_on_exact_gaussian_flow(solver, order, steps):
    scheduler = TrigAngleRKScheduler(**WIDE, solver=solver)
    model = gaussian_model(scheduler)
    x = start_noise(8)
    reference = exact_clean(x, scheduler.start_angle)
    errors = [rms(solve(scheduler, model, x, n), reference) for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.35 * order, (solver, errors, slope)


@pytest.mark.parametrize("solver", ["euler", "rk2", "rk4", "ddim"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction", "joint"])
def test_matches_functional_reference_solver(solver, prediction_type):
    scheduler = TrigAngleRKScheduler(**WIDE, solver=solver, prediction_type=prediction_type, step_spacing="uniform_logsnr")
    x = start_noise(4)
    out = solve(scheduler, gaussian_model(scheduler, prediction_type), x, 3)

    joint = gaussian_model(scheduler, "joint")
    lo, hi = scheduler.train_schedule.logsnr_range

    def pair_fn(z, eta):
        # the scheduler tells the model float32 timesteps (diffusers' convention)
        tau = scheduler.train_schedule.t_from_logsnr(logsnr_from_angle(torch.tensor(eta)).clamp(lo, hi)).float()
        eps, x0 = joint(z, tau).sample.chunk(2, dim=1)
        return x0, eps

    expected = sample_trig_angle(pair_fn, x, scheduler.angles, solver)
    # single-head conversions divide by cos η_q ≈ 1e-3 at the start, so allow float64 round-off times 1e3
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_rk4_beats_euler_and_diffusers_ddim_at_equal_model_calls():
    calls = 20
    rk4 = TrigAngleRKScheduler.from_config(DDPMScheduler().config, solver="rk4")
    euler = TrigAngleRKScheduler.from_config(DDPMScheduler().config, solver="euler")
    ddim = DDIMScheduler(timestep_spacing="trailing", clip_sample=False)
    model = gaussian_model(rk4)
    x = start_noise()
    reference = exact_clean(x, rk4.start_angle)  # DDIM "trailing" starts at the same level, τ = 999
    err_rk4 = rms(solve(rk4, model, x, steps_for_calls(rk4, calls)), reference)
    err_euler = rms(solve(euler, model, x, calls), reference)
    err_ddim = rms(solve(ddim, model, x, calls), reference)
    assert err_rk4 < 0.5 * err_euler and err_rk4 < 0.1 * err_ddim, (err_rk4, err_euler, err_ddim)


@pytest.mark.parametrize("table", [WIDE, {"beta_schedule": "linear"}])
def test_uniform_eta_default_spacing_is_most_accurate_for_rk4(table):
    assert TrigAngleRKScheduler().config.step_spacing == "uniform_eta"
    x = start_noise()
    errors = {}
    for spacing in ("uniform_eta", "uniform_logsnr", "karras"):
        scheduler = TrigAngleRKScheduler(**table, solver="rk4", step_spacing=spacing)
        errors[spacing] = rms(solve(scheduler, gaussian_model(scheduler), x, 5), exact_clean(x, scheduler.start_angle))
    assert min(errors, key=errors.get) == "uniform_eta", errors


# ---------------------------------------------------------------------------------------- behaviour


def test_model_is_told_its_entropy_matched_training_timestep():
    scheduler = TrigAngleRKScheduler.from_config(DDPMScheduler().config, solver="rk4")
    scheduler.set_timesteps(6)
    assert len(scheduler.timesteps) == 4 * 6 and scheduler.timesteps.dtype == torch.float32
    clean_angle, noisy_angle = scheduler.train_angle_range
    inside = (scheduler._stage_angle >= clean_angle) & (scheduler._stage_angle <= noisy_angle)
    abar = scheduler.train_schedule.alpha(scheduler.timesteps[inside].double()) ** 2
    torch.testing.assert_close(abar, torch.cos(scheduler._stage_angle[inside]) ** 2, rtol=1e-5, atol=1e-7)
    # stages beyond the clean end are told the cleanest training timestep
    assert (scheduler.timesteps[~inside] == 0).all() and scheduler.angles[-1] == 0
    assert math.isclose(scheduler.start_angle, noisy_angle)
    torch.testing.assert_close(angle_from_logsnr(logsnr_from_angle(torch.tensor(0.3))), torch.tensor(0.3, dtype=torch.float64))


def test_joint_output_consumes_both_halves():
    scheduler = TrigAngleRKScheduler(**WIDE, solver="rk2", prediction_type="joint")
    joint = gaussian_model(scheduler, "joint")
    x = start_noise(4)
    exact = solve(scheduler, joint, x, 4)
    epsilon_only = solve(TrigAngleRKScheduler(**WIDE, solver="rk2"), gaussian_model(scheduler), x, 4)
    torch.testing.assert_close(exact, epsilon_only, rtol=1e-6, atol=1e-6)
    for half in (0, 1):  # a wrong ε half or a wrong x0 half must change the result

        def corrupted(z, t, half=half):
            out = joint(z, t).sample.clone()
            out[:, half] += 0.1
            return out

        assert rms(sample_loop(scheduler, corrupted, x, 4), exact) > 1e-3


def test_begin_index_resumes_a_multistage_run():
    scheduler = TrigAngleRKScheduler(**WIDE, solver="rk4")
    model = gaussian_model(scheduler)
    x = start_noise(2)
    scheduler.set_timesteps(5)
    z, midway = x, None
    for i, t in enumerate(scheduler.timesteps):
        if i == 2 * scheduler.order:
            midway = z
        z = scheduler.step(model(z, t).sample, t, z).prev_sample
    for begin in (True, False):  # set_begin_index, or found from the first timestep
        scheduler.set_timesteps(5)
        if begin:
            scheduler.set_begin_index(2 * scheduler.order)
        w = midway
        for t in scheduler.timesteps[2 * scheduler.order :]:
            w = scheduler.step(model(w, t).sample, t, w).prev_sample
        torch.testing.assert_close(w, z, rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiple of order"):
        scheduler.set_begin_index(1)


def test_start_at_exactly_half_pi():
    scheduler = TrigAngleRKScheduler(**WIDE, solver="rk4", start_angle=math.pi / 2)
    x = start_noise()
    out = solve(scheduler, gaussian_model(scheduler), x, 10)
    # x = ε at η = π/2, so the exact answer is the standardised map with α = 0
    assert rms(out, exact_clean(x, math.pi / 2)) < 1e-3


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="solver"):
        TrigAngleRKScheduler(solver="rk3")
    with pytest.raises(ValueError, match="step_spacing"):
        TrigAngleRKScheduler(step_spacing="leading")
    with pytest.raises(ValueError, match="prediction_type"):
        TrigAngleRKScheduler(prediction_type="flow")
    for angle in (0.0, -0.1, 1.6, math.pi):
        with pytest.raises(ValueError, match="start_angle"):
            TrigAngleRKScheduler(start_angle=angle)
    with pytest.raises(ValueError, match="π/2"):
        TrigAngleRKScheduler(step_spacing="karras", start_angle=math.pi / 2)
    with pytest.raises(ValueError, match="num_inference_steps"):
        TrigAngleRKScheduler(step_spacing="karras").set_timesteps(1)
    scheduler = TrigAngleRKScheduler(prediction_type="joint")
    scheduler.set_timesteps(3)
    x = torch.zeros(2, 3, 4, 4)
    t = scheduler.timesteps[0]
    for channels in (3, 5):
        with pytest.raises(ValueError, match="2C channels"):
            scheduler.step(torch.zeros(2, channels, 4, 4), t, x)
    plain = TrigAngleRKScheduler()
    plain.set_timesteps(3)
    with pytest.raises(ValueError, match="no learned variance or joint head"):
        plain.step(torch.zeros(2, 6, 4, 4), plain.timesteps[0], x)


def test_ablation_rows_build_their_schedulers():
    assert SEED004_TABLE2[0].name == "ddim" and ablation_row("ours").needs_joint_model
    for row in SEED004_TABLE2:
        scheduler = row.make_scheduler()
        if row.needs_joint_model:
            assert scheduler.config.prediction_type == "joint"
        if row.train_schedule == "trig":
            assert scheduler.alphas_cumprod[499] == pytest.approx(math.cos(500 / 1000 * math.pi / 2) ** 2, rel=1e-5)
    rk4 = ablation_row("ours").make_scheduler()
    assert steps_for_calls(rk4, 20) == 5
    with pytest.raises(ValueError, match="multiple"):
        steps_for_calls(rk4, 10)
    with pytest.raises(ValueError, match="unknown ablation row"):
        ablation_row("ddpm")


# ---------------------------------------------------------------------------------------- common checks


class TestTrigAngleRK2EpsilonCommon(SchedulerChecks):
    scheduler_class = TrigAngleRKScheduler

    def default_config(self):
        return {"solver": "rk2", "prediction_type": "epsilon"}

    def make_model(self, scheduler):
        model = GaussianDenoiser(torch.zeros(1, 8, 8), torch.full((1, 8, 8), 0.3), scheduler.train_schedule)
        return lambda x, t: model(x, t).sample


class TestTrigAngleRK4JointCommon(SchedulerChecks):
    scheduler_class = TrigAngleRKScheduler
    num_inference_steps = 4  # 16 model calls

    def default_config(self):
        return {"solver": "rk4", "prediction_type": "joint"}

    def make_model(self, scheduler):
        model = GaussianDenoiser(torch.zeros(1, 8, 8), torch.full((1, 8, 8), 0.3), scheduler.train_schedule, "joint")
        return lambda x, t: model(x, t).sample
