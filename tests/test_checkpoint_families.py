"""Every checkpoint family under all three schedulers: published configs, exact denoisers of each family, the
exact probability flow, diffusers' native schedulers side by side, save/load round trips."""

from __future__ import annotations

import math

import diffusers
import pytest
import torch

from diffusers_infoflow import EntropyHybridScheduler, GaussianDenoiser, S2NGeneralizedScheduler, TrigAngleRKScheduler
from diffusers_infoflow.entropy import match_model_timestep
from diffusers_infoflow.model_interface import ModelInterface

from .tiny_pipelines import native_scheduler, scheduler_config


pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = [
    "ddpm-cifar10-32", "ddpm-celebahq-256", "sd15", "sd21-v", "sdxl-base", "zero-snr-v-trailing",
    "playground-v2.5", "sd3-medium", "flux1-dev", "flux1-schnell",
]
FAMILY = {"playground-v2.5": "edm", "sd3-medium": "flow", "flux1-dev": "flow", "flux1-schnell": "flow"}
SCHEDULERS = [EntropyHybridScheduler, S2NGeneralizedScheduler, TrigAngleRKScheduler]
# the deterministic, one-call-per-step setting of each scheduler
ODE_SETTINGS = {
    EntropyHybridScheduler: {"eta": 0.0},
    S2NGeneralizedScheduler: {},
    TrigAngleRKScheduler: {"solver": "multistep"},
}
SHAPE = (4, 8, 8)
MU = 1.15  # a FLUX-style dynamic shift, as FluxPipeline passes it with its sigmas


def _gaussian(interface: ModelInterface) -> GaussianDenoiser:
    g = torch.Generator().manual_seed(0)
    mean = 0.6 * torch.rand(SHAPE, generator=g, dtype=torch.float64) - 0.3
    variance = 0.02 + 0.3 * torch.rand(SHAPE, generator=g, dtype=torch.float64)
    return GaussianDenoiser(mean, variance, interface)


def _ours(cls, name: str, **overrides):
    return cls.from_config(scheduler_config(name), **{"clip_sample": False, **ODE_SETTINGS[cls], **overrides})


def _native_first_order(name: str):
    family = FAMILY.get(name, "discrete")
    if family == "edm":
        return diffusers.EDMEulerScheduler.from_config(scheduler_config(name))
    if family == "flow":
        return native_scheduler(name)
    return diffusers.DDIMScheduler.from_config(scheduler_config(name), clip_sample=False, set_alpha_to_one=True)


def _set_kwargs(name: str, calls: int) -> dict:
    if name == "flux1-dev":  # FluxPipeline: sigmas = linspace(1, 1/N, N) and mu, never num_inference_steps
        return {"sigmas": torch.linspace(1.0, 1.0 / calls, calls).tolist(), "mu": MU}
    return {"num_inference_steps": calls}


def _sample(scheduler, model, x, **set_kwargs):
    scheduler.set_timesteps(**set_kwargs)
    calls = 0
    for t in scheduler.timesteps:
        scaled = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x  # FlowMatch has none
        out = model(scaled, t).sample
        x = scheduler.step(out, t, x).prev_sample
        calls += 1
    return x, calls


