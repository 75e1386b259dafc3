"""Exact denoisers: closed forms, calling convention, bad inputs."""

import pytest
import torch

from diffusers_infoflow import DiscreteSchedule, EmpiricalDenoiser, GaussianDenoiser, get_schedule


def test_single_point_posterior_is_the_point():
    sched = DiscreteSchedule.from_name("linear", 100)
    x = torch.randn(1, 2, 3, 3)
    model = EmpiricalDenoiser(x, sched, prediction_type="sample")
    z = torch.randn(4, 2, 3, 3)
    torch.testing.assert_close(model(z, torch.tensor([3, 50, 70, 99])).sample, x.expand(4, -1, -1, -1))


def test_prediction_types_are_consistent():
    sched = DiscreteSchedule.from_name("cosine", 100)
    data = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    z = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor(40.5)
    a, s = sched.alpha(t).item(), sched.sigma(t).item()
    out = {p: EmpiricalDenoiser(data, sched, prediction_type=p)(z, t).sample for p in ("epsilon", "sample", "v_prediction", "joint")}
    torch.testing.assert_close(z, a * out["sample"] + s * out["epsilon"])
    torch.testing.assert_close(out["v_prediction"], a * out["epsilon"] - s * out["sample"])
    torch.testing.assert_close(out["joint"], torch.cat([out["epsilon"], out["sample"]], dim=1))


def test_gaussian_posterior_mean_and_exact_flow():
    sched = get_schedule("vp")
    mean = torch.randn(1, 3, 3, dtype=torch.float64)
    var = torch.rand(1, 3, 3, dtype=torch.float64) + 0.1
    model = GaussianDenoiser(mean, var, sched, prediction_type="sample")
    z = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    t = 0.4
    a, s = sched.alpha(t).item(), sched.sigma(t).item()
    torch.testing.assert_close(model(z, t).sample, mean + a * var / (a * a * var + s * s) * (z - a * mean))
    # the closed-form flow solves dx/dt = (α'/α) x + (σ' − σ α'/α) ε̂ (finite differences)
    h = 1e-5
    x_plus, x_minus = model.ode_solution(z, t, t + h), model.ode_solution(z, t, t - h)
    da = (sched.alpha(t + h) - sched.alpha(t - h)).item() / (2 * h)
    ds = (sched.sigma(t + h) - sched.sigma(t - h)).item() / (2 * h)
    x0 = model(z, t).sample
    eps = (z - a * x0) / s
    torch.testing.assert_close((x_plus - x_minus) / (2 * h), da * x0 + ds * eps, rtol=1e-5, atol=1e-6)
    # and is a group: t → u → t is the identity
    torch.testing.assert_close(model.ode_solution(model.ode_solution(z, t, 0.9), 0.9, t), z)


def test_usable_where_a_unet_is():
    sched = DiscreteSchedule.from_name("linear", 10)
    model = EmpiricalDenoiser(torch.zeros(2, 3, 8, 8), sched)
    assert model.config.sample_size == 8 and model.config.in_channels == 3 and model.dtype == torch.float32
    out = model(torch.randn(2, 3, 8, 8, dtype=torch.float16), 5, return_dict=False)[0]
    assert out.dtype == torch.float16 and out.shape == (2, 3, 8, 8)


def test_bad_inputs():
    sched = DiscreteSchedule.from_name("linear", 10)
    with pytest.raises(ValueError, match="prediction_type"):
        EmpiricalDenoiser(torch.zeros(2, 1, 4, 4), sched, prediction_type="eps")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        EmpiricalDenoiser(torch.zeros(4, 4), sched)
    with pytest.raises(ValueError, match="NaN"):
        EmpiricalDenoiser(torch.full((1, 1, 2, 2), float("nan")), sched)
    model = EmpiricalDenoiser(torch.zeros(2, 1, 4, 4), sched)
    with pytest.raises(ValueError, match="does not match the data shape"):
        model(torch.zeros(1, 2, 4, 4), 3)
    with pytest.raises(ValueError, match="3 timesteps for a batch of 2"):
        model(torch.zeros(2, 1, 4, 4), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="outside the schedule's range"):
        model(torch.zeros(1, 1, 4, 4), 10)
    with pytest.raises(ValueError, match="variance"):
        GaussianDenoiser(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), sched)
