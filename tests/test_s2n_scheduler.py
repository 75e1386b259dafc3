"""Tests of S2NGeneralizedScheduler (seed 001 Corollary 1 and eq. 9)."""

from __future__ import annotations

import math
import tempfile

import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, EDMEulerScheduler, UNet2DModel

from diffusers_infoflow import EmpiricalDenoiser, GaussianDenoiser, S2NGeneralizedScheduler
from diffusers_infoflow.testing import sample_s2n, sample_s2n_non_markovian

from .scheduler_checks import SchedulerChecks, sample_loop


SHAPE = (2, 1, 8, 8)


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_data(n: int = 12) -> torch.Tensor:
    return torch.rand((n, *SHAPE[1:]), generator=torch.Generator().manual_seed(1)) * 2 - 1


def exact_model(scheduler, prediction_type: str = "epsilon"):
    """The exact denoiser of `toy_data` on the scheduler's schedule, as `model(x, t) -> prediction`."""
    denoiser = EmpiricalDenoiser(toy_data(), scheduler.schedule, prediction_type)
    return lambda x, t: denoiser(x, t).sample


class EDMPreconditionedModel:
    """The F-network of EDM's preconditioning (Karras et al. 2022, Table 1) whose D(x; σ) is an exact denoiser."""

    def __init__(self, scheduler, sigma_data: float = 0.5):
        self.denoiser = EmpiricalDenoiser(toy_data(), scheduler.schedule, "sample")
        self.sigma_data = sigma_data

    def __call__(self, scaled_sample: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        # c_noise arrives in float32: clamp its σ into the schedule's range
        sigma = min(max(math.exp(4 * float(c_noise)), self.denoiser.schedule.t_min), self.denoiser.schedule.t_max)
        norm = math.sqrt(sigma**2 + self.sigma_data**2)
        x = scaled_sample.to(torch.float64) * norm
        x0 = self.denoiser(x, sigma).sample
        c_skip, c_out = self.sigma_data**2 / norm**2, sigma * self.sigma_data / norm
        return ((x0 - c_skip * x) / c_out).to(scaled_sample.dtype)


class TestS2NDiscreteCommon(SchedulerChecks):
    scheduler_class = S2NGeneralizedScheduler

    def default_config(self):
        return {"num_train_timesteps": 1000, "beta_schedule": "linear", "gamma": 0.1, "delta": 0.95, "sde_rho": 1.0}

    def make_model(self, scheduler):
        return exact_model(scheduler)


class TestS2NEDMCommon(SchedulerChecks):
    scheduler_class = S2NGeneralizedScheduler

    def default_config(self):
        return dict(dict(EDMEulerScheduler().config), gamma=0.026)

    def make_scheduler(self, **overrides):
        return S2NGeneralizedScheduler.from_config(EDMEulerScheduler().config, **{"gamma": 0.026, **overrides})

    def make_model(self, scheduler):
        return EDMPreconditionedModel(scheduler)


# ------------------------------------------------------------------ exact special cases (seed 001 Corollary 1)


def _lockstep(ours, theirs, model, steps, seed=0, **theirs_step_kwargs):
    """Step both schedulers from the same sample with the same model output; returns the largest difference."""
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    torch.testing.assert_close(ours.timesteps, theirs.timesteps, rtol=0, atol=0)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))
    gen_ours, gen_theirs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    worst = 0.0
    for t in ours.timesteps:
        out = model(x, t)
        a = ours.step(out, t, x, generator=gen_ours).prev_sample
        b = theirs.step(out, t, x, generator=gen_theirs, **theirs_step_kwargs).prev_sample
        worst = max(worst, float((a - b).abs().max()))
        x = b
    return worst


@pytest.mark.parametrize("variant", ["corollary1", "non_markovian"])
def test_rho_gamma_zero_is_ddim(variant):
    ddim = DDIMScheduler(clip_sample=False, set_alpha_to_one=True)
    ours = S2NGeneralizedScheduler.from_config(ddim.config, gamma=0.0, sde_rho=0.0, variant=variant)
    assert _lockstep(ours, ddim, exact_model(ours), 10, eta=0.0) < 2e-5


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("clip_sample", [False, True])
def test_rho_gamma_delta_one_is_ancestral_ddpm(spacing, clip_sample):
    # cosine's last ᾱ (~1e-9) is rounded by DDPM's float32 table: it is compared where that rung is not used
    beta_schedule = "squaredcos_cap_v2" if spacing == "leading" else "linear"
    ddpm = DDPMScheduler(clip_sample=clip_sample, timestep_spacing=spacing, beta_schedule=beta_schedule)
    ours = S2NGeneralizedScheduler.from_config(ddpm.config, gamma=1.0, delta=1.0, sde_rho=1.0)
    assert ours.config.clip_sample == clip_sample
    # same generator and draw order ⇒ same ξ: mean and variance agree step by step
    assert _lockstep(ours, ddpm, exact_model(ours), 8) < 2e-5


