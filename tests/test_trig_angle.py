"""TrigAngleRKScheduler (seed 004 §3): convergence order, accuracy per model call, API behaviour,
the multistep exponential integrator and the x̂0 final step."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, LMSDiscreteScheduler

from diffusers_infoflow import GaussianDenoiser
from diffusers_infoflow.experiments.ablations import SEED004_TABLE2, ablation_row
from diffusers_infoflow.sampling import steps_for_calls
from diffusers_infoflow.schedulers import S2NGeneralizedScheduler, TrigAngleRKScheduler
from diffusers_infoflow.schedulers.scheduling_trig_angle_rk import (
    angle_from_logsnr,
    lagrange_integral_weights,
    logsnr_from_angle,
)
from diffusers_infoflow.testing import sample_trig_angle, sample_trig_multistep

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


def exact_target(scheduler, x: torch.Tensor, model=None) -> torch.Tensor:
    """x* = x̂0(Φ_{start→η_clean}(x)): the exact ODE from the start to the table's cleanest level (τ = 0), then
    the exact x̂0 there: what every solver converges to with `final_step="x0"` (start = the noisiest level)."""
    model = gaussian_model(scheduler) if model is None else model
    schedule = scheduler.train_schedule
    z0 = model.ode_solution(x, schedule.t_max, 0)
    return model.posterior_mean(z0, schedule.alpha(0.0).view(1, 1, 1, 1), schedule.sigma(0.0).view(1, 1, 1, 1))


LINEAR = {"beta_schedule": "linear"}


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
    scheduler = TrigAngleRKScheduler(**WIDE, solver=solver, step_spacing="angle")
    model = gaussian_model(scheduler)
    x = start_noise(8)
    reference = exact_target(scheduler, x)
    errors = [rms(solve(scheduler, model, x, n), reference) for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.35 * order, (solver, errors, slope)


def test_rk4_converges_past_the_old_clean_end_floor():
    """The last step used to run RK stages below the cleanest training level (the model told τ = 0 but fed
    inputs of other levels): RK4 stalled at ≈ 7e-4 on the linear table. Ending with x̂0 at τ = 0 removes it."""
    x = start_noise(8)
    # pixel variances down to 1e-4 (= σ² at τ = 0), like MNIST's: x̂0 still moves below the table's clean end
    variance = torch.logspace(-4, 0, 16, dtype=torch.float64).view(DATA_SHAPE)
    errors = {}
    for final_step in ("x0", "solver"):
        scheduler = TrigAngleRKScheduler(**LINEAR, solver="rk4", step_spacing="logsnr", final_step=final_step)
        model = GaussianDenoiser(MEAN, variance, scheduler.train_schedule)
        reference = exact_target(scheduler, x, model)
        errors[final_step] = [rms(solve(scheduler, model, x, n), reference) for n in (13, 50)]
    assert TrigAngleRKScheduler(solver="rk4").num_model_calls(50) == 197
    assert errors["x0"][1] < 1e-5 and errors["x0"][1] < 0.05 * errors["x0"][0], errors  # 197 calls
    assert errors["solver"][1] > 10 * errors["x0"][1], errors  # the old ending keeps its floor

def _reference_pair_fn(scheduler):
    joint = gaussian_model(scheduler, "joint")
    lo, hi = scheduler.train_schedule.logsnr_range

    def pair_fn(z, eta):
        # the scheduler tells the model float32 timesteps (diffusers' convention)
        tau = scheduler.train_schedule.t_from_logsnr(logsnr_from_angle(torch.tensor(eta)).clamp(lo, hi)).float()
        eps, x0 = joint(z, tau).sample.chunk(2, dim=1)
        return x0, eps

    return pair_fn


def _grid_pair_fn(scheduler):
    """The reference's model at a one-call-per-step scheduler's grid angles, told the very timesteps the scheduler
    tells it: polynomials in u over λ-uniform rungs have weights ~1e3, which would amplify a timestep re-derived
    one float32 ulp away into 1e-1 differences."""
    joint = gaussian_model(scheduler, "joint")
    told = {float(eta): tau for eta, tau in zip(scheduler.angles, scheduler.timesteps)}

    def pair_fn(z, eta):
        eps, x0 = joint(z, told[float(eta)]).sample.chunk(2, dim=1)
        return x0, eps

    return pair_fn


@pytest.mark.parametrize("solver", ["euler", "rk2", "rk4", "ddim"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction", "joint"])
@pytest.mark.parametrize("final_step", ["x0", "solver"])
def test_matches_functional_reference_solver(solver, prediction_type, final_step):
    scheduler = TrigAngleRKScheduler(**WIDE, solver=solver, prediction_type=prediction_type, step_spacing="logsnr", final_step=final_step)
    x = start_noise(4)
    out = solve(scheduler, gaussian_model(scheduler, prediction_type), x, 3)
    assert len(scheduler.timesteps) == scheduler.num_model_calls(3)

    expected = sample_trig_angle(_reference_pair_fn(scheduler), x, scheduler.angles, solver, final_x0=final_step == "x0")
    # single-head conversions divide by cos η_q ≈ 1e-3 at the start, so allow float64 round-off times 1e3
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_rk4_beats_euler_and_diffusers_ddim_at_equal_model_calls():
    calls = 21  # RK4: 5 steps of 4 calls, then the x̂0 call
    rk4 = TrigAngleRKScheduler.from_config(DDPMScheduler(clip_sample=False).config, solver="rk4")
    euler = TrigAngleRKScheduler.from_config(DDPMScheduler(clip_sample=False).config, solver="euler")
    ddim = DDIMScheduler(timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=True)
    model = gaussian_model(rk4)
    x = start_noise()
    reference = exact_target(rk4, x)  # DDIM "trailing" starts at the same level, τ = 999, and ends with x̂0 at τ = 0
    err_rk4 = rms(solve(rk4, model, x, steps_for_calls(rk4, calls)), reference)
    err_euler = rms(solve(euler, model, x, calls), reference)
    err_ddim = rms(solve(ddim, model, x, calls), reference)
    assert err_rk4 < 0.5 * err_euler and err_rk4 < 0.1 * err_ddim, (err_rk4, err_euler, err_ddim)


@pytest.mark.parametrize("solver,steps", [("rk4", 13), ("rk2", 10), ("multistep", 20), ("euler", 20), ("ddim", 20)])
def test_default_spacing_is_the_most_accurate(solver, steps):
    """`step_spacing=None` picks logsnr for rk2/rk4/multistep and angle for euler/ddim: the most
    accurate of the three on the linear table with pixel variances spread over 1e-4..1 (like MNIST's)."""
    default = TrigAngleRKScheduler(solver=solver).step_spacing
    assert default == ("angle" if solver in ("euler", "ddim") else "logsnr")
    x = start_noise()
    variance = torch.logspace(-4, 0, 16, dtype=torch.float64).view(DATA_SHAPE)
    errors = {}
    for spacing in ("angle", "logsnr", "karras", "linspace"):
        scheduler = TrigAngleRKScheduler(**LINEAR, solver=solver, step_spacing=spacing)
        model = GaussianDenoiser(MEAN, variance, scheduler.train_schedule)
        errors[spacing] = rms(solve(scheduler, model, x, steps), exact_target(scheduler, x, model))
    assert min(errors, key=errors.get) == default, errors


# ---------------------------------------------------------------------------------------- multistep


def test_lagrange_integral_weights_are_exact():
    """∫ P(log v) dv over [a, b] for P of degree < k is reproduced exactly by k nodes; order 2 in closed form."""
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, 4):
        nodes = [0.3, 0.9, 2.5, 4.0][:k]
        for a, b in ((2.5, 7.0), (7.0, 2.5), (0.05, 0.3)):
            weights = lagrange_integral_weights(nodes, a, b)
            coeffs = rng.normal(size=k)  # P(t) = Σ c_m t^m, t = log v
            values = [np.polynomial.polynomial.polyval(math.log(v), coeffs) for v in nodes]
            x, w = np.polynomial.legendre.leggauss(40)
            s = 0.5 * (math.log(b) - math.log(a)) * x + 0.5 * (math.log(a) + math.log(b))
            exact = 0.5 * (math.log(b) - math.log(a)) * np.sum(w * np.exp(s) * np.polynomial.polynomial.polyval(s, coeffs))
            assert math.isclose(sum(wj * fj for wj, fj in zip(weights, values)), exact, rel_tol=1e-12, abs_tol=1e-13)
            assert math.isclose(sum(weights), b - a, rel_tol=1e-12)
    # two nodes (t0 = log v0 at the step start a, t1 = log v1): P = f0 + (f0 − f1)/(t0 − t1)·(t − t0), and
    # ∫_a^b (t − t0) dv = b·(log b − t0) − (b − a) with t0 = log a
    v1, a, b = 0.4, 1.0, 3.0
    w0, w1 = lagrange_integral_weights([a, v1], a, b)
    r = (b * math.log(b / a) - (b - a)) / (math.log(a) - math.log(v1))
    assert math.isclose(w0, (b - a) + r, rel_tol=1e-13) and math.isclose(w1, -r, rel_tol=1e-13)
    with pytest.raises(ValueError, match="positive"):
        lagrange_integral_weights([0.0, 1.0], 1.0, 2.0)


