"""Entropy per timestep and entropy matching (seed 000 §3)."""

import math

import numpy as np
import pytest
import torch

from diffusers_infoflow import (
    DiscreteSchedule,
    gaussian_entropy,
    get_betas,
    get_schedule,
    match_timestep,
    match_timestep_fractional,
)
from diffusers_infoflow.entropy import matched_step_table


def _numpy_abar(name, T):
    return np.cumprod(1 - get_betas(name, T).numpy())


def test_entropy_closed_form_and_limit():
    T, shape = 300, (1, 28, 28)
    H = gaussian_entropy("linear", shape, num_train_timesteps=T)
    n = 784
    ref = n / 2 * np.log(2 * np.pi * np.e * (1 - _numpy_abar("linear", T)))
    np.testing.assert_allclose(H.numpy(), ref, rtol=1e-12)
    assert (H[1:] > H[:-1]).all()
    # as ᾱ → 0 the entropy rises to (n/2)·ln(2πe)
    H_trig = gaussian_entropy("trig", 10, num_train_timesteps=1000)
    assert float(H_trig[-1]) == pytest.approx(10 / 2 * math.log(2 * math.pi * math.e), abs=1e-4)
    assert (H_trig < 10 / 2 * math.log(2 * math.pi * math.e)).all()


def test_entropy_accepts_tensors_and_continuous_schedules():
    abar = torch.tensor([0.99, 0.5, 0.1], dtype=torch.float64)
    H = gaussian_entropy(abar, 4)
    torch.testing.assert_close(H, 2 * torch.log(2 * math.pi * math.e * (1 - abar)))
    vp = get_schedule("vp")
    t = torch.tensor([0.3, 0.7])
    torch.testing.assert_close(gaussian_entropy(vp, 3, t=t), 1.5 * torch.log(2 * math.pi * math.e * vp.sigma(t) ** 2))
    with pytest.raises(ValueError, match="need `t`"):
        gaussian_entropy(vp, 3)
    # a continuous family by name, as get_schedule takes it
    torch.testing.assert_close(gaussian_entropy("vp", 3, t=t), gaussian_entropy(vp, 3, t=t))
    with pytest.raises(ValueError, match="'vp' is a continuous schedule: it takes no num_train_timesteps"):
        gaussian_entropy("vp", 3, num_train_timesteps=1000, t=t)


def test_entropy_bad_inputs():
    with pytest.raises(ValueError, match="sample_shape"):
        gaussian_entropy("linear", (1, 0, 28), num_train_timesteps=10)
    with pytest.raises(ValueError, match=r"out of range; steps count 1..10"):
        gaussian_entropy("linear", 4, num_train_timesteps=10, t=[0])
    with pytest.raises(ValueError, match="needs its number of steps"):
        gaussian_entropy("linear", 4)


def test_match_is_the_literal_argmin_of_the_entropy_gap():
    T_a, T_b = 300, 500
    Ha = 0.5 * np.log(2 * np.pi * np.e * (1 - _numpy_abar("sigmoid", T_a)))
    Hb = 0.5 * np.log(2 * np.pi * np.e * (1 - _numpy_abar("cosine", T_b)))
    for t in [1, 18, 49, 110, 200, 300]:
        expected = int(np.argmin(np.abs(Hb - Ha[t - 1]))) + 1
        assert match_timestep(t, src="sigmoid", dst="cosine", src_steps=T_a, dst_steps=T_b) == expected


def test_match_properties():
    # identity, monotonicity, and the paper's §3.2.3 pair in both directions
    for t in (1, 77, 300):
        assert match_timestep(t, src="cosine", dst="cosine", src_steps=300, dst_steps=300) == t
    matched = matched_step_table(DiscreteSchedule.from_name("linear", 300), {"cos": DiscreteSchedule.from_name("cosine", 300)}).matched["cos"].tolist()
    assert all(b >= a for a, b in zip(matched, matched[1:]))
    assert match_timestep(178, src="quadratic", dst="cosine", src_steps=300, dst_steps=300) == 130
    assert match_timestep(130, src="cosine", dst="quadratic", src_steps=300, dst_steps=300) == 178


def test_fractional_match_has_equal_entropy_and_rounds_near_the_discrete_match():
    src = {"src": "linear", "dst": "cosine", "src_steps": 300, "dst_steps": 300}
    for t in (50, 90, 150):
        frac = match_timestep_fractional(t, **src)
        H_src = gaussian_entropy("linear", 1, num_train_timesteps=300, t=[t])
        H_dst = gaussian_entropy("cosine", 1, num_train_timesteps=300, t=[frac])
        assert float(H_src) == pytest.approx(float(H_dst), abs=1e-9)
        assert abs(frac - match_timestep(t, **src)) <= 1.0


def test_tensor_schedules_and_table():
    a = DiscreteSchedule.from_name("cosine", 1000)
    b = DiscreteSchedule.from_name("cosine", 300)
    assert match_timestep(167, src=a.alphas_cumprod, dst=b.alphas_cumprod) == match_timestep(
        167, src="cosine", dst="cosine", src_steps=1000, dst_steps=300
    )
    table = matched_step_table(a, {"cos300": b}, steps=[167, 335, 435])
    assert table.matched["cos300"].tolist() == [match_timestep(t, src=a, dst=b) for t in (167, 335, 435)]
    assert len(table.rows()) == 3 and "cos300 (fractional)" in table.rows()[0]


def test_match_bad_inputs():
    with pytest.raises(ValueError, match=r"src step 301 is out of range; steps count 1..300"):
        match_timestep(301, src="linear", dst="cosine", src_steps=300, dst_steps=300)
    with pytest.raises(ValueError, match="src step 0"):
        match_timestep(0, src="linear", dst="cosine", src_steps=300, dst_steps=300)
    with pytest.raises(TypeError, match="int forward step"):
        match_timestep(3.5, src="linear", dst="cosine", src_steps=300, dst_steps=300)
    with pytest.raises(ValueError, match="Unknown beta schedule"):
        match_timestep(3, src="linear", dst="cosinus", src_steps=300, dst_steps=300)
    with pytest.raises(ValueError, match="disagrees"):
        match_timestep(3, src=torch.tensor([0.9, 0.5]), dst="cosine", src_steps=3, dst_steps=300)
    # the linear T=300 schedule never gets as noisy as cosine's late steps: no exact fractional match
    with pytest.raises(ValueError, match="outside the destination's range"):
        match_timestep_fractional(300, src="cosine", dst="linear", src_steps=300, dst_steps=300)
