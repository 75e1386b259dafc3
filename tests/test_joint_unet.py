"""JointUNet2DModel, JointHeadAdapter, JointTrigPipeline and seed 004's joint loss (eq. 12)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UNet2DModel,
)
from diffusers.utils.torch_utils import randn_tensor

from diffusers_infoflow import (
    JointHeadAdapter,
    JointTrigPipeline,
    JointUNet2DModel,
    TrigAngleRKScheduler,
)
from diffusers_infoflow.models import split_joint_prediction
from diffusers_infoflow.training import joint_trig_loss, trig_noisy_sample


COMMUNITY_PIPELINE = str(Path(__file__).resolve().parents[1] / "pipelines" / "joint_trig")

TINY = {
    "sample_size": 8,
    "in_channels": 1,
    "block_out_channels": (8, 16),
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
    "norm_num_groups": 4,
    "attention_head_dim": 4,
    "layers_per_block": 1,
}


def tiny_unet(out_channels=1, seed=0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(**TINY, out_channels=out_channels).eval()


@pytest.fixture(scope="module")
def joint_model() -> JointUNet2DModel:
    torch.manual_seed(1)
    return JointUNet2DModel(**TINY, out_channels=2).eval()


def inputs(batch=2):
    gen = torch.Generator().manual_seed(3)
    return torch.randn(batch, 1, 8, 8, generator=gen), torch.tensor([3.5, 700.25])[:batch]


# ---------------------------------------------------------------------------------------- model


def test_from_unet_keeps_the_epsilon_output_and_zeroes_the_x0_head():
    unet = tiny_unet()
    joint = JointUNet2DModel.from_unet(unet).eval()
    x, t = inputs()
    with torch.no_grad():
        out = joint(x, t)
        reference = unet(x, t).sample
    assert out.sample.shape == (2, 2, 8, 8) and joint.config.out_channels == 2
    torch.testing.assert_close(out.epsilon, reference, rtol=0, atol=0)
    assert (out.x0 == 0).all()
    eps, x0 = JointUNet2DModel.split_prediction(out.sample)
    torch.testing.assert_close(eps, out.epsilon)
    torch.testing.assert_close(x0, out.x0)


def test_save_and_load_round_trip(joint_model, tmp_path):
    joint_model.save_pretrained(tmp_path)
    loaded = JointUNet2DModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is JointUNet2DModel
    assert (loaded.config.in_channels, loaded.config.out_channels) == (1, 2)
    assert '"_class_name": "JointUNet2DModel"' in (tmp_path / "config.json").read_text()
    x, t = inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t).sample, joint_model(x, t).sample, rtol=1e-5, atol=1e-5)
        assert loaded(x, t, return_dict=False)[0].shape == (2, 2, 8, 8)


def test_channel_counts_are_validated():
    with pytest.raises(ValueError, match="out_channels = 2·in_channels"):
        JointUNet2DModel(**TINY, out_channels=1)
    with pytest.raises(ValueError, match="out_channels = in_channels"):
        JointUNet2DModel.from_unet(tiny_unet(out_channels=2))  # learned variance: [ε, v]
    with pytest.raises(ValueError, match="even number of channels"):
        split_joint_prediction(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="2·in_channels"):
        JointHeadAdapter(tiny_unet())
    with pytest.raises(ValueError, match="head"):
        JointHeadAdapter(JointUNet2DModel(**TINY, out_channels=2), head="variance")


def test_head_adapter_feeds_stock_schedulers_the_epsilon_half(joint_model):
    adapter = JointHeadAdapter(joint_model)
    x, t = inputs()
    with torch.no_grad():
        full = joint_model(x, t)
        torch.testing.assert_close(adapter(x, t).sample, full.epsilon)
        torch.testing.assert_close(JointHeadAdapter(joint_model, "sample")(x, t).sample, full.x0)
    assert adapter.config.out_channels == 1
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(3)
    t0 = scheduler.timesteps[0]
    with torch.no_grad():
        out = scheduler.step(adapter(x, t0).sample, t0, x, generator=torch.Generator().manual_seed(0)).prev_sample
    assert out.shape == x.shape


# ---------------------------------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def saved_pipeline(joint_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("joint_trig_pipe")
    scheduler = TrigAngleRKScheduler(prediction_type="joint", solver="rk2")
    JointTrigPipeline(unet=joint_model, scheduler=scheduler).save_pretrained(path)
    return path


def test_community_pipeline_loads_and_samples_with_trig_rk(saved_pipeline):
    # diffusers 0.42 runs local custom code only with trust_remote_code=True
    pipe = DiffusionPipeline.from_pretrained(saved_pipeline, custom_pipeline=COMMUNITY_PIPELINE, trust_remote_code=True)
    assert type(pipe).__name__ == "JointTrigPipeline"
    assert type(pipe.unet) is JointUNet2DModel and type(pipe.scheduler) is TrigAngleRKScheduler
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (2, 8, 8, 1) and np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    pil = pipe(num_inference_steps=1, generator=torch.Generator().manual_seed(0)).images
    assert pil[0].size == (8, 8)
    with pytest.raises(ValueError, match="a list of 1 generators was passed for 2 images"):
        pipe(batch_size=2, num_inference_steps=1, generator=[torch.Generator()])


@pytest.mark.parametrize("stock", [DDIMScheduler, DPMSolverMultistepScheduler, DDPMScheduler])
def test_pipeline_samples_with_stock_schedulers(saved_pipeline, stock):
    pipe = JointTrigPipeline.from_pretrained(saved_pipeline)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = stock.from_config(pipe.scheduler.config, prediction_type="epsilon")
    assert pipe.model_output_head() == "epsilon"
    images = pipe(batch_size=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert images.shape == (2, 1, 8, 8) and torch.isfinite(images).all()


def first_step_sample(pipe, **call):
    """The sample the pipeline hands to its scheduler's first `step`."""
    seen, step = [], pipe.scheduler.step
    pipe.scheduler.step = lambda output, t, sample, **kw: seen.append(sample.clone()) or step(output, t, sample, **kw)
    pipe(**call)
    return seen[0]