def test_ddpm_variance_matches_step_by_step():
    ddpm = DDPMScheduler()
    ours = S2NGeneralizedScheduler.from_config(ddpm.config, gamma=1.0, delta=1.0, sde_rho=1.0)
    ddpm.set_timesteps(20)
    ours.set_timesteps(20)
    for i, t in enumerate(ours.timesteps[:-1]):
        noise_std = ours.step_coefficients(i)[3]
        assert noise_std**2 == pytest.approx(float(ddpm._get_variance(int(t))), rel=1e-3)  # DDPM: float32 table


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_diffusers_spacings_give_diffusers_timesteps(spacing):
    ddim = DDIMScheduler(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
    ours = S2NGeneralizedScheduler.from_config(ddim.config)
    ddim.set_timesteps(7)
    ours.set_timesteps(7)
    torch.testing.assert_close(ours.timesteps, ddim.timesteps, rtol=0, atol=0)


# ------------------------------------------------------------------ reference implementation


def _reference_run(scheduler, model_x0, x, steps, noises):
    scheduler.set_timesteps(steps)
    model = exact_model(scheduler, "sample")
    for k, t in enumerate(scheduler.timesteps):
        x = scheduler.step(model(x, t), t, x, variance_noise=noises[k]).prev_sample
    return x


@pytest.mark.parametrize(
    "config",
    [
        {"beta_schedule": "linear", "step_spacing": "karras", "gamma": 1.25, "delta": 0.95, "sde_rho": 1.0, "prediction_type": "sample"},
        {"noise_family": "vp", "step_spacing": "logsnr", "gamma": -0.3, "delta": 0.5, "sde_rho": 0.7, "prediction_type": "sample"},
        {"noise_family": "fm-ot", "timestep_spacing": "linspace", "sde_rho": 1.0, "variant": "non_markovian", "prediction_type": "sample"},
        {"noise_family": "iddpm", "sde_rho": 0.5, "variant": "non_markovian", "prediction_type": "sample"},
    ],
)
def test_agrees_with_functional_reference(config):
    scheduler = S2NGeneralizedScheduler(**config)
    steps = 6
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noises = torch.randn((steps, *SHAPE), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = _reference_run(scheduler, None, x, steps, noises)
    denoiser = EmpiricalDenoiser(toy_data(), scheduler.schedule, "sample")
    x0_fn = lambda z, t: denoiser(z, t).sample  # noqa: E731
    # the model is told float32 timesteps: the reference uses the same times
    times = scheduler.timesteps.to(torch.float64)
    if config.get("variant") == "non_markovian":
        ref = sample_s2n_non_markovian(x0_fn, scheduler.schedule, times, x, eta=config["sde_rho"], noises=noises)
    else:
        ref = sample_s2n(x0_fn, scheduler.schedule, times, x, config["gamma"], config["delta"], config["sde_rho"], noises)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ accuracy on an exact ODE


@pytest.mark.parametrize("gamma", [0.0, 0.026])
def test_deterministic_endpoint_converges_to_exact_ode_solution(gamma):
    mean = torch.linspace(-0.5, 0.5, 64, dtype=torch.float64).view(1, 8, 8)
    variance = torch.linspace(0.05, 1.0, 64, dtype=torch.float64).view(1, 8, 8)
    errors = []
    for steps in (5, 10, 20, 40):
        scheduler = S2NGeneralizedScheduler.from_config(EDMEulerScheduler().config, gamma=gamma, preconditioning="none")
        denoiser = GaussianDenoiser(mean, variance, scheduler.schedule, "epsilon")
        scheduler.set_timesteps(steps)
        x_start = denoiser.sample_marginal(2, scheduler.schedule.t_max, generator=torch.Generator().manual_seed(0))
        x = x_start
        for t in scheduler.timesteps:
            x = scheduler.step(denoiser(x, t).sample, t, x).prev_sample
        # exact map to clean data: the standardised coordinate (z − αμ)/sqrt(α²v + σ²) is conserved
        sigma_max = scheduler.schedule.t_max
        exact = mean + variance.sqrt() * (x_start - mean) / (variance + sigma_max**2).sqrt()
        errors.append(float((x - exact).abs().max()))
    # first order: doubling the steps halves the error (measured 1.46 → 0.18 at γ = 0, 1.09 → 0.15 at γ = 0.026)
    assert all(1.8 < a / b < 2.2 for a, b in zip(errors, errors[1:])), errors


# ------------------------------------------------------------------ prediction types, families, generators


@pytest.mark.parametrize("family", ["discrete", "vp", "ve", "iddpm", "fm-ot", "edm"])
def test_prediction_types_agree(family):
    results = []
    for prediction_type in ("epsilon", "sample", "v_prediction", "joint"):
        scheduler = S2NGeneralizedScheduler(
            noise_family=family, prediction_type=prediction_type, preconditioning="none", gamma=0.026
        )
        x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * scheduler.init_noise_sigma
        results.append(sample_loop(scheduler, exact_model(scheduler, prediction_type), x, 6))
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=1e-6, atol=1e-6)
    assert torch.isfinite(results[0]).all()


def test_list_of_generators_matches_per_sample_generators():
    scheduler = S2NGeneralizedScheduler.from_preset("stochastic")
    model = exact_model(scheduler)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    batch = sample_loop(scheduler, model, x, 5, generator=[torch.Generator().manual_seed(s) for s in (10, 11)])
    singles = [sample_loop(scheduler, model, x[i : i + 1], 5, generator=torch.Generator().manual_seed(10 + i)) for i in range(2)]
    torch.testing.assert_close(batch, torch.cat(singles), rtol=1e-6, atol=1e-6)
    again = sample_loop(scheduler, model, x, 5, generator=[torch.Generator().manual_seed(s) for s in (10, 11)])
    torch.testing.assert_close(batch, again, rtol=0, atol=0)


def test_begin_index_img2img_start():
    scheduler = S2NGeneralizedScheduler(gamma=0.026, step_spacing="logsnr")
    model = exact_model(scheduler)
    scheduler.set_timesteps(10)
    start = 4
    tail = scheduler.timesteps[start:]
    clean = toy_data()[:2]
    noisy = scheduler.add_noise(clean, torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)), tail[:1])
    scheduler.set_begin_index(start)
    x = noisy
    for t in tail:
        x = scheduler.step(model(x, t), t, x).prev_sample
    assert scheduler.step_index == 10
    fresh = S2NGeneralizedScheduler(gamma=0.026, step_spacing="logsnr")
    fresh.set_timesteps(timesteps=tail.to(torch.float64).tolist())
    y = noisy
    for t in fresh.timesteps:
        y = fresh.step(model(y, t), t, y).prev_sample
    torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_presets_and_edm_rho_is_the_karras_exponent():
    edm = EDMEulerScheduler(rho=3.0, sigma_max=40.0)
    ours = S2NGeneralizedScheduler.from_preset("deterministic", edm.config)
    assert (ours.config.rho, ours.config.sde_rho, ours.config.gamma, ours.config.noise_family) == (3.0, 0.0, 0.026, "edm")
    edm.set_timesteps(9)
    ours.set_timesteps(9)
    torch.testing.assert_close(ours.timesteps, edm.timesteps, rtol=1e-5, atol=1e-5)
    assert ours.init_noise_sigma == pytest.approx(edm.init_noise_sigma)
    stochastic = S2NGeneralizedScheduler.from_preset("stochastic", DDPMScheduler().config)
    assert (stochastic.config.sde_rho, stochastic.config.gamma, stochastic.config.delta) == (1.0, 1.25, 0.95)