def _error(name: str, scheduler, calls: int) -> float:
    interface = ModelInterface.from_config(S2NGeneralizedScheduler.from_config(scheduler_config(name)).config)
    model = _gaussian(interface)
    noise = torch.randn((16, *SHAPE), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # the same start for every sampler: pure noise at the model's noisiest level, as a pipeline draws it
    x = noise * interface.init_noise_sigma
    reference = model.ode_solution_logsnr(x, interface.logsnr_range[0], math.inf)
    out, used = _sample(scheduler, model, x, **_set_kwargs(name, calls))
    assert used == calls
    return float(((out - reference) ** 2).mean().sqrt())


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("cls", SCHEDULERS)
def test_native_start_and_noise_family(cls, name):
    ours, native = _ours(cls, name), native_scheduler(name)
    assert ours.config.noise_family == FAMILY.get(name, "discrete")
    # VP tables run on the variance-preserving state (Euler's σ-scaled frame is its sampler's own convention)
    expected = 1.0 if ours.config.noise_family != "edm" else float(native.init_noise_sigma)  # FlowMatch has no attribute: 1
    assert ours.init_noise_sigma == pytest.approx(expected, rel=1e-5)
    assert ours.config.prediction_type == scheduler_config(name).get("prediction_type", "flow_prediction" if name in FAMILY and FAMILY[name] == "flow" else "epsilon")


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("cls", SCHEDULERS)
def test_within_a_few_times_the_native_first_order_solver(cls, name):
    """At 10 and 20 model calls from the same pure-noise start, each scheduler is at most 3x the error of the
    family's native first-order solver on the exact Gaussian flow: none quietly runs the wrong family."""
    for calls in (10, 20):
        ours, native = _error(name, _ours(cls, name), calls), _error(name, _native_first_order(name), calls)
        assert math.isfinite(ours) and ours <= 3 * native, (calls, ours, native)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("cls", SCHEDULERS)
def test_one_to_fifty_steps_finite_and_save_load_round_trip(cls, name, tmp_path):
    scheduler = cls.from_config(scheduler_config(name))
    model = _gaussian(scheduler.interface)
    x = torch.randn((2, *SHAPE), generator=torch.Generator().manual_seed(2)) * scheduler.init_noise_sigma
    for steps in (1, 2, 50):
        kwargs = _set_kwargs(name, steps)
        out, _ = _sample(scheduler, model, x.clone(), **kwargs)
        assert torch.isfinite(out).all(), steps
    scheduler.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.config) == public(scheduler.config)
    torch.manual_seed(5)  # the same ancestral noise for both (EntropyHybrid's default eta = 1)
    first, _ = _sample(scheduler, model, x.clone(), **_set_kwargs(name, 8))
    torch.manual_seed(5)
    again, _ = _sample(loaded, model, x.clone(), **_set_kwargs(name, 8))
    torch.testing.assert_close(first, again, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["playground-v2.5"])
def test_edm_told_c_noise_and_scaled_like_the_native_scheduler(name):
    native = native_scheduler(name)
    native.set_timesteps(12)
    for cls in SCHEDULERS:
        ours = cls.from_config(scheduler_config(name), **ODE_SETTINGS[cls])
        ours.set_timesteps(sigmas=native.sigmas[:-1].tolist())
        torch.testing.assert_close(ours.timesteps.float(), native.timesteps.float(), rtol=0, atol=1e-6)
        x = torch.randn(2, *SHAPE)
        t = ours.timesteps[3]
        torch.testing.assert_close(ours.scale_model_input(x, t), native.scale_model_input(x, native.timesteps[3]), rtol=1e-5, atol=0)


