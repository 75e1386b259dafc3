"""The noise-schedule core against independent computation (numpy, diffusers, closed forms)."""

import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from diffusers_infoflow import CONTINUOUS_SCHEDULES, DISCRETE_SCHEDULES, DiscreteSchedule, get_betas, get_schedule


@pytest.mark.parametrize("diffusers_name", ["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"])
def test_betas_equal_diffusers_own_tables(diffusers_name):
    ours = get_betas(diffusers_name, 1000, **({} if diffusers_name == "squaredcos_cap_v2" else {"beta_start": 1e-4, "beta_end": 0.02}))
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_schedule=diffusers_name, beta_start=1e-4, beta_end=0.02).betas
    torch.testing.assert_close(ours.float(), theirs, rtol=1e-5, atol=1e-7)


def test_formulas_against_numpy():
    T, b1, bT = 300, 1e-4, 0.02
    u = np.linspace(0, 1, T)
    expected = {
        "linear": np.linspace(b1, bT, T),
        "quadratic": np.linspace(np.sqrt(b1), np.sqrt(bT), T) ** 2,
        "sigmoid": (bT - b1) / (1 + np.exp(-np.linspace(-6, 6, T))) + b1,
        "power": b1 + (bT - b1) * u**1.5,
        "jsd": np.minimum(1.0 / (T - np.arange(1, T + 1) + 1), 0.999),
    }
    for name, ref in expected.items():
        params = {"p": 1.5} if name == "power" else {}
        np.testing.assert_allclose(get_betas(name, T, **params).numpy(), ref, rtol=1e-12)
    # cosine: ᾱ_t = f(t)/f(0) exactly (before the 0.999 cap bites at the very end)
    s = 0.008
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    abar = np.cumprod(1 - get_betas("cosine", T).numpy())
    np.testing.assert_allclose(abar[:-1], (f / f[0])[1:-1], rtol=1e-10)
    # trig: ᾱ_t = cos²(t/T·π/2) except the capped last step; jsd: ᾱ_t = 1 − t/T
    abar_trig = np.cumprod(1 - get_betas("trig", T).numpy())
    np.testing.assert_allclose(abar_trig[:-1], np.cos(np.arange(1, T) / T * np.pi / 2) ** 2, rtol=1e-10)
    abar_jsd = np.cumprod(1 - get_betas("jsd", T).numpy())
    np.testing.assert_allclose(abar_jsd[:-1], 1 - np.arange(1, T) / T, rtol=1e-10)


def test_wave_is_linear_modulated_by_a_sine():
    T = 200
    u = np.linspace(0, 1, T)
    ref = np.linspace(1e-4, 0.02, T) * (1 + 0.3 * np.sin(2 * np.pi * 2 * u))
    np.testing.assert_allclose(get_betas("wave", T, amplitude=0.3, cycles=2).numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("name", DISCRETE_SCHEDULES)
def test_every_family_gives_a_valid_decreasing_table(name):
    sched = DiscreteSchedule.from_name(name, 500)
    ac = sched.alphas_cumprod
    assert ac.dtype == torch.float64 and (ac[1:] < ac[:-1]).all() and ((ac > 0) & (ac < 1)).all()


@pytest.mark.parametrize(
    "args, match",
    [
        (("nope", 100), "Unknown beta schedule 'nope'"),
        (("linear", 1), "num_train_timesteps"),
        (("linear", 100), None),
    ],
)
def test_bad_schedule_arguments(args, match):
    if match is None:
        get_betas(*args)
        return
    with pytest.raises(ValueError, match=match):
        get_betas(*args)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"beta_start": 0.0}, "beta_start"),
        ({"beta_end": 1.5}, "beta_end"),
        ({"p": -1.0}, "exponent"),
        ({"q": 1.0}, "takes no parameter"),
    ],
)
def test_bad_family_parameters(params, match):
    name = "power" if "p" in params or "q" in params else "linear"
    with pytest.raises(ValueError, match=match):
        get_betas(name, 100, **params)


def test_beta_outside_unit_interval_is_reported():
    with pytest.raises(ValueError, match=r"every β must lie in \(0, 1\)"):
        get_betas("wave", 100, beta_start=0.5, beta_end=0.9, amplitude=0.9)