def test_lagrange_integral_weights_linear_are_exact():
    """interpolation='linear': ∫ P(v) dv for P of degree < k is reproduced by k nodes, down to v = 0; Simpson's rule."""
    rng = np.random.default_rng(1)
    for k in (1, 2, 3, 4):
        nodes = [0.3, 0.9, 2.5, 4.0][:k]
        for a, b in ((2.5, 7.0), (7.0, 2.5), (0.3, 0.0), (1e-6, 300.0)):
            coeffs = rng.normal(size=k)
            values = [np.polynomial.polynomial.polyval(v, coeffs) for v in nodes]
            antiderivative = np.polynomial.polynomial.polyint(coeffs)
            exact = np.polynomial.polynomial.polyval(b, antiderivative) - np.polynomial.polynomial.polyval(a, antiderivative)
            weights = lagrange_integral_weights(nodes, a, b, "linear")
            assert math.isclose(sum(wj * fj for wj, fj in zip(weights, values)), exact, rel_tol=1e-11, abs_tol=1e-11)
    # three equally spaced nodes over their own span: Simpson's 1/3, 4/3, 1/3 (times the half-width)
    assert np.allclose(lagrange_integral_weights([1.0, 2.0, 3.0], 1.0, 3.0, "linear"), [1 / 3, 4 / 3, 1 / 3], rtol=1e-13)
    with pytest.raises(ValueError, match="non-negative"):
        lagrange_integral_weights([-1.0, 1.0], 1.0, 2.0, "linear")
    with pytest.raises(ValueError, match=re.escape("interpolation must be one of ('logsnr', 'linear'), got 'cubic'")):
        lagrange_integral_weights([1.0, 2.0], 1.0, 2.0, "cubic")


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_linear_interpolation_in_the_eps_form_is_diffusers_lms(order):
    """ε form, polynomial in ρ = σ̃, no corrector: diffusers' LMSDiscreteScheduler (linear multistep in σ̃) on the same
    σ̃ ladder, step for step to round-off, except the last step into σ̃ = 0, where ours is first order (x̂0)."""
    lms = LMSDiscreteScheduler(beta_schedule="linear")
    lms.set_timesteps(10)
    ours = TrigAngleRKScheduler(**LINEAR, solver="multistep", solver_order=order, predict_x0=False, use_corrector=False,
                                interpolation="linear", max_step_ratio=None)
    ours.set_timesteps(timesteps=lms.timesteps.tolist())
    lms.sigmas = torch.tan(ours.angles)  # ours, in float64 (diffusers' float32 σ̃ would set a 1e-5 floor)
    model = gaussian_model(ours)
    x = start_noise(4)
    x_lms, x_ours = x * math.sqrt(float(lms.sigmas[0]) ** 2 + 1), x.clone()  # LMS's state is x/α
    for i, t in enumerate(lms.timesteps):
        x_lms = lms.step(model(lms.scale_model_input(x_lms, t), t).sample, t, x_lms, order=order).prev_sample
        x_ours = ours.step(model(x_ours, ours.timesteps[i]).sample, ours.timesteps[i], x_ours).prev_sample
        if i < len(lms.timesteps) - 1:
            torch.testing.assert_close(x_ours / math.cos(float(ours.angles[i + 1])), x_lms, rtol=1e-13, atol=1e-13)
    # the last step: LMS integrates its polynomial to σ̃ = 0, ours returns x̂0 (the same for order 1)
    assert (rms(x_ours, x_lms) < 1e-14) == (order == 1)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction", "joint"])