def test_pipeline_starts_at_the_scale_of_the_ladder_it_sets(saved_pipeline):
    """Euler with `leading` spacing: init_noise_sigma is set by set_timesteps (61.4 at 10 steps against 14.6 for
    1000), so the start is noise · init_noise_sigma of the ladder the call sets, as in diffusers' pipelines."""
    pipe = JointTrigPipeline.from_pretrained(saved_pipeline)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, prediction_type="epsilon", timestep_spacing="leading", steps_offset=1)
    start = first_step_sample(pipe, batch_size=2, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="pt")
    ladder = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    ladder.set_timesteps(10)
    assert torch.allclose(start, randn_tensor(start.shape, generator=torch.Generator().manual_seed(0)) * ladder.init_noise_sigma)


def test_pipeline_refuses_misreading_the_joint_output(saved_pipeline):
    pipe = JointTrigPipeline.from_pretrained(saved_pipeline)
    pipe.scheduler = DDPMScheduler(variance_type="learned_range")
    with pytest.raises(ValueError, match="not a variance"):
        pipe(num_inference_steps=2)
    pipe.scheduler = DDIMScheduler(prediction_type="v_prediction")
    with pytest.raises(ValueError, match="prediction_type"):
        pipe(num_inference_steps=2)
    pipe.scheduler = DDIMScheduler.from_config(JointTrigPipeline.from_pretrained(saved_pipeline).scheduler.config)  # keeps "joint"
    with pytest.raises(ValueError, match="DDIMScheduler cannot read a joint .* prediction_type='epsilon' or 'sample'"):
        pipe(num_inference_steps=2)
    single = JointTrigPipeline(unet=tiny_unet(), scheduler=TrigAngleRKScheduler(prediction_type="joint"))
    with pytest.raises(ValueError, match="joint"):
        single(num_inference_steps=2)
    with pytest.raises(ValueError, match="output_type"):
        pipe(output_type="latent")


def test_pipeline_in_half_precision(joint_model):
    pipe = JointTrigPipeline(unet=JointUNet2DModel.from_config(joint_model.config).to(torch.float16), scheduler=TrigAngleRKScheduler(prediction_type="joint"))
    pipe.set_progress_bar_config(disable=True)
    images = pipe(num_inference_steps=1, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert images.dtype == torch.float16 and torch.isfinite(images).all()


# ---------------------------------------------------------------------------------------- loss


def test_joint_loss_terms():
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 1, 8, 8, generator=gen), torch.randn(4, 1, 8, 8, generator=gen)
    eta = torch.tensor([0.0, 0.3, 1.0, math.pi / 2])
    perfect = joint_trig_loss(noise, x0, x0, noise, eta, gamma=2.0)
    assert float(perfect.total) == 0.0
    shift = 0.5  # x̂0 off by a constant: x0 term = shift², velocity term = mean over samples of sin² η · shift²
    loss = joint_trig_loss(noise, x0 + shift, x0, noise, eta, gamma=2.0, eta_rate=3.0)
    assert float(loss.x0) == pytest.approx(shift**2) and float(loss.epsilon) == 0.0
    assert float(loss.velocity) == pytest.approx(9 * shift**2 * float((torch.sin(eta) ** 2).mean()), rel=1e-5)
    assert float(loss.total) == pytest.approx(float(loss.x0 + 2.0 * loss.velocity))
    assert float(joint_trig_loss(noise, x0 + shift, x0, noise, 0.3, norm="l1").x0) == pytest.approx(shift)
    assert float(joint_trig_loss(noise, x0 + shift, x0, noise, 0.3, norm="l2").x0) == pytest.approx(shift * 8, rel=1e-5)
    torch.testing.assert_close(trig_noisy_sample(x0, noise, eta)[3], noise[3], atol=1e-6, rtol=0)


def test_joint_loss_trains_a_joint_unet_step(joint_model):
    model = JointUNet2DModel.from_config(joint_model.config)
    x0 = torch.rand(2, 1, 8, 8) * 2 - 1
    noise, eta = torch.randn_like(x0), torch.tensor([0.2, 1.2])
    scheduler = TrigAngleRKScheduler(beta_schedule="trig")
    timesteps = scheduler.train_schedule.t_from_logsnr(2 * torch.log(1 / torch.tan(eta.double()))).float()
    out = model(trig_noisy_sample(x0, noise, eta), timesteps)
    loss = joint_trig_loss(out.epsilon, out.x0, x0, noise, eta, gamma=0.5).total
    loss.backward()
    assert model.conv_out.weight.grad is not None and torch.isfinite(model.conv_out.weight.grad).all()


def test_joint_loss_bad_inputs():
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="norm"):
        joint_trig_loss(x, x, x, x, 0.1, norm="huber")
    with pytest.raises(ValueError, match="gamma"):
        joint_trig_loss(x, x, x, x, 0.1, gamma=-1.0)
    with pytest.raises(ValueError, match="π/2"):
        joint_trig_loss(x, x, x, x, 2.0)
    with pytest.raises(ValueError, match="shape"):
        joint_trig_loss(torch.zeros(2, 2, 4, 4), x, x, x, 0.1)
    with pytest.raises(ValueError, match="angles"):
        joint_trig_loss(x, x, x, x, torch.tensor([0.1, 0.2, 0.3]))