def test_discrete_schedule_matches_table_and_inverts():
    sched = DiscreteSchedule.from_name("cosine", 1000)
    t = torch.arange(1000, dtype=torch.float64)
    torch.testing.assert_close(sched.alpha(t) ** 2, sched.alphas_cumprod)
    torch.testing.assert_close(sched.alpha(t) ** 2 + sched.sigma(t) ** 2, torch.ones(1000, dtype=torch.float64))
    frac = torch.linspace(0, 999, 3001, dtype=torch.float64)
    torch.testing.assert_close(sched.t_from_logsnr(sched.logsnr(frac)), frac, rtol=0, atol=1e-8)
    # λ is linear between integer timesteps
    mid = sched.logsnr(torch.tensor(10.5))
    assert abs(float(mid) - 0.5 * float(sched.logsnr_table[10] + sched.logsnr_table[11])) < 1e-12


def test_out_of_range_timestep_and_logsnr_are_errors():
    sched = DiscreteSchedule.from_name("linear", 100)
    with pytest.raises(ValueError, match=r"outside the schedule's range \[0.0, 99.0\]"):
        sched.logsnr(100.5)
    lo, hi = sched.logsnr_range
    with pytest.raises(ValueError, match="outside this schedule's range"):
        sched.t_from_logsnr(hi + 1.0)
    with pytest.raises(ValueError, match="NaN"):
        sched.logsnr(float("nan"))


def test_bad_alphas_cumprod():
    with pytest.raises(ValueError, match="strictly decreasing"):
        DiscreteSchedule(torch.tensor([0.9, 0.95, 0.5]))
    with pytest.raises(ValueError, match="between 0 and 1"):
        DiscreteSchedule(torch.tensor([0.0, 0.0]))  # only the last entry may be 0 (zero terminal SNR)
    zero_snr = DiscreteSchedule(torch.tensor([0.9, 0.0]))
    assert zero_snr.logsnr_range[0] == -math.inf and float(zero_snr.sigma(1.0)) == 1.0


def test_continuous_families_closed_forms():
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    vp = get_schedule("vp")
    alpha = torch.exp(-0.25 * t**2 * 19.9 - 0.5 * t * 0.1)
    torch.testing.assert_close(vp.alpha(t), alpha)
    torch.testing.assert_close(vp.sigma(t), torch.sqrt(1 - alpha**2))
    ve = get_schedule("ve")
    torch.testing.assert_close(ve.sigma(t), 0.01 * (50 / 0.01) ** t)
    torch.testing.assert_close(ve.alpha(t), torch.ones_like(t))
    fm = get_schedule("fm-ot")
    torch.testing.assert_close(fm.alpha(t), 1 - t)
    torch.testing.assert_close(fm.sigma(t), t)
    iddpm = get_schedule("iddpm")
    ref = torch.cos(math.pi / 2 * (t + 0.008) / 1.008) / math.cos(math.pi / 2 * 0.008 / 1.008)
    torch.testing.assert_close(iddpm.alpha(t), ref)
    edm = get_schedule("edm")
    sig = torch.tensor([0.002, 1.0, 80.0], dtype=torch.float64)
    torch.testing.assert_close(edm.sigma(sig), sig)


@pytest.mark.parametrize("name", CONTINUOUS_SCHEDULES)
def test_continuous_inverse(name):
    sched = get_schedule(name)
    t = torch.linspace(sched.t_min, sched.t_max, 41, dtype=torch.float64)
    back = sched.t_from_logsnr(sched.logsnr(t))
    torch.testing.assert_close(back, t, rtol=1e-9, atol=1e-9 * sched.t_max)


def test_get_schedule_errors():
    with pytest.raises(ValueError, match="Unknown schedule 'foo'"):
        get_schedule("foo")
    with pytest.raises(ValueError, match="needs `num_train_timesteps`"):
        get_schedule("linear")
    with pytest.raises(ValueError, match="takes no `num_train_timesteps`"):
        get_schedule("vp", 1000)
    with pytest.raises(ValueError, match="bad parameters"):
        get_schedule("ve", sigma_lo=1.0)


@pytest.mark.parametrize("name", CONTINUOUS_SCHEDULES)
def test_continuous_ends_survive_float32_but_outside_times_do_not(name):
    schedule = get_schedule(name)
    for end in (schedule.t_min, schedule.t_max):
        rounded = torch.tensor(end, dtype=torch.float32)  # a pipeline's float32 timestep
        assert torch.isfinite(schedule.logsnr(rounded))
    with pytest.raises(ValueError, match="outside"):
        schedule.alpha(torch.tensor(schedule.t_max * 1.001 + 1e-3, dtype=torch.float64))