# ------------------------------------------------------------------ pipelines with real (tiny) UNets


def _tiny_unet(**kwargs) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        **kwargs,
    )


def test_ddpm_pipeline_with_saved_tiny_unet():
    with tempfile.TemporaryDirectory() as tmp:
        DDPMPipeline(unet=_tiny_unet(), scheduler=DDPMScheduler(num_train_timesteps=100)).save_pretrained(tmp)
        pipe = DDPMPipeline.from_pretrained(tmp)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = S2NGeneralizedScheduler.from_config(pipe.scheduler.config, gamma=0.026)
    assert pipe.scheduler.config.num_train_timesteps == 100 and pipe.scheduler.config.clip_sample
    images = pipe(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (2, 8, 8, 1) and (images >= 0).all() and (images <= 1).all()


def test_edm_style_unet_matches_edm_euler_at_gamma_zero():
    unet = _tiny_unet().eval()
    with tempfile.TemporaryDirectory() as tmp:
        unet.save_pretrained(tmp)
        unet = UNet2DModel.from_pretrained(tmp).eval()
    finals = []
    for make in (
        lambda: EDMEulerScheduler(sigma_max=20.0),
        lambda: S2NGeneralizedScheduler.from_config(EDMEulerScheduler(sigma_max=20.0).config),
    ):
        scheduler = make()
        scheduler.set_timesteps(5)
        x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
        with torch.no_grad():
            for t in scheduler.timesteps:
                x = scheduler.step(unet(scheduler.scale_model_input(x, t), t).sample, t, x).prev_sample
        finals.append(x)
    torch.testing.assert_close(finals[1], finals[0], rtol=1e-4, atol=1e-4)
    # and with the paper's tuned γ it still samples
    scheduler = S2NGeneralizedScheduler.from_preset("stochastic", EDMEulerScheduler(sigma_max=20.0).config)
    with torch.no_grad():
        out = sample_loop(
            scheduler, lambda x, t: unet(x, t).sample, torch.randn(SHAPE), 5, generator=torch.Generator().manual_seed(0)
        )
    assert torch.isfinite(out).all()


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"gamma": -1.0}, "singular"),
        ({"gamma": -2.0}, "gamma"),
        ({"sde_rho": -0.1}, "sde_rho"),
        ({"delta": 0.0}, "delta"),
        ({"gamma": float("nan")}, "gamma"),
        ({"variant": "ddim"}, "variant"),
        ({"variant": "non_markovian", "gamma": 0.5}, "non-Markovian"),
        ({"noise_family": "sde"}, "noise_family"),
        ({"noise_family": "vp", "timestep_spacing": "leading"}, "timestep_spacing"),
        ({"noise_family": "edm", "prediction_type": "sample"}, "prediction_type"),
        ({"prediction_type": "x0"}, "prediction_type"),
        ({"sigma_min": 0.1}, "sigma_min"),
        ({"noise_family": "vp", "sigma_max": 3.0}, "sigma_max"),
        ({"rho": 0.0}, "rho"),
        ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S2NGeneralizedScheduler(**kwargs)


