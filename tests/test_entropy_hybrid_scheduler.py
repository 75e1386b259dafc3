"""EntropyHybridScheduler: exact special cases against diffusers, hybrid ladders, restoration, pipelines."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

from diffusers_infoflow import DiscreteSchedule, EmpiricalDenoiser, EntropyHybridScheduler, match_timestep_fractional

from .scheduler_checks import SchedulerChecks, sample_loop


def _data(n=6, shape=(1, 8, 8), seed=0):
    return torch.rand((n,) + shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class TestEntropyHybridCommon(SchedulerChecks):
    scheduler_class = EntropyHybridScheduler

    def default_config(self):
        return {"num_train_timesteps": 100, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}

    def make_model(self, scheduler):
        model = EmpiricalDenoiser(_data(), scheduler.train_schedule)
        return lambda x, t: model(x, t).sample


class TestEntropyHybridCommonOtherLadder(TestEntropyHybridCommon):
    """The same checks with a foreign, longer sampling schedule (fractional model timesteps)."""

    def default_config(self):
        return {
            "num_train_timesteps": 100,
            "beta_schedule": "squaredcos_cap_v2",
            "sampling_schedule": "sigmoid",
            "sampling_num_timesteps": 250,
            "eta": 0.5,
        }


def _run_pair(ref, ours, model, steps, seed=0, shape=(3, 1, 8, 8)):
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    assert torch.equal(ref.timesteps, ours.timesteps)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    y = x.clone()
    g_ref, g_ours = torch.Generator().manual_seed(seed + 1), torch.Generator().manual_seed(seed + 1)
    worst = 0.0
    for t in ref.timesteps:
        x = ref.step(model(x, t).sample, t, x, generator=g_ref).prev_sample
        y = ours.step(model(y, t).sample, t, y, generator=g_ours).prev_sample
        worst = max(worst, float((x - y).abs().max()))
    return worst


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("steps", [50, 12])
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_eta_one_is_ancestral_ddpm(schedule, steps, prediction_type):
    ddpm = DDPMScheduler(num_train_timesteps=50, beta_schedule=schedule, clip_sample=True, prediction_type=prediction_type)
    ours = EntropyHybridScheduler.from_config(ddpm.config)
    model = EmpiricalDenoiser(_data(), ours.train_schedule, prediction_type=prediction_type)
    assert _run_pair(ddpm, ours, model, steps) < 1e-4


@pytest.mark.parametrize("spacing", ["leading", "linspace"])
def test_eta_zero_is_ddim(spacing):
    # DDIM's previous timestep is t − T/n, which is the next rung for leading spacing and (up to
    # rounding) linspace spacing at these sizes; trailing spacing differs in diffusers' DDIM itself.
    ddim = DDIMScheduler(num_train_timesteps=50, beta_schedule="scaled_linear", clip_sample=False, timestep_spacing=spacing)
    ours = EntropyHybridScheduler.from_config(ddim.config, eta=0.0)
    model = EmpiricalDenoiser(_data(), ours.train_schedule)
    steps = 10 if spacing == "leading" else 50
    assert _run_pair(ddim, ours, model, steps) < 1e-4


def test_drop_in_for_a_locally_saved_ddpm_pipeline(tmp_path):
    unet = UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(tmp_path)
    pipe = DDPMPipeline.from_pretrained(tmp_path)
    reference = pipe(batch_size=2, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="np").images
    pipe.scheduler = EntropyHybridScheduler.from_config(pipe.scheduler.config)
    ours = pipe(batch_size=2, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert ours.shape == reference.shape == (2, 8, 8, 1)
    assert abs(ours - reference).max() < 1e-4
    # a foreign sampling ladder: the UNet is told fractional timesteps and still runs
    pipe.scheduler = EntropyHybridScheduler.from_config(pipe.scheduler.config, sampling_schedule="cosine", sampling_num_timesteps=300)
    images = pipe(batch_size=1, num_inference_steps=12, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert pipe.scheduler.timesteps.dtype == torch.float32 and images.shape == (1, 8, 8, 1)


def test_model_is_told_the_timestep_whose_level_the_update_uses():
    sched = EntropyHybridScheduler(num_train_timesteps=300, beta_schedule="quadratic", sampling_schedule="cosine")
    sched.set_timesteps(30)
    train = sched.train_schedule
    for i, tau in enumerate(sched.timesteps):
        abar_t, _ = sched.rung_alphas_cumprod(i)
        assert abar_t == pytest.approx(float(train.alpha(float(tau)) ** 2), rel=1e-6)
    rounded = EntropyHybridScheduler.from_config(sched.config, fractional_timesteps=False)
    rounded.set_timesteps(30)
    assert rounded.timesteps.dtype == torch.long
    for i, tau in enumerate(rounded.timesteps):
        assert rounded.rung_alphas_cumprod(i)[0] == pytest.approx(float(train.alphas_cumprod[int(tau)]), rel=1e-12)


def test_sampling_ladder_follows_the_foreign_schedule_levels():
    sched = EntropyHybridScheduler(num_train_timesteps=1000, beta_schedule="linear", sampling_schedule="cosine", sampling_num_timesteps=300)
    sched.set_timesteps(20)
    cosine = DiscreteSchedule.from_name("cosine", 300)
    # leading spacing on the cosine table: its own 0-based indices 285, 270, ..., 0
    idx = torch.arange(19, -1, -1) * 15
    # each rung is the level of the float32 timestep the model is told (a round-off of about 1e-7)
    for i, k in enumerate(idx.tolist()):
        assert sched.rung_alphas_cumprod(i)[0] == pytest.approx(float(cosine.alphas_cumprod[k]), rel=1e-6)


def test_levels_beyond_the_training_range_are_clamped_with_a_warning(caplog):
    # linear with T = 300 stops at ᾱ ≈ 0.05; the trig ladder starts near ᾱ = 0
    sched = EntropyHybridScheduler(num_train_timesteps=300, beta_schedule="linear", sampling_schedule="trig", sampling_num_timesteps=1000)
    sched.set_timesteps(50)
    assert float(sched.timesteps[0]) == 299.0
    assert sched.num_inference_steps < 50  # merged rungs are not run twice
    assert (sched.timesteps[1:] < sched.timesteps[:-1]).all()


PAPER_HYBRID = [
    {"schedule": "quadratic", "num_timesteps": 300, "start": 300, "end": 178},
    {"schedule": "cosine", "num_timesteps": 300, "start": 130, "end": 0},
]


def test_paper_hybrid_runs_252_model_calls_and_switches_at_matched_entropy():
    sched = EntropyHybridScheduler(num_train_timesteps=300, beta_schedule="quadratic", segments=PAPER_HYBRID, segment_models=True)
    sched.set_timesteps()
    assert sched.num_inference_steps == 122 + 130
    assert sched.segment_ids.tolist() == [0] * 122 + [1] * 130
    # each segment's model is told its native timestep: quadratic 299..178, then cosine 129..0
    assert sched.timesteps[:122].tolist() == list(range(299, 177, -1))
    assert sched.timesteps[122:].tolist() == list(range(129, -1, -1))
    # the switch: the last quadratic update lands on cosine step 130, whose entropy equals quadratic 178's
    lam_next = sched._ladder_logsnr[122]
    quad178 = DiscreteSchedule.from_name("quadratic", 300).logsnr(177)
    assert abs(float(lam_next - quad178)) < 0.05
    # a budget is shared in proportion to the segment lengths
    sched.set_timesteps(25)
    assert sched.num_inference_steps == 25 and sched.segment_ids.tolist().count(0) == 12


@pytest.mark.parametrize("budget", [3, 4, 5, 40])
def test_a_short_segment_never_makes_the_budget_overshoot(budget):
    """One call at least per segment: with a 1-step segment between long ones the apportionment must still add
    up to the budget (3 calls had made 6 rungs)."""
    segments = [{"schedule": "linear", "num_timesteps": 1000, "start": 1000, "end": 900},
                {"schedule": "linear", "num_timesteps": 1000, "start": 800, "end": 799},
                {"schedule": "linear", "num_timesteps": 1000, "start": 700, "end": 0}]
    sched = EntropyHybridScheduler(num_train_timesteps=1000, segments=segments)
    sched.set_timesteps(budget)
    assert sched.num_inference_steps == budget and len(sched.timesteps) == budget
    assert sorted(set(sched.segment_ids.tolist())) == [0, 1, 2]


def test_hybrid_with_one_model_uses_matched_timesteps():
    sched = EntropyHybridScheduler(num_train_timesteps=300, beta_schedule="quadratic", segments=PAPER_HYBRID)
    sched.set_timesteps()
    cos130_in_quadratic = match_timestep_fractional(130, src="cosine", dst="quadratic", src_steps=300, dst_steps=300) - 1
    assert float(sched.timesteps[122]) == pytest.approx(cos130_in_quadratic, abs=1e-4)


def test_restoration_enters_at_the_source_noise_level():
    x0 = _data(4)
    source = DiscreteSchedule.from_name("linear", 300)
    sched = EntropyHybridScheduler(num_train_timesteps=300, beta_schedule="squaredcos_cap_v2", eta=0.0)
    model = EmpiricalDenoiser(x0, sched.train_schedule)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    t_src = 50
    noisy = float(source.alpha(t_src - 1)) * x0 + float(source.sigma(t_src - 1)) * noise
    sched.set_restoration_timesteps(t_src, source_schedule="linear", source_num_timesteps=300)
    assert sched.rung_alphas_cumprod(0)[0] == pytest.approx(float(source.alphas_cumprod[t_src - 1]), rel=1e-6)
    assert float(sched.timesteps[0]) == pytest.approx(match_timestep_fractional(t_src, src="linear", dst="cosine", src_steps=300, dst_steps=300) - 1, abs=1e-4)
    x = noisy
    for t in sched.timesteps:
        x = sched.step(model(x, t).sample, t, x).prev_sample
    # the exact denoiser of these four points restores them from a moderate noise level
    assert (x - x0).abs().max() < 1e-3
    # a budget of model calls
    sched.set_restoration_timesteps(t_src, source_schedule="linear", source_num_timesteps=300, num_inference_steps=8)
    assert sched.num_inference_steps == 8


def test_sampling_lands_on_data_points():
    data = _data(5, shape=(1, 4, 4), seed=3)
    for eta in (0.0, 1.0):
        sched = EntropyHybridScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", eta=eta)
        model = EmpiricalDenoiser(data, sched.train_schedule)
        x = sample_loop(sched, lambda z, t: model(z, t).sample, torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(1)), 200, generator=torch.Generator().manual_seed(2))
        dist = torch.cdist(x.flatten(1), data.flatten(1)).min(dim=1).values
        assert dist.max() < 1e-3, (eta, dist)


def test_img2img_begin_index():
    sched = EntropyHybridScheduler(num_train_timesteps=100, eta=0.0)
    sched.set_timesteps(10)
    sched.set_begin_index(4)
    model = EmpiricalDenoiser(_data(), sched.train_schedule)
    x = torch.randn(2, 1, 8, 8)
    t = sched.timesteps[4]
    sched.step(model(x, t).sample, t, x)
    assert sched.step_index == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta_schedule": "laplace"}, "Unknown beta schedule 'laplace'"),
        ({"num_train_timesteps": 1}, "num_train_timesteps"),
        ({"beta_start": 0.0}, "beta_start"),
        ({"beta_end": 1.2}, "beta_end"),
        ({"prediction_type": "x0"}, "prediction_type must be one of"),
        ({"timestep_spacing": "karras"}, "timestep_spacing must be one of"),
        ({"step_spacing": "logsnr"}, "step_spacing must be one of"),
        ({"eta": 1.5}, "eta must lie in"),
        ({"sampling_schedule": "nope"}, "Unknown beta schedule 'nope'"),
        ({"thresholding": True}, "thresholding"),
        ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),  # with an epsilon model
        ({"segments": [{"schedule": "cosine", "num_timesteps": 100, "start": 10, "end": 20}]}, "0 <= end < start"),
        ({"segments": [{"schedule": "cosine", "start": 10, "end": 0}]}, "keys schedule, num_timesteps"),
        ({"segment_models": True}, "needs `segments`"),
        ({"trained_betas": [0.1, 0.2]}, "trained_betas has 2 entries"),
    ],
)
def test_bad_configs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EntropyHybridScheduler(**{"num_train_timesteps": 100, **kwargs})


def test_bad_calls():
    sched = EntropyHybridScheduler(num_train_timesteps=100)
    with pytest.raises(ValueError, match=r"num_inference_steps must be an integer in \[1, 100\]"):
        sched.set_timesteps(101)
    with pytest.raises(ValueError, match="strictly descending"):
        sched.set_timesteps(timesteps=[5, 10])
    sched.set_timesteps(10)
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match="no learned variance"):
        sched.step(torch.randn(1, 2, 8, 8), sched.timesteps[0], x)
    with pytest.raises(ValueError, match="source_step 400 is out of range"):
        sched.set_restoration_timesteps(400, source_schedule="linear", source_num_timesteps=300)
    with pytest.raises(ValueError, match="noise shape"):
        sched.add_noise(x, torch.randn(2, 1, 8, 8), torch.tensor([3]))