@pytest.mark.parametrize("name", ["sd3-medium", "flux1-dev", "flux1-schnell"])
def test_flow_matching_ladder_is_the_native_one(name):
    native = native_scheduler(name)
    kwargs = {"sigmas": torch.linspace(1.0, 1.0 / 7, 7).tolist(), "mu": MU} if name == "flux1-dev" else {"num_inference_steps": 7}
    native.set_timesteps(**kwargs)
    for cls in (EntropyHybridScheduler, S2NGeneralizedScheduler):
        ours = cls.from_config(scheduler_config(name))
        ours.set_timesteps(**kwargs)
        torch.testing.assert_close(ours.timesteps, native.timesteps, rtol=1e-6, atol=1e-3)
    # img2img: scale_noise equals the native forward process at a ladder timestep
    ours = TrigAngleRKScheduler.from_config(scheduler_config(name))
    x0, noise = torch.randn(2, *SHAPE), torch.randn(2, *SHAPE)
    t = native.timesteps[2:3]
    torch.testing.assert_close(ours.scale_noise(x0, t, noise), native.scale_noise(x0, t, noise), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_in_memory_configs_without_class_name(cls):
    """`X.from_config(pipe.scheduler.config)` of a scheduler built in code: its config has no `_class_name`."""
    edm = diffusers.EDMEulerScheduler(sigma_max=80.0)
    assert cls.from_config(edm.config).init_noise_sigma == pytest.approx(edm.init_noise_sigma, rel=1e-6)
    assert cls.from_config(diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0).config).config.noise_family == "flow"
    assert cls.from_config(diffusers.EulerDiscreteScheduler().config).config.noise_family == "discrete"
    with pytest.raises(ValueError, match="CMStochasticIterativeScheduler"):
        cls.from_config(diffusers.CMStochasticIterativeScheduler().config)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_keys_a_saved_config_leaves_out_take_the_source_class_defaults(cls, tmp_path):
    """A saved config records only some keys; diffusers fills the rest from the class it names, and so do we (not
    from our own defaults): Heun's β range is SD's scaled-linear one, DDIM clips, Euler spaces `linspace`."""
    import json

    for class_name, given in (("HeunDiscreteScheduler", {"beta_schedule": "scaled_linear"}), ("DDIMScheduler", {}), ("EulerDiscreteScheduler", {})):
        folder = tmp_path / class_name
        folder.mkdir()
        (folder / "scheduler_config.json").write_text(json.dumps({"_class_name": class_name, "num_train_timesteps": 1000, **given}))
        native = getattr(diffusers, class_name).from_pretrained(folder)
        ours = cls.from_pretrained(folder)
        torch.testing.assert_close(ours.interface.schedule.alphas_cumprod.float(), native.alphas_cumprod, rtol=1e-5, atol=1e-7)
        for key in ("clip_sample", "timestep_spacing"):
            if key in native.config and key in ours.config:
                assert ours.config[key] == native.config[key], (class_name, key)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_flow_sigmas_outside_the_unit_interval_are_refused(cls):
    ours = cls.from_config(diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0).config)
    for sigmas in ([1.5, 0.5], [1.0, 0.5, 0.0]):
        with pytest.raises(ValueError, match=r"flow-matching `sigmas` must lie in \(0, 1\]"):
            ours.set_timesteps(sigmas=sigmas)


@pytest.mark.parametrize("family", ["edm", "flow"])
@pytest.mark.parametrize("cls", [EntropyHybridScheduler, S2NGeneralizedScheduler])
def test_table_ladder_keys_on_models_with_their_own_ladder_are_refused(cls, family):
    """`trailing` spacing or a steps_offset would change nothing on an EDM or flow model's own ladder: refused."""
    for kwargs in ({"timestep_spacing": "trailing"}, {"steps_offset": 5}):
        with pytest.raises(ValueError, match="timestep_spacing|steps_offset"):
            cls(noise_family=family, **kwargs)


@pytest.mark.parametrize("name", ["playground-v2.5", "sd3-medium"])
@pytest.mark.parametrize("source", SCHEDULERS)
def test_converting_between_our_schedulers_keeps_an_edm_or_flow_ladder(source, name):
    """`B.from_config(A.config)` for any two of ours on an EDM or flow model: the same ladder as B from the source config."""
    via = source.from_config(scheduler_config(name))
    for target in SCHEDULERS:
        converted, direct = target.from_config(via.config), target.from_config(scheduler_config(name))
        converted.set_timesteps(6)
        direct.set_timesteps(6)
        torch.testing.assert_close(converted.timesteps, direct.timesteps)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_diffusers_ays_sigma_lists_give_eulers_calls(cls):
    """diffusers' AysSchedules sigma lists (rounded σ_max first, 0 last), as a pipeline passes them to Euler: the same
    10 model timesteps as EulerDiscreteScheduler; past the table's end by more than rounding, S2N still refuses a σ."""
    from diffusers.schedulers.scheduling_utils import AysSchedules

    for name, key in (("sd15", "StableDiffusionSigmas"), ("sdxl-base", "StableDiffusionXLSigmas")):
        euler = diffusers.EulerDiscreteScheduler.from_config(scheduler_config(name))
        euler.set_timesteps(sigmas=AysSchedules[key])
        ours = _ours(cls, name)
        ours.set_timesteps(sigmas=AysSchedules[key])
        assert len(ours.timesteps) == len(euler.timesteps) == 10
        torch.testing.assert_close(ours.timesteps.double(), euler.timesteps.double(), rtol=0, atol=1e-3)
    if cls is S2NGeneralizedScheduler:  # (the others tell levels noisier than the table its noisiest one, by design)
        with pytest.raises(ValueError, match="outside this schedule's range"):
            _ours(cls, "sd15").set_timesteps(sigmas=[14.7, 1.0, 0.0])