def test_bad_calls_are_clear_errors():
    scheduler = S2NGeneralizedScheduler(prediction_type="joint")
    for bad in (0, 1001, 2.5):
        with pytest.raises(ValueError, match="num_inference_steps"):
            scheduler.set_timesteps(bad)
    with pytest.raises(ValueError, match="descending"):
        scheduler.set_timesteps(timesteps=[10, 500])
    with pytest.raises(ValueError, match="outside"):
        scheduler.set_timesteps(timesteps=[1500, 10])
    scheduler.set_timesteps(3)
    x = torch.randn(SHAPE)
    with pytest.raises(ValueError, match=r"\[ε, x0\]"):
        scheduler.step(torch.randn(SHAPE), scheduler.timesteps[0], x)
    with pytest.raises(ValueError, match="preset"):
        S2NGeneralizedScheduler.from_preset("sharp")


def test_an_edm_models_own_ladder_is_not_stored_as_a_choice():
    """EDM's Karras ladder is the default when neither spacing is given; a saved config keeps both unset, so a later
    `timestep_spacing` override still takes effect."""
    saved = S2NGeneralizedScheduler.from_config(EDMEulerScheduler().config).config
    assert (saved.timestep_spacing, saved.step_spacing) == (None, None)
    karras = S2NGeneralizedScheduler.from_config(saved, step_spacing="karras")
    linspace = S2NGeneralizedScheduler.from_config(saved, timestep_spacing="linspace")
    default = S2NGeneralizedScheduler.from_config(saved)
    for scheduler in (karras, linspace, default):
        scheduler.set_timesteps(6)
    assert torch.equal(default.timesteps, karras.timesteps) and not torch.equal(linspace.timesteps, karras.timesteps)


def test_spacing_kwargs_names_the_key_of_each_ladder():
    from diffusers_infoflow.schedulers.scheduling_s2n_generalized import spacing_kwargs

    assert spacing_kwargs("trailing") == {"timestep_spacing": "trailing"} and spacing_kwargs("karras") == {"step_spacing": "karras"}
    with pytest.raises(ValueError, match="spacing must be one of"):
        spacing_kwargs("angle")