@pytest.mark.parametrize("predict_x0", [True, False])
def test_multistep_order_one_is_ddim(prediction_type, predict_x0):
    x = start_noise(4)
    runs = []
    for kw in ({"solver": "ddim"}, {"solver": "multistep", "solver_order": 1, "predict_x0": predict_x0}):
        scheduler = TrigAngleRKScheduler(**LINEAR, **kw, step_spacing="logsnr", prediction_type=prediction_type)
        runs.append(solve(scheduler, gaussian_model(scheduler, prediction_type), x, 7))
        assert len(scheduler.timesteps) == 7 and scheduler.order == 1
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("predict_x0", [True, False])
@pytest.mark.parametrize("corrector", [False, True])
@pytest.mark.parametrize("prediction_type", ["epsilon", "joint"])
@pytest.mark.parametrize("lower_order_final", [False, True])
@pytest.mark.parametrize("interpolation", ["logsnr", "linear"])
def test_multistep_matches_functional_reference(order, predict_x0, corrector, prediction_type, lower_order_final, interpolation):
    # the reference keeps every node; on these λ-uniform rungs the guard drops nodes only for polynomials in u (ρ)
    ratio = None if interpolation == "linear" else 2.0
    scheduler = TrigAngleRKScheduler(**LINEAR, solver="multistep", solver_order=order, predict_x0=predict_x0, use_corrector=corrector,
                                     prediction_type=prediction_type, lower_order_final=lower_order_final, interpolation=interpolation,
                                     max_step_ratio=ratio)
    x = start_noise(4)
    out = solve(scheduler, gaussian_model(scheduler, prediction_type), x, 8)
    expected = sample_trig_multistep(_grid_pair_fn(scheduler), x, scheduler.angles, order, predict_x0, corrector,
                                     lower_order_final, interpolation)
    # float64 round-off, times weights ~1e3 for polynomials of order 4 in u (3e-8 measured)
    torch.testing.assert_close(out, expected, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("predict_x0", [True, False])
@pytest.mark.parametrize("corrector", [False, True])
def test_max_step_ratio_none_keeps_every_node(order, predict_x0, corrector):
    """On uniform-in-time rungs to the clean end the last steps are long in log-SNR: the default guard drops nodes
    there (so differs from the reference, which keeps them all); `max_step_ratio=None` matches the reference."""
    x = start_noise(4)
    runs = {}
    for ratio in (2.0, None):
        scheduler = TrigAngleRKScheduler(**LINEAR, solver="multistep", solver_order=order, predict_x0=predict_x0,
                                         use_corrector=corrector, step_spacing="linspace", max_step_ratio=ratio)
        runs[ratio] = solve(scheduler, gaussian_model(scheduler), x, 8)
    expected = sample_trig_multistep(_reference_pair_fn(scheduler), x, scheduler.angles, order, predict_x0, corrector)
    # the long extrapolated steps amplify the reference's float32 timestep rounding (see above), up to 3e-5
    torch.testing.assert_close(runs[None], expected, rtol=1e-4, atol=1e-4)
    if predict_x0 or corrector:  # the ε form's predictor has no guard (its weight dρ sits at the step's start)
        assert rms(runs[2.0], expected) > 1e-2, rms(runs[2.0], expected)
    else:
        torch.testing.assert_close(runs[2.0], runs[None], rtol=0, atol=0)


def test_max_step_ratio_none_refuses_a_grid_from_minus_infinite_logsnr(tmp_path):
    """Without the guard a node at λ = −∞ would enter the polynomial: refused where the grid is built, before any
    model call; a finite ratio (or order 1) keeps working there. numpy scalars are stored as floats."""
    flow = {"noise_family": "flow", "prediction_type": "flow_prediction", "solver": "multistep"}
    with pytest.raises(ValueError, match=re.escape("max_step_ratio=None keeps every node, and this grid starts at λ = −∞")):
        TrigAngleRKScheduler(**flow, max_step_ratio=None).set_timesteps(8)
    with pytest.raises(ValueError, match="grid starts at λ = −∞"):
        TrigAngleRKScheduler(**LINEAR, solver="multistep", max_step_ratio=None, start_angle=math.pi / 2).set_timesteps(8)
    TrigAngleRKScheduler(**flow, max_step_ratio=None, solver_order=1).set_timesteps(8)
    for predict_x0 in (True, False):  # ρ = ∞ there in the ε form; u = 0 in the x0 form, before unbounded steps in u
        with pytest.raises(ValueError, match="grid starts at λ = −∞"):
            TrigAngleRKScheduler(**flow, max_step_ratio=None, predict_x0=predict_x0, interpolation="linear").set_timesteps(8)
    TrigAngleRKScheduler(**flow).set_timesteps(8)
    stored = TrigAngleRKScheduler(solver="multistep", max_step_ratio=np.float32(3.0))
    stored.save_pretrained(tmp_path)
    assert TrigAngleRKScheduler.from_pretrained(tmp_path).config.max_step_ratio == 3.0


@pytest.mark.parametrize("order", [2, 3, 4])
def test_the_guard_measures_steps_in_the_polynomials_variable(order):
    """On λ-uniform rungs every step is as long as the last in log-SNR but e^{h/2} times longer in u: with
    `interpolation="linear"` the guard must drop nodes there (to order 1 at 10 steps, where u grows ×e a step),
    where keeping them extrapolates the polynomial in u and is off by orders of magnitude."""
    x = start_noise(16)
    errors = {}
    for name, kw in {"ddim": {"solver_order": 1}, "guarded": {"interpolation": "linear"},
                     "every node": {"interpolation": "linear", "max_step_ratio": None}}.items():
        scheduler = TrigAngleRKScheduler(**LINEAR, solver="multistep", step_spacing="logsnr", **{"solver_order": order, **kw})
        errors[name] = rms(solve(scheduler, gaussian_model(scheduler), x, 10), exact_target(scheduler, x))
    assert errors["guarded"] == pytest.approx(errors["ddim"], rel=1e-9), errors
    assert errors["every node"] > 4 * errors["guarded"], errors


@pytest.mark.parametrize("order", [2, 3, 4])
def test_linear_interpolation_samples_a_flow_model_from_pure_noise(order):
    """A flow-matching grid starts at u = 0 and its steps grow without bound in u: the guard keeps a polynomial in u
    about as accurate there as one in log-SNR (at 10 calls on the exact Gaussian flow, 0.033 against 0.018–0.034;
    with the guard measuring log-SNR gaps 0.024–0.14, and 15.8 at order 2 with every node kept)."""
    flow = {"noise_family": "flow", "prediction_type": "flow_prediction", "solver": "multistep", "solver_order": order}
    x = start_noise(16)
    errors = []
    for interpolation in ("logsnr", "linear"):
        scheduler = TrigAngleRKScheduler(**flow, interpolation=interpolation)
        errors.append(rms(solve(scheduler, GaussianDenoiser(MEAN, VARIANCE, scheduler.interface), x, 10), exact_clean(x, math.pi / 2)))
    assert errors[1] < 2.5 * errors[0] and errors[1] < 0.05, errors


def test_lower_order_final_lowers_only_the_last_steps():
    """Step i of N has order at most N − 1 − i: three steps are DDIM's; on longer runs only the end differs."""
    x = start_noise(4)
    kw = {**LINEAR, "solver": "multistep", "step_spacing": "logsnr"}
    ddim = TrigAngleRKScheduler(**kw, solver_order=1)
    lowered = TrigAngleRKScheduler(**kw, lower_order_final=True)
    model = gaussian_model(ddim)
    torch.testing.assert_close(solve(lowered, model, x, 3), solve(ddim, model, x, 3), rtol=1e-12, atol=1e-12)
    full = TrigAngleRKScheduler(**kw)
    states = {}
    for name, scheduler in (("full", full), ("lowered", lowered)):
        scheduler.set_timesteps(10)
        z, states[name] = x.clone(), []
        for t in scheduler.timesteps:
            z = scheduler.step(model(z, t).sample, t, z).prev_sample
            states[name].append(z)
    # steps 0..6 are order 3 in both (the last nodes are the same); step 7 has order 2, step 8 order 1
    for i in range(7):
        torch.testing.assert_close(states["lowered"][i], states["full"][i], rtol=0, atol=0)
    assert rms(states["lowered"][7], states["full"][7]) > 1e-6


@pytest.mark.parametrize(
    "order,predict_x0,corrector,steps,least,interpolation",
    [
        (2, True, False, (20, 40, 80), 1.7, "logsnr"),  # measured 2.05
        (2, False, False, (20, 40, 80), 1.7, "logsnr"),  # 1.99
        (3, True, False, (20, 40, 80), 2.6, "logsnr"),  # 4.1 (λ-uniform steps: better than 3 here)
        (3, False, False, (20, 40, 80), 2.6, "logsnr"),  # 3.9
        # the corrector's error changes sign near 100 steps (order 2): the asymptotic range starts later
        (2, True, True, (320, 640, 1280), 1.7, "logsnr"),  # 1.88
        (3, True, True, (40, 80, 160), 2.6, "logsnr"),  # 3.6
        (3, True, True, (160, 320, 640), 2.6, "logsnr"),  # 3.9, down to 2e-9: no float32-timestep floor
        (4, True, False, (20, 40, 80), 3.3, "logsnr"),  # 3.89
        (4, False, False, (20, 40, 80), 3.3, "logsnr"),  # 3.59
        # polynomials in u (ρ) itself: far larger errors on these λ-uniform steps, the order still holds
        (2, True, False, (20, 40, 80), 1.7, "linear"),  # 2.39
        (2, False, False, (20, 40, 80), 1.7, "linear"),  # 1.85
        (3, True, False, (20, 40, 80), 2.6, "linear"),  # 3.41
        (4, True, False, (40, 80, 160), 3.3, "linear"),  # 4.50
    ],
)
def test_multistep_convergence_order(order, predict_x0, corrector, steps, least, interpolation):
    """Fitted order on the exact Gaussian flow (linear table, logsnr), in the asymptotic range."""
    scheduler = TrigAngleRKScheduler(**LINEAR, solver="multistep", solver_order=order, predict_x0=predict_x0,
                                     use_corrector=corrector, interpolation=interpolation)
    model = gaussian_model(scheduler)
    x = start_noise(8)
    reference = exact_target(scheduler, x)
    errors = [rms(solve(scheduler, model, x, n), reference) for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert slope > least, (errors, slope)


def test_multistep_beats_rk4_and_ddim_at_equal_model_calls():
    x = start_noise()
    errors = {}
    for name, kw, steps in (("multistep", {"solver": "multistep"}, 21), ("rk4", {"solver": "rk4"}, 6), ("ddim", {"solver": "ddim"}, 21)):
        scheduler = TrigAngleRKScheduler(**LINEAR, **kw)
        assert scheduler.num_model_calls(steps) == 21
        errors[name] = rms(solve(scheduler, gaussian_model(scheduler), x, steps), exact_target(scheduler, x))
    assert errors["multistep"] < 0.5 * errors["rk4"] and errors["multistep"] < 0.01 * errors["ddim"], errors


@pytest.mark.parametrize("kw", [{"solver": "multistep"}, {"solver": "rk4"}, {"solver": "rk2", "final_step": "solver"}])
def test_ddpm_pipeline_loop_and_step_index(kw):
    """diffusers' own DDPMPipeline drives the scheduler: one `step` per entry of `timesteps`, the step index
    advancing by one each call, and the same result as the plain loop."""
    scheduler = TrigAngleRKScheduler(**LINEAR, **kw, prediction_type="epsilon")
    model = GaussianDenoiser(MEAN, VARIANCE, scheduler.train_schedule)
    pipe = DDPMPipeline(unet=model, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (2, 4, 4, 1) and np.isfinite(images).all()
    assert scheduler.step_index == len(scheduler.timesteps) == scheduler.num_model_calls(4)

    scheduler.set_timesteps(4)
    x = start_noise(2)
    for i, t in enumerate(scheduler.timesteps):
        x = scheduler.step(model(x, t).sample, t, x).prev_sample
        assert scheduler.step_index == i + 1
    with pytest.raises(ValueError, match="model calls"):
        scheduler.step(model(x, t).sample, t, x)


def test_multistep_begin_index_and_start_at_half_pi():
    x = start_noise()
    assert TrigAngleRKScheduler(solver="multistep", start_angle=math.pi / 2).step_spacing == "angle"
    for predict_x0 in (True, False):  # both forms stay finite and as accurate from λ = −∞, float32 too
        errors = []
        for start in (math.pi / 2, None):
            scheduler = TrigAngleRKScheduler(**WIDE, solver="multistep", predict_x0=predict_x0, step_spacing="angle", start_angle=start)
            errors.append(rms(solve(scheduler, gaussian_model(scheduler), x, 40), exact_clean(x, scheduler.start_angle)))
        assert errors[0] < 5e-3 and errors[0] < 1.2 * errors[1], (predict_x0, errors)
        scheduler = TrigAngleRKScheduler(**WIDE, solver="multistep", predict_x0=predict_x0, start_angle=math.pi / 2)
        out = solve(scheduler, gaussian_model(scheduler), x.float(), 40)
        assert torch.isfinite(out).all() and rms(out, exact_clean(x, math.pi / 2)) < 5e-3
    # a run resumed from its 3rd call (set_begin_index) restarts the multistep history there
    scheduler = TrigAngleRKScheduler(**LINEAR, solver="multistep")
    model = gaussian_model(scheduler)
    scheduler.set_timesteps(10)
    z = start_noise(2)
    for t in scheduler.timesteps[:3]:
        z = scheduler.step(model(z, t).sample, t, z).prev_sample
    scheduler.set_timesteps(10)
    scheduler.set_begin_index(3)
    for t in scheduler.timesteps[3:]:
        z = scheduler.step(model(z, t).sample, t, z).prev_sample
    assert torch.isfinite(z).all()


# ---------------------------------------------------------------------------------------- behaviour


def test_model_is_told_its_entropy_matched_training_timestep():
    scheduler = TrigAngleRKScheduler.from_config(DDPMScheduler(clip_sample=False).config, solver="rk4", step_spacing="angle")
    scheduler.set_timesteps(6)
    # 5 RK4 steps down to the cleanest training level, then the x̂0 call there
    assert len(scheduler.timesteps) == 4 * 5 + 1 == scheduler.num_model_calls(6) and scheduler.timesteps.dtype == torch.float32
    clean_angle, noisy_angle = scheduler.train_angle_range
    assert math.isclose(float(scheduler.angles[-2]), clean_angle) and scheduler.angles[-1] == 0
    assert scheduler.timesteps[0] == 999 and (scheduler.timesteps[-2:] == 0).all()  # exactly the table's ends
    abar = scheduler.train_schedule.alpha(scheduler.timesteps.double()) ** 2
    torch.testing.assert_close(abar, torch.cos(scheduler._stage_angle) ** 2, rtol=1e-5, atol=1e-7)
    # grid points (each step's first stage) sit exactly on the level of the float32 timestep the model is told
    first = scheduler._call_stage == 0
    assert torch.equal(scheduler._stage_angle[first], scheduler._stage_query_angle[first])
    assert torch.equal(scheduler.angles[:-1], scheduler._stage_angle[first])
    # seed 004 as written: stages beyond the clean end are told the cleanest training timestep
    paper = TrigAngleRKScheduler.from_config(DDPMScheduler(clip_sample=False).config, solver="rk4", step_spacing="angle", final_step="solver")
    paper.set_timesteps(6)
    assert len(paper.timesteps) == 4 * 6 == paper.num_model_calls(6)
    inside = (paper._stage_angle >= clean_angle) & (paper._stage_angle <= noisy_angle)
    assert (paper.timesteps[~inside] == 0).all() and (~inside).sum() >= 1
    torch.testing.assert_close(paper.angles, torch.linspace(noisy_angle, 0, 7, dtype=torch.float64))
    # linspace: the model is told τ = 999, 749.25, ..., 0 (diffusers' linspace), then x̂0 at τ = 0
    linear_t = TrigAngleRKScheduler.from_config(DDPMScheduler(clip_sample=False).config, solver="multistep", step_spacing="linspace")
    linear_t.set_timesteps(5)
    torch.testing.assert_close(linear_t.timesteps, torch.linspace(999, 0, 5), rtol=0, atol=1e-3)
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


@pytest.mark.parametrize("solver", ["euler", "rk4", "multistep"])
def test_clip_sample_clamps_x0_and_keeps_the_pair_consistent(solver):
    scheduler = TrigAngleRKScheduler(**LINEAR, solver=solver, clip_sample=True, clip_sample_range=0.5)
    model = gaussian_model(scheduler)
    x = 3 * start_noise(8)  # far from the data: unclamped x̂0 leaves [-0.5, 0.5]
    scheduler.set_timesteps(4)
    query = float(scheduler._stage_query_angle[0])
    raw = model(x, scheduler.timesteps[0]).sample
    level = float(logsnr_from_angle(torch.tensor(query)))
    x0, eps = scheduler.interface.predictions(raw, x, level, clip_range=0.5)
    unclamped, _ = scheduler.interface.predictions(raw, x, level)
    assert unclamped.abs().max() > 0.5 and x0.abs().max() <= 0.5
    torch.testing.assert_close(x0, unclamped.clamp(-0.5, 0.5))
    torch.testing.assert_close(math.cos(query) * x0 + math.sin(query) * eps, x)  # ε̂ re-derived from the clamp
    out = sample_loop(scheduler, lambda z, t: model(z, t).sample, x, 4)
    assert out.abs().max() <= 0.5  # the last step returns the clamped x̂0
    # in range, the clamp changes nothing: same result as without it
    wide = TrigAngleRKScheduler(**LINEAR, solver=solver, clip_sample=True, clip_sample_range=50.0)
    plain = TrigAngleRKScheduler(**LINEAR, solver=solver)
    x = start_noise(8)
    torch.testing.assert_close(solve(wide, model, x, 4), solve(plain, model, x, 4))


def test_clip_sample_is_read_from_a_ddpm_config_and_joint_heads_are_read_as_configured():
    assert TrigAngleRKScheduler.from_config(DDPMScheduler(clip_sample=True).config).config.clip_sample is True
    assert TrigAngleRKScheduler.from_config(DDPMScheduler(clip_sample=False).config).config.clip_sample is False
    eps, x0, x = torch.randn(2, 1, 4, 4, dtype=torch.float64), 3 * torch.randn(2, 1, 4, 4, dtype=torch.float64), torch.randn(2, 1, 4, 4, dtype=torch.float64)
    logsnr = 0.7
    a, b = math.sqrt(1 / (1 + math.exp(-logsnr))), math.sqrt(1 / (1 + math.exp(logsnr)))
    joint_output = torch.cat([eps, x0], dim=1)
    # "separate" (seed 004): x̂0 clamped, the ε head kept
    separate = TrigAngleRKScheduler(clip_sample=True, prediction_type="joint", joint_heads="separate").interface
    got_x0, got_eps = separate.predictions(joint_output, x, logsnr, clip_range=1.0)
    torch.testing.assert_close(got_x0, x0.clamp(-1, 1))
    torch.testing.assert_close(got_eps, eps)
    # "velocity" (default): v̂ = a·ε̂ − b·x̂0 read as a v-prediction, then clamped with ε̂ re-derived: the pair adds up to x
    velocity = TrigAngleRKScheduler(clip_sample=True, prediction_type="joint").interface
    got_x0, got_eps = velocity.predictions(joint_output, x, logsnr, clip_range=1.0)
    torch.testing.assert_close(got_x0, (a * x - b * (a * eps - b * x0)).clamp(-1, 1))
    torch.testing.assert_close(a * got_x0 + b * got_eps, x)
    # heads that already agree with the state are read unchanged either way
    consistent = a * x0 + b * eps
    for interface in (separate, velocity):
        got_x0, got_eps = interface.predictions(joint_output, consistent, logsnr)
        torch.testing.assert_close(got_x0, x0)
        torch.testing.assert_close(got_eps, eps)
    # a state with α² + σ² ≠ 1 (EDM's x0 + σ ε): x̂0 = (α²·x̂0_ε + σ²·x̂0_head)/(α² + σ²), still adding up to x
    edm = S2NGeneralizedScheduler(noise_family="edm", prediction_type="joint", preconditioning="none").interface
    a, b = (float(v) for v in edm.alpha_sigma(torch.tensor([logsnr], dtype=torch.float64)))
    assert abs(a * a + b * b - 1) > 0.3
    got_x0, got_eps = edm.predictions(joint_output, x, logsnr)
    torch.testing.assert_close(got_x0, (a * a * (x - b * eps) / a + b * b * x0) / (a * a + b * b))
    torch.testing.assert_close(a * got_x0 + b * got_eps, x)
    with pytest.raises(ValueError, match="clip_sample_range must be > 0, got 0"):
        TrigAngleRKScheduler(clip_sample_range=0)
    with pytest.raises(ValueError, match=re.escape("joint_heads must be one of ('velocity', 'separate'), got 'both'")):
        TrigAngleRKScheduler(prediction_type="joint", joint_heads="both")


def test_joint_heads_round_trips_and_converts_between_our_schedulers(tmp_path):
    from diffusers_infoflow.schedulers import EntropyHybridScheduler

    saved = TrigAngleRKScheduler(prediction_type="joint", joint_heads="separate")
    saved.save_pretrained(tmp_path)
    assert TrigAngleRKScheduler.from_pretrained(tmp_path).interface.joint_heads == "separate"
    for cls in (TrigAngleRKScheduler, S2NGeneralizedScheduler, EntropyHybridScheduler):
        assert cls.from_config(saved.config).interface.joint_heads == "separate", cls.__name__
    assert S2NGeneralizedScheduler.from_preset("deterministic", saved.config).interface.joint_heads == "separate"
    assert TrigAngleRKScheduler(prediction_type="joint").config.joint_heads == "velocity"


def test_spacing_keys_round_trip_with_diffusers_schedulers():
    """Our rung placements live in `step_spacing`, shared by the three schedulers; `timestep_spacing` keeps diffusers'
    values only, so a diffusers scheduler loaded from our config keeps a ladder it can build."""
    assert TrigAngleRKScheduler.from_config(DDIMScheduler(timestep_spacing="leading").config).config.step_spacing is None
    # another of our classes' rung placement is its sampler option: replaced by this solver's default, rho kept
    converted = TrigAngleRKScheduler.from_config(S2NGeneralizedScheduler(step_spacing="karras", rho=5.0).config)
    assert (converted.config.step_spacing, converted.step_spacing, converted.config.rho) == (None, "logsnr", 5.0)
    ours = TrigAngleRKScheduler(step_spacing="linspace", rho=3.0)
    assert (TrigAngleRKScheduler.from_config(ours.config).config.step_spacing, TrigAngleRKScheduler.from_config(dict(ours.config)).config.rho) == ("linspace", 3.0)
    for diffusers_class in (DDIMScheduler, DDPMScheduler):
        back = diffusers_class.from_config(ours.config)
        back.set_timesteps(10)
        assert back.config.timestep_spacing == "leading" and int(back.timesteps[0]) == 900
    with pytest.raises(ValueError, match="karras_rho is rho now"):  # old names are refused with their new ones
        TrigAngleRKScheduler.from_config({**ours.config, "karras_rho": 7.0})
    with pytest.raises(ValueError, match="'uniform_logsnr' is called 'logsnr' now"):
        TrigAngleRKScheduler(step_spacing="uniform_logsnr")
    with pytest.raises(ValueError, match="is a `step_spacing` now"):
        S2NGeneralizedScheduler(timestep_spacing="karras")


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="solver"):
        TrigAngleRKScheduler(solver="rk3")
    with pytest.raises(ValueError, match="step_spacing"):
        TrigAngleRKScheduler(step_spacing="leading")
    with pytest.raises(ValueError, match="prediction_type"):
        TrigAngleRKScheduler(prediction_type="flow")
    for order in (0, 5, 2.5, True):
        with pytest.raises(ValueError, match=f"solver_order must be one of .*got {order!r}"):
            TrigAngleRKScheduler(solver="multistep", solver_order=order)
    for ratio in (0.5, float("inf"), float("nan"), True, "2"):
        with pytest.raises(ValueError, match=re.escape(f"max_step_ratio must be a finite number >= 1 or None (never drop nodes), got {ratio!r}")):
            TrigAngleRKScheduler(solver="multistep", max_step_ratio=ratio)
    with pytest.raises(ValueError, match=re.escape("interpolation must be one of ('logsnr', 'linear'), got 'sigma'")):
        TrigAngleRKScheduler(solver="multistep", interpolation="sigma")
    for option in ({"lower_order_final": True}, {"solver_order": 2}, {"predict_x0": False}, {"use_corrector": False},
                   {"max_step_ratio": None}, {"interpolation": "linear"}):
        for solver in ("euler", "rk2", "rk4", "ddim"):  # the multistep solver's options are refused, not ignored
            with pytest.raises(ValueError, match=re.escape(f"{option} set the multistep solver, which solver={solver!r} does not use")):
                TrigAngleRKScheduler(solver=solver, **option)
        TrigAngleRKScheduler(solver="multistep", **option)
    TrigAngleRKScheduler(solver="rk4", solver_order=3, predict_x0=True, use_corrector=True, lower_order_final=False)
    for key in ("predict_x0", "use_corrector", "lower_order_final", "clip_sample"):
        with pytest.raises(ValueError, match=f"{key} must be True or False, got 'false'"):
            TrigAngleRKScheduler(solver="multistep", **{key: "false"})

    with pytest.raises(ValueError, match="final_step must be one of .*'last'"):
        TrigAngleRKScheduler(final_step="last")
    for angle in (0.0, -0.1, 1.6, math.pi):
        with pytest.raises(ValueError, match="start_angle"):
            TrigAngleRKScheduler(start_angle=angle)
    with pytest.raises(ValueError, match="π/2"):
        TrigAngleRKScheduler(step_spacing="karras", start_angle=math.pi / 2)
    with pytest.raises(ValueError, match="within the training table"):
        TrigAngleRKScheduler(step_spacing="linspace", start_angle=1.569)
    with pytest.raises(ValueError, match="num_inference_steps"):
        TrigAngleRKScheduler(step_spacing="karras", final_step="solver").set_timesteps(1)
    with pytest.raises(ValueError, match="num_inference_steps"):
        TrigAngleRKScheduler().set_timesteps(0)
    one = TrigAngleRKScheduler(step_spacing="karras")  # one step = the x̂0 call at the start
    one.set_timesteps(1)
    assert len(one.timesteps) == 1 and one.timesteps[0] == 999
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


def test_a_solver_given_to_from_config_replaces_the_configs_multistep_options(tmp_path):
    """`from_config(config, solver="rk4")` of a saved multistep config (README's switch of solvers): the config's
    multistep options belong to the solver replaced, so they are left out; the same options given with the new
    solver are refused, and without a new solver the config's are kept."""
    TrigAngleRKScheduler(solver="multistep", solver_order=2, predict_x0=False, lower_order_final=True).save_pretrained(tmp_path)
    config = TrigAngleRKScheduler.load_config(tmp_path)
    for source in (config, TrigAngleRKScheduler.from_config(config).config):  # saved, and in memory
        rk4 = TrigAngleRKScheduler.from_config(source, solver="rk4").config
        assert (rk4.solver, rk4.solver_order, rk4.predict_x0, rk4.lower_order_final) == ("rk4", 3, True, False)
        kept = TrigAngleRKScheduler.from_config(source).config
        assert (kept.solver, kept.solver_order, kept.predict_x0, kept.lower_order_final) == ("multistep", 2, False, True)
        assert TrigAngleRKScheduler.from_config(source, solver="multistep").config.solver_order == 2
        with pytest.raises(ValueError, match="solver_order.* solver='rk4' does not use"):
            TrigAngleRKScheduler.from_config(source, solver="rk4", solver_order=2)


def test_ablation_rows_build_their_schedulers():
    assert SEED004_TABLE2[0].name == "ddim" and ablation_row("ours").needs_joint_model
    for row in SEED004_TABLE2:
        scheduler = row.make_scheduler()
        if row.needs_joint_model:
            assert scheduler.config.prediction_type == "joint"
        if row.train_schedule == "trig":
            assert scheduler.alphas_cumprod[499] == pytest.approx(math.cos(500 / 1000 * math.pi / 2) ** 2, rel=1e-5)
    rk4 = ablation_row("ours").make_scheduler()
    assert steps_for_calls(rk4, 21) == 6 and steps_for_calls(rk4, 1) == 1
    assert steps_for_calls(ablation_row("ddim+joint").make_scheduler(), 10) == 10
    with pytest.raises(ValueError, match="exactly 10 model calls"):
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


class TestTrigAngleMultistepEpsilonCommon(SchedulerChecks):
    scheduler_class = TrigAngleRKScheduler

    def default_config(self):
        return {"solver": "multistep", "solver_order": 3, "prediction_type": "epsilon"}

    def make_model(self, scheduler):
        model = GaussianDenoiser(torch.zeros(1, 8, 8), torch.full((1, 8, 8), 0.3), scheduler.train_schedule)
        return lambda x, t: model(x, t).sample


class TestTrigAngleMultistepJointCommon(SchedulerChecks):
    scheduler_class = TrigAngleRKScheduler

    def default_config(self):
        return {"solver": "multistep", "solver_order": 2, "predict_x0": False, "prediction_type": "joint"}

    def make_model(self, scheduler):
        model = GaussianDenoiser(torch.zeros(1, 8, 8), torch.full((1, 8, 8), 0.3), scheduler.train_schedule, "joint")
        return lambda x, t: model(x, t).sample