def test_zero_snr_table_is_exact_and_epsilon_models_are_refused():
    native = native_scheduler("zero-snr-v-trailing")
    ours = S2NGeneralizedScheduler.from_config(scheduler_config("zero-snr-v-trailing"))
    torch.testing.assert_close(ours.interface.schedule.alphas_cumprod.float(), native.alphas_cumprod, rtol=0, atol=1e-6)
    assert ours.interface.logsnr_range[0] == -math.inf and float(native.alphas_cumprod[-1]) == 0.0
    for cls in SCHEDULERS:
        with pytest.raises(ValueError, match="rescale_betas_zero_snr"):
            cls.from_config(scheduler_config("zero-snr-v-trailing"), prediction_type="epsilon")


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_unsupported_configs_are_refused_by_name(cls):
    with pytest.raises(ValueError, match="CMStochasticIterativeScheduler"):
        cls.from_config(scheduler_config("consistency-model"))
    base = scheduler_config("ddpm-cifar10-32")
    for source, key, value in (("ddpm-cifar10-32", "thresholding", True), ("ddpm-cifar10-32", "variance_type", "learned_range"),
                               ("sdxl-base", "timestep_type", "continuous")):  # each a key its source class runs with
        with pytest.raises(ValueError, match=key):
            cls.from_config({**scheduler_config(source), key: value})
    with pytest.raises(ValueError, match="not_a_key"):
        cls.from_config({**base, "not_a_key": 1})
    with pytest.raises(ValueError, match="mu"):
        cls.from_config(base).set_timesteps(4, mu=0.5)


def test_flux_dynamic_shift_needs_mu():
    # (TrigAngleRKScheduler places its own angle grid, which no shift enters, unless a pipeline passes sigmas/mu)
    for cls in (EntropyHybridScheduler, S2NGeneralizedScheduler):
        with pytest.raises(ValueError, match="mu"):
            cls.from_config(scheduler_config("flux1-dev")).set_timesteps(num_inference_steps=4)


def test_entropy_matching_across_families():
    vp = S2NGeneralizedScheduler.from_config(scheduler_config("sd15"))
    flow = S2NGeneralizedScheduler.from_config(scheduler_config("sd3-medium"))
    edm = S2NGeneralizedScheduler.from_config(scheduler_config("playground-v2.5"))
    # SD 1.5 at τ = 500: ᾱ = 0.2763, λ = log(ᾱ/(1 − ᾱ)); flow: (1 − t)/t = e^{λ/2}; EDM: σ = e^{−λ/2}
    abar = float(vp.interface.schedule.alphas_cumprod[500])
    lam = math.log(abar / (1 - abar))
    t_flow = float(match_model_timestep(500, src=vp, dst=flow))
    assert t_flow / 1000 == pytest.approx(1 / (1 + math.exp(lam / 2)), rel=1e-6)
    c_noise = float(match_model_timestep(500, src=vp, dst=edm))
    assert c_noise == pytest.approx(0.25 * (-lam / 2), rel=1e-6)
    # and back
    assert float(match_model_timestep(t_flow, src=flow, dst=vp)) == pytest.approx(500, abs=1e-3)
    assert float(match_model_timestep(500, src=vp, dst=scheduler_config("sd21-v"))) == 500


