"""EntropyHybridPipeline (seed 000 §3.2.3) and RestorationPipeline (seed 000 Tables 2–5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    CMStochasticIterativeScheduler,
    DDPMPipeline,
    DDPMScheduler,
    DiffusionPipeline,
    EDMEulerScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    UNet2DModel,
)
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from diffusers_infoflow import DiscreteSchedule, EmpiricalDenoiser, EntropyHybridScheduler, match_timestep_fractional
from diffusers_infoflow.entropy import match_timestep
from diffusers_infoflow.metrics import RESTORATION_METRICS, restoration_metrics
from diffusers_infoflow.pipelines import EntropyHybridPipeline, RestorationPipeline
from diffusers_infoflow.pipelines.entropy_hybrid import as_entropy_hybrid_scheduler, entropy_matched_segments


ROOT = Path(__file__).resolve().parents[1]
HYBRID_DIR = str(ROOT / "pipelines" / "entropy_hybrid")
RESTORATION_DIR = str(ROOT / "pipelines" / "restoration")

TINY = {
    "sample_size": 8,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": (8, 16),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "down_block_types": ("DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D"),
}

# Schedule A = quadratic (diffusers' scaled_linear), schedule B = cosine (squaredcos_cap_v2), both T = 300.
CONFIG_A = {"num_train_timesteps": 300, "beta_schedule": "scaled_linear", "clip_sample": False}
CONFIG_B = {"num_train_timesteps": 300, "beta_schedule": "squaredcos_cap_v2", "clip_sample": False}


def tiny_unet(seed: int) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(**TINY).eval()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clean_images(n=4, shape=(1, 8, 8), seed=0) -> torch.Tensor:
    return torch.rand((n,) + shape, generator=gen(seed)) * 2 - 1


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads cost more than they save


@pytest.fixture(scope="module")
def unets():
    return tiny_unet(0), tiny_unet(1)


@pytest.fixture(scope="module")
def hybrid(unets):
    unet_a, unet_b = unets
    pipe = EntropyHybridPipeline.from_models(unet_a, DDPMScheduler(**CONFIG_A).config, unet_b, DDPMScheduler(**CONFIG_B).config, switch_step=178)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ------------------------------------------------------------------------------------------ hybrid


def test_from_models_switches_at_the_entropy_matched_step(hybrid):
    matched = match_timestep(178, src="quadratic", dst="cosine", src_steps=300, dst_steps=300)
    assert matched == 130
    sched = hybrid.scheduler
    assert isinstance(sched, EntropyHybridScheduler) and sched.config.segment_models
    segments = sched.config.segments
    assert [(s["schedule"], s["num_timesteps"], s["start"], s["end"]) for s in segments] == [
        ("scaled_linear", 300, 300, 178),
        ("squaredcos_cap_v2", 300, matched, 0),
    ]
    assert hybrid.segment_unets() == ["unet", "unet_b"]
    sched.set_timesteps()
    assert sched.num_inference_steps == 122 + 130
    # native timesteps of each model: A's 299..178, then B's matched step (0-based 129) down to 0
    assert sched.timesteps[121] == 178 and sched.timesteps[122] == matched - 1
    assert sched.segment_ids.tolist() == [0] * 122 + [1] * 130
    # every rung of a segment has exactly its model's training level (the model is told its own timestep)
    for i, table in ((0, DiscreteSchedule.from_name("quadratic", 300)), (150, DiscreteSchedule.from_name("cosine", 300))):
        assert sched.rung_alphas_cumprod(i)[0] == pytest.approx(float(table.alphas_cumprod[int(sched.timesteps[i])]), rel=1e-9)


def test_each_segment_calls_its_own_model(hybrid):
    calls = {"unet": [], "unet_b": []}
    hooks = [
        getattr(hybrid, name).register_forward_pre_hook(lambda m, args, name=name: calls[name].append(float(args[1])))
        for name in calls
    ]
    try:
        out = hybrid(batch_size=2, num_inference_steps=12, generator=gen(), output_type="np").images
    finally:
        for h in hooks:
            h.remove()
    sched = hybrid.scheduler
    ids, steps = sched.segment_ids, sched.timesteps.float()
    assert calls["unet"] == steps[ids == 0].tolist() and calls["unet_b"] == steps[ids == 1].tolist()
    assert len(calls["unet"]) == 6 and len(calls["unet_b"]) == 6
    assert out.shape == (2, 8, 8, 1) and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    swapped = EntropyHybridPipeline(unet=hybrid.unet_b, scheduler=hybrid.scheduler, unet_b=hybrid.unet)
    swapped.set_progress_bar_config(disable=True)
    assert not np.allclose(swapped(batch_size=2, num_inference_steps=12, generator=gen(), output_type="np").images, out)


def test_exact_denoisers_on_their_native_tables_land_on_data_points():
    # Bayes-optimal denoisers of one data set, each built on its own training table: the hybrid only lands
    # on the data if each is told its native timestep.
    data = clean_images(5, (1, 4, 4), seed=3)
    model_a = EmpiricalDenoiser(data, DiscreteSchedule.from_name("quadratic", 300))
    model_b = EmpiricalDenoiser(data, DiscreteSchedule.from_name("cosine", 300))
    pipe = EntropyHybridPipeline.from_models(model_a, CONFIG_A, model_b, CONFIG_B, switch_step=178, eta=0.0)
    pipe.set_progress_bar_config(disable=True)
    x = pipe(batch_size=8, generator=gen(1), output_type="pt").images * 2 - 1
    dist = torch.cdist(x.flatten(1).double(), data.flatten(1).double()).min(dim=1).values
    assert dist.max() < 1e-5
    wrong = EntropyHybridPipeline(unet=model_b, scheduler=pipe.scheduler, unet_b=model_a)
    wrong.set_progress_bar_config(disable=True)
    y = wrong(batch_size=8, generator=gen(1), output_type="pt").images * 2 - 1
    assert torch.cdist(y.flatten(1).double(), data.flatten(1).double()).min(dim=1).values.max() > 100 * dist.max()


def test_one_model_equals_the_entropy_matching_scheduler(unets):
    unet = unets[0]
    pipe = EntropyHybridPipeline.from_models(unet, CONFIG_A, None, CONFIG_B, switch_step=178)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet_b is None and not pipe.scheduler.config.segment_models
    assert pipe.segment_unets() == ["unet", "unet"]
    scheduler = EntropyHybridScheduler(**CONFIG_A, segments=entropy_matched_segments(CONFIG_A, CONFIG_B, 178))
    reference = DDPMPipeline(unet=unet, scheduler=scheduler)
    reference.set_progress_bar_config(disable=True)
    expected = reference(batch_size=2, num_inference_steps=10, generator=gen(), output_type="np").images
    ours = pipe(batch_size=2, num_inference_steps=10, generator=gen(), output_type="np").images
    np.testing.assert_array_equal(ours, expected)
    # the one model is told the quadratic timestep matched to cosine step 130
    assert pipe.scheduler.timesteps.dtype == torch.float32
    # with segment_models=True the segment of another schedule needs unet_b
    pipe.scheduler = EntropyHybridScheduler.from_config(pipe.scheduler.config, segment_models=True)
    with pytest.raises(ValueError, match="no unet_b"):
        pipe(num_inference_steps=4, output_type="np")


@pytest.mark.parametrize("two_models", [True, False])
def test_save_and_load_through_the_community_pipeline(hybrid, two_models, tmp_path):
    pipe = hybrid
    if not two_models:
        pipe = EntropyHybridPipeline.from_models(hybrid.unet, CONFIG_A, None, CONFIG_B, switch_step=178)
        pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["scheduler"][0].startswith("diffusers_infoflow") and index["scheduler"][1] == "EntropyHybridScheduler"
    assert (index.get("unet_b", [None])[0] is not None) == two_models  # a missing optional unet_b is [null, null]
    loaded = DiffusionPipeline.from_pretrained(tmp_path, custom_pipeline=HYBRID_DIR, trust_remote_code=True)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded).__name__ == "EntropyHybridPipeline"
    assert (loaded.unet_b is None) != two_models
    assert loaded.scheduler.config.segments == pipe.scheduler.config.segments
    kwargs = {"batch_size": 2, "num_inference_steps": 10, "output_type": "np"}
    np.testing.assert_array_equal(loaded(generator=gen(), **kwargs).images, pipe(generator=gen(), **kwargs).images)
    assert len(pipe(num_inference_steps=2, generator=gen()).images) == 1  # PIL by default
    # importing diffusers_infoflow registers the class with diffusers: no custom code needed
    assert type(DiffusionPipeline.from_pretrained(tmp_path)) is EntropyHybridPipeline


def test_plain_ddpm_and_euler_checkpoints_load(unets, tmp_path):
    unet = unets[0]
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(**CONFIG_A)).save_pretrained(tmp_path / "ddpm")
    reference = DDPMPipeline.from_pretrained(tmp_path / "ddpm")
    reference.set_progress_bar_config(disable=True)
    expected = reference(batch_size=2, num_inference_steps=10, generator=gen(), output_type="np").images
    pipe = DiffusionPipeline.from_pretrained(tmp_path / "ddpm", custom_pipeline=HYBRID_DIR, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe.scheduler) is EntropyHybridScheduler and pipe.unet_b is None
    ours = pipe(batch_size=2, num_inference_steps=10, generator=gen(), output_type="np").images
    assert np.abs(ours - expected).max() < 1e-4  # η = 1 is ancestral DDPM
    restore = DiffusionPipeline.from_pretrained(tmp_path / "ddpm", custom_pipeline=RESTORATION_DIR, trust_remote_code=True)
    assert type(restore).__name__ == "RestorationPipeline" and type(restore.scheduler) is EntropyHybridScheduler
    # an "EDM-style" VP checkpoint: Euler (k-diffusion) sampler over the model's β table
    DDPMPipeline(unet=unet, scheduler=EulerDiscreteScheduler(**{k: v for k, v in CONFIG_A.items() if k != "clip_sample"}, use_karras_sigmas=True)).save_pretrained(tmp_path / "euler")
    euler = DiffusionPipeline.from_pretrained(tmp_path / "euler", custom_pipeline=HYBRID_DIR, trust_remote_code=True)
    assert torch.equal(euler.scheduler.train_schedule.alphas_cumprod, pipe.scheduler.train_schedule.alphas_cumprod)
    assert euler.scheduler.config.timestep_spacing == "linspace"  # Euler's default spacing is kept


def test_the_start_has_the_scale_of_the_ladder_it_sets(unets):
    """An EDM model with a linear sampling schedule: the noisiest rung, and so init_noise_sigma, comes from
    set_timesteps; the pipeline sets the ladder before it scales the noise."""
    scheduler = EntropyHybridScheduler.from_config(EDMEulerScheduler().config, sampling_schedule="linear", sampling_num_timesteps=100)
    pipe = EntropyHybridPipeline(unet=unets[0], scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    seen, step = [], scheduler.step
    scheduler.step = lambda output, t, sample, **kw: seen.append(sample.clone()) or step(output, t, sample, **kw)
    pipe(batch_size=2, num_inference_steps=10, generator=gen(), output_type="pt")
    ladder = EntropyHybridScheduler.from_config(scheduler.config)
    ladder.set_timesteps(10)
    assert ladder.init_noise_sigma < 2  # against 80 for the model's own noisiest level
    assert torch.allclose(seen[0], randn_tensor(seen[0].shape, generator=gen()) * ladder.init_noise_sigma)


def test_scheduler_configs_that_cannot_be_interpreted():
    # EDM and flow-matching configs are read through the model interface; two-model segments need β tables
    assert as_entropy_hybrid_scheduler(EDMEulerScheduler()).config.noise_family == "edm"
    assert as_entropy_hybrid_scheduler(FlowMatchEulerDiscreteScheduler().config).config.noise_family == "flow"
    with pytest.raises(ValueError, match="CMStochasticIterativeScheduler"):
        as_entropy_hybrid_scheduler(CMStochasticIterativeScheduler())
    with pytest.raises(ValueError, match="timestep_type='continuous'"):
        as_entropy_hybrid_scheduler(EulerDiscreteScheduler(timestep_type="continuous"))
    with pytest.raises(ValueError, match="variance_type='learned_range'"):
        as_entropy_hybrid_scheduler(DDPMScheduler(variance_type="learned_range"))
    with pytest.raises(ValueError, match="thresholding=True of the DDPMScheduler config"):
        as_entropy_hybrid_scheduler(DDPMScheduler(thresholding=True))
    with pytest.raises(ValueError, match="switch_step"):
        entropy_matched_segments(CONFIG_A, CONFIG_B, 300)
    with pytest.raises(ValueError, match="identical"):
        EntropyHybridPipeline.from_models(tiny_unet(0), CONFIG_A, tiny_unet(1), CONFIG_A, switch_step=100)


# ------------------------------------------------------------------------------------------ restoration


@pytest.fixture(scope="module")
def restorer(unets):
    pipe = RestorationPipeline(unet=unets[1], scheduler=DDPMScheduler(**CONFIG_B))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_restoration_outputs_metrics_and_the_source_marginal(restorer):
    x0 = clean_images(4)
    out = restorer(x0, source_step=50, source_schedule="linear", source_num_timesteps=300, num_inference_steps=6, generator=gen(7), output_type="pt")
    assert type(restorer.scheduler) is EntropyHybridScheduler
    # the noisy images are exactly the linear schedule's forward marginal with the generator's first draw
    linear = DiscreteSchedule.from_name("linear", 300)
    eps = randn_tensor(x0.shape, generator=gen(7))
    expected = float(linear.alpha(49)) * x0 + float(linear.sigma(49)) * eps
    torch.testing.assert_close(out.noisy_images * 2 - 1, expected, rtol=0, atol=1e-5)
    # entry at the entropy-matched fractional step of the model's cosine table
    assert out.start_timestep == pytest.approx(match_timestep_fractional(50, src="linear", dst="cosine", src_steps=300, dst_steps=300) - 1, abs=1e-4)
    assert set(out.metrics) == {"restored", "noisy"}
    clean01 = (x0 / 2 + 0.5).clamp(0, 1)
    direct = {
        "restored": restoration_metrics(clean01, out.images),
        "noisy": restoration_metrics(clean01, out.noisy_images, mi_restored_range=(float(out.noisy_images.min()), float(out.noisy_images.max()))),
    }
    for which in ("restored", "noisy"):
        assert set(out.metrics[which]["mean"]) == set(RESTORATION_METRICS)
        for name in RESTORATION_METRICS:
            values = out.metrics[which]["per_sample"][name]
            assert values.shape == (4,) and torch.isfinite(values).all()
            torch.testing.assert_close(values, direct[which]["per_sample"][name], rtol=0, atol=0)
    assert out.images.shape == (4, 1, 8, 8) and 0 <= out.images.min() and out.images.max() <= 1


def test_noisy_marginal_statistics_with_a_large_batch(restorer):
    x0 = torch.full((256, 1, 8, 8), 0.5)
    out = restorer(x0, 120, "quadratic", 300, num_inference_steps=1, generator=gen(1), output_type="pt", compute_metrics=False)
    quad = DiscreteSchedule.from_name("quadratic", 300)
    noisy = out.noisy_images * 2 - 1
    assert out.metrics is None
    assert float(noisy.mean()) == pytest.approx(0.5 * float(quad.alpha(119)), abs=0.02)
    assert float(noisy.std()) == pytest.approx(float(quad.sigma(119)), rel=0.02)
    # model A's DDPM scheduler as the source: its training table (scaled_linear = quadratic)
    kwargs = {"num_inference_steps": 1, "output_type": "pt", "compute_metrics": False}
    by_name = restorer(x0[:2], 120, "quadratic", 300, generator=gen(2), **kwargs).noisy_images
    by_scheduler = restorer(x0[:2], 120, DDPMScheduler(**CONFIG_A), generator=gen(2), **kwargs).noisy_images
    torch.testing.assert_close(by_scheduler, by_name, rtol=0, atol=1e-6)


def test_exact_denoiser_restores_images_noised_under_another_schedule():
    x0 = clean_images(4, (1, 8, 8), seed=5)
    model = EmpiricalDenoiser(x0, DiscreteSchedule.from_name("cosine", 300))
    pipe = RestorationPipeline(unet=model, scheduler=EntropyHybridScheduler(**CONFIG_B, eta=0.0))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(x0, 40, "linear", generator=gen(2), output_type="pt")
    restored, noisy = out.metrics["restored"]["mean"], out.metrics["noisy"]["mean"]
    assert float(restored["mse"]) < 1e-6 < float(noisy["mse"])
    assert float(restored["ssim"]) > 0.999 > float(noisy["ssim"])
    assert float(restored["cosine_similarity"]) > float(noisy["cosine_similarity"])


def test_restoration_accepts_np_and_pil_images(restorer):
    x0 = clean_images(2)
    kwargs = {"source_step": 30, "num_inference_steps": 3, "output_type": "np", "compute_metrics": False}
    from_tensor = restorer(x0, generator=gen(3), **kwargs)
    array = (x0 / 2 + 0.5).permute(0, 2, 3, 1).numpy()
    from_np = restorer(array, generator=gen(3), **kwargs)
    np.testing.assert_allclose(from_np.noisy_images, from_tensor.noisy_images, atol=1e-6)
    np.testing.assert_allclose(from_np.images, from_tensor.images, atol=1e-5)
    pil = [Image.fromarray((a[..., 0] * 255).round().astype(np.uint8)) for a in array]
    from_pil = restorer(pil, generator=gen(3), **kwargs)
    assert np.abs(from_pil.noisy_images - from_tensor.noisy_images).max() < 1 / 255
    assert len(restorer(pil[0], 30, num_inference_steps=2, compute_metrics=False).images) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"source_schedule": "laplace"}, "Unknown beta schedule 'laplace'"),
        ({"source_step": 0}, "source_step 0 is out of range"),
        ({"source_step": 301}, "source_step 301 is out of range"),
        ({"source_step": 3, "source_num_timesteps": 2}, "source_step 3 is out of range"),
        ({"images": torch.zeros(2, 3, 8, 8)}, "images have 3 channels but the model takes 1"),
        ({"images": torch.full((2, 1, 8, 8), 1.5)}, r"must lie in \[-1, 1\]"),
        ({"images": np.full((2, 8, 8, 1), 2.0, dtype=np.float32)}, r"must lie in \[0, 1\]"),
        ({"images": [[0.0]]}, "images must be a tensor"),
        ({"noise": torch.zeros(1, 1, 8, 8)}, "noise has shape"),
        ({"output_type": "latent"}, "output_type"),
        ({"images": clean_images(2)[:0]}, "images is empty"),
        ({"images": np.zeros((2, 1, 8, 8), np.float32)}, r"images must be \(N, H, W\) or channels-last \(N, H, W, C\)"),
        ({"generator": [gen(0)]}, "a list of 1 generators was passed for 2 images"),
        ({"source_schedule": EDMEulerScheduler()}, "source_schedule: EDMEulerScheduler reads as noise_family='edm'"),
    ],
)
def test_restoration_bad_inputs(restorer, kwargs, match):
    call = {"images": clean_images(2), "source_step": 50, "source_schedule": "linear", "num_inference_steps": 2}
    call.update(kwargs)
    with pytest.raises(ValueError, match=match):
        restorer(**call)


def test_restoration_warns_on_tensor_images_that_look_like_zero_to_one(restorer, caplog):
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            restorer(clean_images(2), 50, num_inference_steps=2, compute_metrics=False)
            assert "images * 2 - 1" not in caplog.text  # [-1, 1] images pass quietly
            restorer(clean_images(2) / 2 + 0.5, 50, num_inference_steps=2, compute_metrics=False)
    finally:
        diffusers_logging.disable_propagation()
    assert "these lie in [0" in caplog.text and "images * 2 - 1" in caplog.text


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"batch_size": 2.0}, "batch_size must be a positive integer, got 2.0"),
    ({"batch_size": 3, "generator": [torch.Generator()] * 2}, "a list of 2 generators was passed for 3 images"),
])
def test_hybrid_batch_inputs_are_refused_before_sampling(hybrid, kwargs, match):
    with pytest.raises(ValueError, match=match):
        hybrid(num_inference_steps=2, **kwargs)
