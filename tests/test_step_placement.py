"""Information-placed steps: the calibrated mmse curve against Gaussian closed forms, the rungs it places, and the
`information` spacing of our schedulers (config round trips, checkpoint families, clear errors); rungs fitted to a
teacher (`fit_ladder`) against the exact probability flow."""

import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, EDMEulerScheduler, FlowMatchEulerDiscreteScheduler

from diffusers_infoflow import (
    EntropyHybridScheduler,
    GaussianDenoiser,
    InformationCurve,
    S2NGeneralizedScheduler,
    TrigAngleRKScheduler,
    calibrate_information_curve,
    fit_ladder,
    get_schedule,
)
from diffusers_infoflow.metrics import gaussian_information, gaussian_mmse
from diffusers_infoflow.sampling import denoise


VARIANCE = torch.tensor([0.01, 0.05, 0.2, 0.5, 1.0, 2.0], dtype=torch.float64).repeat(4).view(1, 4, 6)
MEAN = torch.zeros(1, 4, 6, dtype=torch.float64)


def _data(n=512, seed=0):
    return MEAN + VARIANCE.sqrt() * torch.randn((n, *VARIANCE.shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _exact_curve(lo=-12.0, hi=12.0, knots=400):
    lam = torch.linspace(lo, hi, knots, dtype=torch.float64)
    return InformationCurve(lam, gaussian_mmse(VARIANCE, lam) / VARIANCE.numel())


@pytest.mark.parametrize("source", [DDPMScheduler(), EDMEulerScheduler(), FlowMatchEulerDiscreteScheduler(shift=3.0)], ids=["ddpm", "edm", "flow"])
def test_calibrated_curve_is_the_gaussian_mmse(source):
    """Any checkpoint family: the model is asked in its own units, and the measured curve is the closed form."""
    scheduler = TrigAngleRKScheduler.from_config(source.config)
    model = GaussianDenoiser(MEAN, VARIANCE, scheduler.interface)
    curve = calibrate_information_curve(model, source, _data(), num_levels=12, batch_size=200)
    lam = torch.tensor(curve["logsnr"], dtype=torch.float64)
    assert len(lam) == 12 and (lam[1:] > lam[:-1]).all()
    noisy, clean = scheduler.interface.logsnr_range
    assert lam[-1] == pytest.approx(clean, abs=1e-6) and (not math.isfinite(noisy) or lam[0] == pytest.approx(noisy, abs=1e-6))
    exact = gaussian_mmse(VARIANCE, lam) / VARIANCE.numel()
    torch.testing.assert_close(torch.tensor(curve["mmse"], dtype=torch.float64), exact, rtol=0.06, atol=0.0)


def test_equal_information_rungs_split_the_closed_form_information_equally():
    curve = _exact_curve()
    lam = curve.place(9, -10.0, 9.0, "information", 1.0)
    gains = torch.diff(gaussian_information(VARIANCE, lam))
    torch.testing.assert_close(gains, torch.full_like(gains, float(gains.mean())), rtol=2e-3, atol=0.0)
    assert lam[0] == -10.0 and lam[-1] == 9.0


def test_power_zero_is_uniform_in_logsnr_and_mmse_decrease_follows_the_narrowing():
    curve = _exact_curve()
    for measure in ("information", "mmse_decrease"):
        torch.testing.assert_close(curve.place(7, -10.0, 9.0, measure, 0.0), torch.linspace(-10.0, 9.0, 7, dtype=torch.float64), rtol=0, atol=1e-9)
    # −d mmse/dλ peaks where the posterior narrows (λ ≈ −log v, here −4.6 … 0.7): the rungs crowd there
    lam = curve.place(12, -10.0, 9.0, "mmse_decrease", 1.0)
    inside = ((lam > -5.5) & (lam < 1.5)).sum()
    assert inside >= 7, lam


def test_curve_config_round_trip_and_monotone_cleanup():
    curve = InformationCurve([-2.0, 0.0, 2.0], [0.5, 0.6, 0.1])  # a Monte Carlo wiggle upwards
    assert curve.to_config() == {"logsnr": [-2.0, 0.0, 2.0], "mmse": [0.5, 0.5, 0.1]}
    assert InformationCurve.from_config(curve.to_config()).to_config() == curve.to_config()


@pytest.mark.parametrize(
    "value",
    [[1, 2], {"logsnr": [0.0, 1.0]}, {"logsnr": [0.0, 1.0], "mmse": [1.0]}, {"logsnr": [1.0, 0.0], "mmse": [1.0, 0.5]},
     {"logsnr": [0.0, 1.0], "mmse": [1.0, -0.5]}, {"logsnr": [0.0, float("nan")], "mmse": [1.0, 0.5]},
     {"logsnr": [0.0, 1.0], "mmse": [1.0, 0.5], "extra": 1}],
)
def test_bad_curves_are_refused(value):
    with pytest.raises(ValueError, match="information_curve"):
        TrigAngleRKScheduler(solver="multistep", step_spacing="information", information_curve=value)


@pytest.mark.parametrize("kwargs, match", [
    ({"step_spacing": "information"}, "needs `information_curve`"),
    ({"step_spacing": "information", "information_curve": _exact_curve().to_config(), "information_measure": "entropy"}, "information_measure"),
    ({"step_spacing": "information", "information_curve": _exact_curve().to_config(), "information_power": -1.0}, "information_power"),
    ({"step_spacing": "information", "information_curve": _exact_curve().to_config(), "information_power": True}, "information_power"),
])
def test_bad_information_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrigAngleRKScheduler(solver="multistep", **kwargs)
    for cls in (S2NGeneralizedScheduler, EntropyHybridScheduler):
        with pytest.raises(ValueError, match=match):
            cls(**kwargs)


@pytest.mark.parametrize("cls", [TrigAngleRKScheduler, S2NGeneralizedScheduler])
def test_information_spacing_round_trips_and_uses_the_curve(tmp_path, cls):
    curve = _exact_curve()
    options = {"step_spacing": "information", "information_curve": curve.to_config(), "information_measure": "mmse_decrease", "information_power": 0.5}
    if cls is TrigAngleRKScheduler:
        options["solver"] = "multistep"  # one call per step: timesteps are the rungs
    scheduler = cls.from_config(DDPMScheduler().config, **options)
    scheduler.set_timesteps(10)
    lam_noisy, lam_clean = scheduler.interface.logsnr_range
    expected = scheduler.interface.model_timesteps(curve.place(10, lam_noisy, lam_clean, "mmse_decrease", 0.5))[0]
    torch.testing.assert_close(scheduler.timesteps[:10].double(), expected.double(), rtol=0, atol=1e-3)
    assert scheduler.timesteps[0] == 999 and scheduler.timesteps[9] == 0
    scheduler.save_pretrained(tmp_path)
    reloaded = cls.from_pretrained(tmp_path)
    assert reloaded.config.information_curve == curve.to_config() and reloaded.config.step_spacing == "information"
    reloaded.set_timesteps(10)
    assert torch.equal(reloaded.timesteps, scheduler.timesteps)
    # other spacings ignore a stored curve
    plain = cls.from_config(reloaded.config, step_spacing="karras" if cls is S2NGeneralizedScheduler else "logsnr")
    plain.set_timesteps(10)
    assert not torch.equal(plain.timesteps, scheduler.timesteps)


def test_information_rungs_from_pure_noise_on_a_flow_model():
    source = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler = TrigAngleRKScheduler.from_config(source.config, solver="multistep")
    model = GaussianDenoiser(MEAN, VARIANCE, scheduler.interface)
    curve = calibrate_information_curve(model, source, _data(256), num_levels=16, batch_size=256)
    info = TrigAngleRKScheduler.from_config(source.config, solver="multistep", step_spacing="information", information_curve=curve)
    info.set_timesteps(8)
    assert info.timesteps[0] == pytest.approx(1000.0) and (info.timesteps[1:] < info.timesteps[:-1]).all()
    x = torch.randn((4, *MEAN.shape), generator=torch.Generator().manual_seed(3), dtype=torch.float64) * info.init_noise_sigma
    for t in info.timesteps:
        x = info.step(model(info.scale_model_input(x, t), t).sample, t, x).prev_sample
    assert torch.isfinite(x).all()


def test_entropy_hybrid_information_spacing_walks_the_models_levels():
    curve = _exact_curve()
    scheduler = EntropyHybridScheduler.from_config(DDPMScheduler().config, eta=0.0, step_spacing="information", information_curve=curve.to_config())
    scheduler.set_timesteps(12)
    expected = scheduler.interface.model_timesteps(curve.place(12, *scheduler.interface.logsnr_range, "mmse_decrease", 0.5))[0]
    torch.testing.assert_close(scheduler.timesteps.double(), expected.double(), rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match="cannot be combined"):
        EntropyHybridScheduler(step_spacing="information", information_curve=curve.to_config(), sampling_schedule="cosine")
    with pytest.raises(ValueError, match="needs `information_curve`"):
        EntropyHybridScheduler(step_spacing="information")


def test_trailing_ladder_ends_with_the_x0_of_the_last_call_before_the_clean_end():
    curve = _exact_curve().to_config()
    clean = TrigAngleRKScheduler(solver="multistep", step_spacing="information", information_curve=curve)
    trailing = TrigAngleRKScheduler.from_config(clean.config, ladder_end="trailing")
    clean.set_timesteps(6)
    trailing.set_timesteps(5)
    # the N trailing rungs are the first N of the N + 1 clean ones: the clean end is not called
    torch.testing.assert_close(trailing.timesteps, clean.timesteps[:5])
    model = GaussianDenoiser(MEAN, VARIANCE, get_schedule("linear", 1000))
    x = torch.randn((3, *MEAN.shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for i, t in enumerate(trailing.timesteps):
        out = trailing.step(model(x, t).sample, t, x)
        x = out.prev_sample
    assert torch.equal(x, out.pred_original_sample)  # the last step returns the x̂0 of the last rung
    with pytest.raises(ValueError, match="ladder_end"):
        TrigAngleRKScheduler(ladder_end="leading")
    with pytest.raises(ValueError, match="needs final_step='x0'"):
        TrigAngleRKScheduler(ladder_end="trailing", final_step="solver")


def test_from_pure_noise_the_first_finite_rung_is_placed_not_pinned():
    """Flow matching starts at λ = −∞: the second rung is placed by the curve, not at the noisiest finite level."""
    source = FlowMatchEulerDiscreteScheduler(shift=3.0)
    curve = _exact_curve(lo=-16.0, hi=16.0).to_config()
    for scheduler in (
        TrigAngleRKScheduler.from_config(source.config, solver="multistep", step_spacing="information", information_curve=curve),
        S2NGeneralizedScheduler.from_config(source.config, step_spacing="information", information_curve=curve),
    ):
        scheduler.set_timesteps(4)
        assert scheduler.timesteps[0] == pytest.approx(1000.0) and scheduler.timesteps[1] < 990, scheduler.timesteps


def test_calibration_refuses_data_and_outputs_it_cannot_read():
    scheduler = TrigAngleRKScheduler()
    model = GaussianDenoiser(MEAN, VARIANCE, scheduler.interface)
    with pytest.raises(ValueError, match="N >= 2"):
        calibrate_information_curve(model, scheduler, _data(1))
    with pytest.raises(ValueError, match="no variance"):
        calibrate_information_curve(model, scheduler, _data(1).expand(4, -1, -1, -1))
    joint = GaussianDenoiser(MEAN, VARIANCE, TrigAngleRKScheduler(prediction_type="joint").interface)  # 2C channels
    with pytest.raises(ValueError, match="output has shape"):
        calibrate_information_curve(joint, scheduler, _data(8), num_levels=2)


def test_a_curve_given_as_tensors_is_stored_as_json_lists(tmp_path):
    curve = {"logsnr": torch.tensor([-2.0, 0.0, 2.0]), "mmse": torch.tensor([0.5, 0.6, 0.125])}
    scheduler = S2NGeneralizedScheduler(step_spacing="information", information_curve=curve)
    assert scheduler.config.information_curve == {"logsnr": [-2.0, 0.0, 2.0], "mmse": [0.5, 0.5, 0.125]}
    scheduler.save_pretrained(tmp_path)
    assert S2NGeneralizedScheduler.from_pretrained(tmp_path).config.information_curve == scheduler.config.information_curve


def _sample(scheduler, model, noise, **ladder):
    """The samples of `scheduler` on `ladder` and the model calls they took (diffusers' loop, `sampling.denoise`)."""
    calls = []
    scheduler.set_timesteps(**ladder)
    x = denoise(scheduler, lambda z, t: calls.append(t) or model(z, t), noise.clone())
    return x, len(calls)


@pytest.mark.parametrize("kwargs", [{"solver": "multistep", "solver_order": 2}, {"solver": "ddim"}], ids=["multistep", "ddim"])
def test_fitted_rungs_beat_the_start_on_fresh_noise(kwargs):
    scheduler = TrigAngleRKScheduler.from_config(DDPMScheduler(clip_sample=False).config, step_spacing="linspace", **kwargs)
    model = GaussianDenoiser(MEAN, VARIANCE, scheduler.interface)
    fit_noise, test_noise = (torch.randn((32, *MEAN.shape), generator=torch.Generator().manual_seed(s), dtype=torch.float64) for s in (1, 2))
    ladder = fit_ladder(model, scheduler, 6, fit_noise, teacher_steps=60, max_evaluations=80)
    assert len(ladder) == 6 and ladder[0] == pytest.approx(999.0) and all(a > b for a, b in zip(ladder, ladder[1:]))
    exact = model.ode_solution_logsnr(test_noise, float(scheduler.interface.logsnr_from_model_timesteps([999.0])[0]), math.inf)
    start, start_calls = _sample(scheduler, model, test_noise, num_inference_steps=6)
    fitted, fitted_calls = _sample(scheduler, model, test_noise, timesteps=ladder)
    assert start_calls == fitted_calls == 6
    start_error, fitted_error = ((x - exact).pow(2).mean().sqrt() for x in (start, fitted))
    assert fitted_error < 0.8 * start_error


def test_fitted_rungs_from_pure_noise_on_a_flow_model():
    scheduler = TrigAngleRKScheduler.from_config(FlowMatchEulerDiscreteScheduler(shift=3.0).config, solver="multistep")
    model = GaussianDenoiser(MEAN, VARIANCE, scheduler.interface)
    noise = torch.randn((32, *MEAN.shape), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ladder = fit_ladder(model, scheduler, 5, noise, teacher_steps=40, max_evaluations=30)
    assert ladder[0] == pytest.approx(1000.0) and all(a > b > 0 for a, b in zip(ladder, ladder[1:]))
    assert torch.isfinite(_sample(scheduler, model, noise, timesteps=ladder)[0]).all()


def test_fit_ladder_refuses_what_it_cannot_fit():
    scheduler = TrigAngleRKScheduler.from_config(DDPMScheduler().config, solver="multistep")
    model = GaussianDenoiser(MEAN, VARIANCE, scheduler.interface)
    noise = torch.randn((4, *MEAN.shape), dtype=torch.float64)
    with pytest.raises(ValueError, match="this package's schedulers"):
        fit_ladder(model, DDIMScheduler(), 5, noise)
    with pytest.raises(ValueError, match="one model call per rung"):
        fit_ladder(model, TrigAngleRKScheduler.from_config(DDPMScheduler().config, solver="rk4"), 5, noise)
    with pytest.raises(ValueError, match="num_inference_steps must be an integer >= 2"):
        fit_ladder(model, scheduler, 1, noise)
    with pytest.raises(ValueError, match="finite tensor"):
        fit_ladder(model, scheduler, 5, noise * float("nan"))