def test_restore_a_vp_noised_image_with_flow_and_edm_models():
    """Noise under SD 1.5's VP table, restore with a flow-matching or an EDM model entered at the matched level:
    the exact denoisers of each family restore to the same clean image."""
    source = S2NGeneralizedScheduler.from_config(scheduler_config("sd15")).interface.schedule
    x0 = torch.rand((2, *SHAPE), generator=torch.Generator().manual_seed(3), dtype=torch.float64) - 0.5
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    level = torch.tensor([300.0], dtype=torch.float64)
    noisy_vp = float(source.alpha(level)) * x0 + float(source.sigma(level)) * noise
    # the exact flow from that point to clean data is the same in every family's units
    reference = _gaussian(S2NGeneralizedScheduler.from_config(scheduler_config("sd21-v")).interface).ode_solution_logsnr(
        noisy_vp, float(source.logsnr(level)), math.inf
    )
    for name in ("sd3-medium", "playground-v2.5", "sd21-v"):
        sched = EntropyHybridScheduler.from_config(scheduler_config(name), eta=0.0)
        model = _gaussian(sched.interface)
        sched.set_restoration_timesteps(301, source_schedule=source, num_inference_steps=30)
        x = noisy_vp * float(sched.interface.scale(source.logsnr(level)))
        assert float(sched._ladder_logsnr[0]) == pytest.approx(float(source.logsnr(level)), rel=1e-5)
        for t in sched.timesteps:
            x = sched.step(model(sched.scale_model_input(x, t), t).sample, t, x).prev_sample
        assert float(((x - reference) ** 2).mean().sqrt()) < 0.03, name  # DDIM, 30 calls: 0.012-0.016 in each family


def test_extrapolated_last_step_lands_closer_on_a_noisy_clean_end():
    """SD's cleanest training level is still noisy (σ̃ = 0.03): x̂0 there misses the flow's endpoint by a floor
    that final_step='extrapolate' (Richardson in σ̃² from the last two calls) removes."""
    plain = _error("sd15", _ours(TrigAngleRKScheduler, "sd15", step_spacing="karras", predict_x0=False), 20)
    extrapolated = _error("sd15", _ours(TrigAngleRKScheduler, "sd15", step_spacing="karras", predict_x0=False, final_step="extrapolate"), 20)
    assert extrapolated < 0.5 * plain, (extrapolated, plain)
    with pytest.raises(ValueError, match="one-call-per-step"):
        TrigAngleRKScheduler(solver="rk4", final_step="extrapolate")


def test_source_sampler_options_are_replaced_and_other_families_keys_refused():
    # a DPM-Solver config's solver_order is its sampler's, not ours
    assert TrigAngleRKScheduler.from_config(diffusers.DPMSolverMultistepScheduler().config).config.solver_order == 3
    flow_unipc = diffusers.UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0, timestep_spacing="trailing")
    for cls in SCHEDULERS:
        scheduler = cls.from_config(flow_unipc.config)
        assert (scheduler.config.noise_family, scheduler.config.shift) == ("flow", 3.0)
        with pytest.raises(ValueError, match="beta_schedule"):
            cls(noise_family="flow", beta_schedule="squaredcos_cap_v2")
    for config in (diffusers.IPNDMScheduler().config, {k: v for k, v in diffusers.EDMDPMSolverMultistepScheduler().config.items() if k in
                   ("sigma_min", "sigma_max", "sigma_data", "sigma_schedule", "num_train_timesteps", "solver_order", "prediction_type", "rho",
                    "solver_type", "lower_order_final", "euler_at_final", "final_sigmas_type")}):  # CosineDPMSolver's key set
        with pytest.raises(ValueError, match="cannot read a (IPNDM|CosineDPMSolverMultistep)Scheduler config"):
            S2NGeneralizedScheduler.from_config(config)
    with pytest.raises(ValueError, match="mu"):
        S2NGeneralizedScheduler.from_config(scheduler_config("flux1-dev")).set_timesteps(timesteps=[1000.0, 500.0], mu=0.5)


def test_init_noise_sigma_is_the_scale_of_the_first_rung_actually_set():
    """An EDM model walked along a foreign VP ladder starts at that ladder's first level, not at σ_max."""
    scheduler = EntropyHybridScheduler.from_config(scheduler_config("playground-v2.5"), sampling_schedule="linear", sampling_num_timesteps=100)
    scheduler.set_timesteps(10)
    first = float(scheduler._ladder_logsnr[0])
    assert scheduler.init_noise_sigma == pytest.approx(math.sqrt(1 + math.exp(-first)), rel=1e-9) and scheduler.init_noise_sigma < 80


@pytest.mark.parametrize("name", ["sd3-medium", "playground-v2.5"])
def test_restoration_pipeline_with_a_flow_or_edm_model(name):
    """RestorationPipeline: noise under the linear VP table, restore with a flow-matching or EDM model."""
    from diffusers.utils.torch_utils import randn_tensor

    from diffusers_infoflow.pipelines import RestorationPipeline
    from diffusers_infoflow.schedules import DiscreteSchedule

    scheduler = EntropyHybridScheduler.from_config(scheduler_config(name), eta=0.0)
    unet = GaussianDenoiser(torch.zeros(1, 8, 8, dtype=torch.float64), torch.full((1, 8, 8), 0.2, dtype=torch.float64), scheduler.interface)
    pipe = RestorationPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    x0 = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    out = pipe(x0, source_step=100, source_schedule="linear", source_num_timesteps=1000, num_inference_steps=20,
               generator=torch.Generator().manual_seed(1), output_type="pt", mi_bins=16)  # fmt: skip
    linear = DiscreteSchedule.from_name("linear", 1000)
    eps = randn_tensor(x0.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.noisy_images * 2 - 1, float(linear.alpha(99)) * x0 + float(linear.sigma(99)) * eps, rtol=0, atol=1e-5)
    assert torch.isfinite(out.images).all()
    assert out.metrics["restored"]["mean"]["mse"] < out.metrics["noisy"]["mean"]["mse"]


@pytest.mark.parametrize("scheduler_class", [EntropyHybridScheduler, S2NGeneralizedScheduler])
def test_a_one_step_ladder_starts_at_the_noisiest_level(scheduler_class):
    """One rung is where sampling starts (EDM: σ_max = 80, as diffusers' EDMEulerScheduler); pinning the clean end
    too had put it at σ_min, so pure noise was denoised as if nearly clean."""
    native = diffusers.EDMEulerScheduler()
    ours = scheduler_class.from_config(native.config)
    ours.set_timesteps(1)
    native.set_timesteps(1)
    assert ours.init_noise_sigma == pytest.approx(native.init_noise_sigma, rel=1e-4)
    assert float(ours.timesteps[0]) == pytest.approx(float(native.timesteps[0]), rel=1e-4)
    flow = ModelInterface.from_config({"noise_family": "flow"})
    for spacing in ("time", "karras", "logsnr"):
        assert flow.spaced_logsnrs(1, spacing).tolist() == [-math.inf]
    assert flow.spaced_logsnrs(2, "karras").tolist() == flow.spaced_logsnrs(2, "logsnr").tolist()  # was [−∞, clean end]


@pytest.mark.parametrize(
    "config, message",
    [
        # σ is infinite at a zero-terminal-SNR table's first level: EDM scaling gave λ = −∞ everywhere and NaN steps
        ({"rescale_betas_zero_snr": True, "preconditioning": "edm", "prediction_type": "v_prediction"}, "preconditioning='edm' scales by σ"),
        # EDM's range is sigma_min/sigma_max; schedule_params was read by no branch
        ({"noise_family": "edm", "schedule_params": {"sigma_max": 120}}, "schedule_params=.* not to 'edm'"),
    ],
)
def test_configs_that_cannot_be_honoured_are_refused(config, message):
    with pytest.raises(ValueError, match=message):
        S2NGeneralizedScheduler(**config)


def test_flow_mode_dpm_solver_configs_convert_despite_their_unused_beta_keys():
    """DPM-Solver in flow mode keeps VP-table keys (beta_schedule, ...) it never uses; they are not ours to refuse."""
    native = diffusers.DPMSolverMultistepScheduler(use_flow_sigmas=True, flow_shift=3.0, prediction_type="flow_prediction",
                                                   beta_schedule="scaled_linear", rescale_betas_zero_snr=True)
    ours = EntropyHybridScheduler.from_config(native.config)
    assert ours.config.noise_family == "flow" and ours.config.shift == 3.0


def test_a_zero_snr_table_cannot_be_a_segment():
    from diffusers_infoflow.pipelines.entropy_hybrid import schedule_segment

    zero_snr = diffusers.DDPMScheduler(beta_schedule="scaled_linear", rescale_betas_zero_snr=True, prediction_type="v_prediction")
    with pytest.raises(ValueError, match="zero-terminal-SNR table .* cannot be a segment"):
        schedule_segment(zero_snr)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_a_pipelines_rungs_beyond_the_ladder_are_told_as_given(cls):
    """Explicit rungs past the native ladder's ends that the model still takes (flow's t = 0.002 below SD3's last
    rung, EDM's σ = 120 above σ_max and 0.001 below σ_min) are told as given, and sampling starts at the first."""
    flow = cls.from_config(scheduler_config("sd3-medium"), **ODE_SETTINGS[cls])
    flow.set_timesteps(timesteps=[1000.0, 500.0, 2.0])
    assert flow.timesteps.tolist() == [1000.0, 500.0, 2.0]
    edm = cls.from_config(scheduler_config("playground-v2.5"), **ODE_SETTINGS[cls])
    edm.set_timesteps(sigmas=[120.0, 10.0, 0.001])
    assert torch.allclose(edm.timesteps, 0.25 * torch.log(torch.tensor([120.0, 10.0, 0.001])), rtol=0, atol=1e-6)
    assert edm.init_noise_sigma == pytest.approx(math.sqrt(120.0**2 + 1), rel=1e-6)


def test_a_trig_solver_given_to_from_config_keeps_an_in_memory_configs_family():
    """`solver=` replaces our own multistep options; a diffusers class's same-named keys stay until its class is
    told from them (an in-memory config has no `_class_name`), so EDM and flow configs stay EDM and flow."""
    edm = diffusers.EDMDPMSolverMultistepScheduler(prediction_type="v_prediction", sigma_data=1.0)
    flow = diffusers.DPMSolverMultistepScheduler(use_flow_sigmas=True, flow_shift=3.0, prediction_type="flow_prediction")
    for solver in ("rk4", "ddim"):
        converted = TrigAngleRKScheduler.from_config(edm.config, solver=solver)
        assert (converted.config.noise_family, converted.config.sigma_data) == ("edm", 1.0)
        assert TrigAngleRKScheduler.from_config(flow.config, solver=solver).config.noise_family == "flow"
    ours = TrigAngleRKScheduler(solver="multistep", solver_order=2)
    assert TrigAngleRKScheduler.from_config(ours.config, solver="rk4").config.solver_order == 3  # the default again


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_a_key_its_source_class_does_not_take_is_read_as_that_class_runs(cls):
    """SDXL's saved Euler config carries DDIM's clip_sample, which Euler never applies: set to true it does not clip
    here either; a DDIM config's own clip_sample does."""
    euler = {**scheduler_config("sdxl-base"), "clip_sample": True}
    assert cls.from_config(euler).config.clip_sample is False
    ddim = {**scheduler_config("sd21-v"), "clip_sample": True}
    assert cls.from_config(ddim).config.clip_sample is True


@pytest.mark.parametrize("cls", SCHEDULERS)
@pytest.mark.parametrize("name", CONFIGS)
def test_get_velocity_is_the_v_target_the_scheduler_reads(cls, name):
    scheduler = _ours(cls, name, prediction_type="v_prediction")
    g = torch.Generator().manual_seed(3)
    x0, noise = torch.randn((2, *SHAPE), generator=g), torch.randn((2, *SHAPE), generator=g)
    if FAMILY.get(name) == "edm":
        with pytest.raises(ValueError, match="preconditioning='edm'"):
            scheduler.get_velocity(x0, noise, torch.tensor([1.0, 0.5]))
        return
    if FAMILY.get(name) is None:  # a β table: diffusers' own v target (float32, as its training scripts use it)
        steps = torch.tensor([0, 999]) if "zero-snr" in name else torch.tensor([10, 700])
        native = diffusers.DDPMScheduler.from_config(scheduler_config(name))
        torch.testing.assert_close(scheduler.get_velocity(x0, noise, steps), native.get_velocity(x0, noise, steps))
    # an exact v model at the first call: the scheduler recovers x0 from the v that get_velocity gives
    scheduler.set_timesteps(**_set_kwargs(name, 5))
    t = scheduler.timesteps[0]
    x = scheduler.add_noise(x0, noise, t.repeat(2))
    out = scheduler.step(scheduler.get_velocity(x0, noise, t.repeat(2)), t, x)
    torch.testing.assert_close(out.pred_original_sample, x0, rtol=1e-4, atol=1e-4)
