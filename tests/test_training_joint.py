"""scripts/train.py with --prediction_type joint (seed 004): a JointTrigPipeline folder, exact resume, clear errors."""

import json
import os
import re


os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from diffusers_infoflow import get_betas
from diffusers_infoflow.sampling import steps_within_calls
from diffusers_infoflow.training import (
    build_noise_scheduler,
    checkpoint_step,
    joint_diffusion_loss,
    joint_trig_loss,
    list_checkpoints,
    training_angles,
    validate_args,
)

from .test_training import SINGLE, check_crash_and_resume, parse_args, train_in_process, train_script


# The tiny single-process run of test_training (6 steps across an epoch boundary, accumulation 2, EMA) as a
# joint model on seed 004's trig schedule, with a non-default velocity weight.
JOINT = SINGLE + ["--prediction_type", "joint", "--beta_schedule", "trig", "--joint_gamma", "0.5"]


@pytest.fixture(scope="module")
def joint_uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("joint_full")
    train_in_process(JOINT + ["--num_card_samples", "4", "--card_inference_steps", "10"], out)
    return out


def test_joint_output_dir_loads_as_joint_trig_pipeline_and_samples(joint_uninterrupted):
    from diffusers import DiffusionPipeline

    from diffusers_infoflow import JointTrigPipeline, JointUNet2DModel, TrigAngleRKScheduler

    out = joint_uninterrupted
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "JointTrigPipeline"
    assert index["unet"] == ["diffusers_infoflow.models.joint_unet", "JointUNet2DModel"]
    assert index["scheduler"] == ["diffusers_infoflow.schedulers.scheduling_trig_angle_rk", "TrigAngleRKScheduler"]

    pipeline = DiffusionPipeline.from_pretrained(str(out))
    assert isinstance(pipeline, JointTrigPipeline)
    assert isinstance(pipeline.unet, JointUNet2DModel) and pipeline.unet.config.out_channels == 2
    assert isinstance(pipeline.scheduler, TrigAngleRKScheduler)
    assert pipeline.scheduler.config.prediction_type == "joint" and pipeline.scheduler.config.solver == "rk4"
    # the saved table is the training schedule (trig is not a diffusers name, so it travels as trained_betas)
    assert torch.allclose(torch.tensor(pipeline.scheduler.config.trained_betas, dtype=torch.float64), get_betas("trig", 1000))
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(batch_size=2, num_inference_steps=1, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (2, 16, 16, 1) and (images >= 0).all() and (images <= 1).all()

    card = (out / "README.md").read_text()
    assert "joint [ε, x0] prediction" in card and "joint-prediction" in card
    assert "import diffusers_infoflow" in card and "--scheduler trig-rk4" in card
    assert "## Training recipe" not in card  # no --card_notes, no section
    # the grid used as many whole rk4 steps as fit in --card_inference_steps 10 model calls
    steps, calls = steps_within_calls(TrigAngleRKScheduler.from_config(pipeline.scheduler.config), 10)
    assert (out / "samples.png").is_file() and f"TrigAngleRKScheduler (rk4) with {steps} steps = {calls} model calls" in card
    assert f"num_inference_steps={steps}" in card
    assert "γ_g = 0.5" in card
    record = json.loads((out / "infoflow_training_args.json").read_text())
    assert (record["prediction_type"], record["joint_gamma"], record["joint_loss_norm"], record["joint_solver"]) == ("joint", 0.5, "mse", "rk4")
    assert [checkpoint_step(p) for p in list_checkpoints(str(out))] == [2, 4, 6]


def test_joint_card_drawn_with_another_scheduler_says_which(joint_uninterrupted, tmp_path):
    """--card_scheduler unipc on a joint model: the grid and its `infoflow sample` line are UniPC's (on the x0 head),
    and the usage snippet, which runs the pipeline's saved solver, says so instead of claiming the grid."""
    import shutil

    from diffusers_infoflow.hub import write_model_card

    folder = tmp_path / "joint"
    shutil.copytree(joint_uninterrupted, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    args = parse_args(JOINT + ["--num_card_samples", "4", "--card_inference_steps", "10", "--card_scheduler", "unipc",
                               "--output_dir", str(folder), "--overwrite_output_dir"])
    card = open(write_model_card(str(folder), args, final_loss=None, num_processes=1, total_steps=6)).read()
    assert "--scheduler unipc --model-calls 10 --num-images 4 --seed 3`" in card
    assert "4 samples, UniPCMultistepScheduler with 10 steps = 10 model calls, seed 3." in card
    assert ".images  # the saved trig-rk4 sampler; the grid below: --scheduler unipc" in card
    assert "num_inference_steps=" not in card


def test_joint_crash_and_resume_latest_matches_uninterrupted_run(joint_uninterrupted, tmp_path, monkeypatch):
    check_crash_and_resume(JOINT, joint_uninterrupted, tmp_path, monkeypatch)


def test_infoflow_sample_runs_on_a_trained_joint_folder(joint_uninterrupted, tmp_path, capsys, monkeypatch):
    from diffusers_infoflow import JointUNet2DModel
    from diffusers_infoflow.cli import main

    calls = []
    forward = JointUNet2DModel.forward
    monkeypatch.setattr(JointUNet2DModel, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    out = tmp_path / "grid.png"
    assert main(["sample", "--model", str(joint_uninterrupted), "--scheduler", "trig-rk4", "--model-calls", "9", "--num_images", "1", "--output", str(out)]) == 0
    assert out.is_file() and 1 <= len(calls) <= 9 and f"= {len(calls)} model calls" in capsys.readouterr().out


def test_joint_loss_uses_the_samplers_timestep_convention_and_head_order():
    """The model told timestep t sees the saved TrigAngleRKScheduler's forward marginal at t (= DDPM's
    add_noise), i.e. x_η with cos² η = ᾱ_t, the level at which the sampler reads its output; the loss reads
    channels [ε, x0]. Same draws as the ε objective: ε first, then t, from the keyed generator."""
    from diffusers import DDPMScheduler

    from diffusers_infoflow import TrigAngleRKScheduler

    args = parse_args(["--dataset_name", "triangles", "--prediction_type", "joint", "--beta_schedule", "cosine", "--num_train_timesteps", "100"])
    scheduler = build_noise_scheduler(args)
    assert isinstance(scheduler, TrigAngleRKScheduler)
    clean = torch.linspace(-0.9, 0.9, 8 * 16).view(8, 1, 4, 4)
    seen = {}

    class Recorder(torch.nn.Module):
        def forward(self, x, t):
            seen.update(x=x, t=t)
            x0 = clean.flip(0)  # some fixed wrong guess for each head
            return type("Out", (), {"sample": torch.cat([0.5 * x, x0], dim=1)})()

    terms = joint_diffusion_loss(Recorder(), scheduler, clean, torch.Generator().manual_seed(0), gamma=0.3, norm="l1")
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(clean.shape, generator=generator)
    t = torch.randint(0, 100, (8,), generator=generator)
    assert torch.equal(seen["t"], t)
    torch.testing.assert_close(seen["x"], scheduler.add_noise(clean, noise, t))
    ddpm = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")
    torch.testing.assert_close(seen["x"], ddpm.add_noise(clean, noise, t), atol=1e-5, rtol=0)
    eta = torch.arccos(scheduler.train_schedule.alphas_cumprod[t].sqrt()).float()
    expected = joint_trig_loss(0.5 * seen["x"], clean.flip(0), clean, noise, eta, gamma=0.3, norm="l1")
    torch.testing.assert_close(terms.total, expected.total)

    # the exact model of a one-image data set, read at the angle of its timestep, scores 0
    class ExactJoint(torch.nn.Module):
        def forward(self, x, t):
            eta = training_angles(scheduler, t).view(-1, 1, 1, 1)
            eps = ((x.double() - torch.cos(eta) * clean[:1]) / torch.sin(eta)).float()
            return type("Out", (), {"sample": torch.cat([eps, clean[:1].expand_as(x)], dim=1)})()

    one_image = clean[:1].expand(8, 1, 4, 4).contiguous()
    assert joint_diffusion_loss(ExactJoint(), scheduler, one_image, torch.Generator().manual_seed(1)).total.item() < 1e-8


def test_a_joint_multistep_pipeline_saves_the_rungs_of_infoflow_samples_trig_multistep():
    from diffusers_infoflow.sampling import build_scheduler

    args = parse_args(["--dataset_name", "triangles", "--prediction_type", "joint", "--joint_solver", "multistep"])
    saved = build_noise_scheduler(args)
    assert (saved.config.step_spacing, saved.config.ladder_end) == ("linspace", "trailing")
    saved.set_timesteps(10)
    named = build_scheduler("trig-multistep", saved.config, joint=True)
    named.set_timesteps(10)
    assert torch.equal(saved.timesteps, named.timesteps)
    assert build_noise_scheduler(parse_args(["--dataset_name", "triangles", "--prediction_type", "joint"])).config.step_spacing is None


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid", "trig"])
def test_joint_scheduler_angles_are_the_training_schedule(name):
    args = parse_args(["--dataset_name", "triangles", "--prediction_type", "joint", "--beta_schedule", name, "--num_train_timesteps", "100"])
    scheduler = build_noise_scheduler(args)
    alphas_cumprod = torch.cumprod(1 - get_betas(name, 100), 0)
    eta = training_angles(scheduler, torch.arange(100))
    torch.testing.assert_close(torch.cos(eta) ** 2, alphas_cumprod, atol=1e-12, rtol=0)
    assert (eta > 0).all() and (eta < torch.pi / 2).all()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--joint_gamma", "0.5"], "--joint_gamma applies only to --prediction_type joint"),
        (["--prediction_type", "v_prediction", "--joint_solver", "rk2"], "--joint_solver applies only to --prediction_type joint"),
        (["--prediction_type", "joint", "--joint_gamma", "-1"], "--joint_gamma must be a finite number >= 0"),
        (["--prediction_type", "joint", "--joint_gamma", "nan"], "--joint_gamma must be a finite number >= 0"),
        (["--prediction_type", "joint", "--card_inference_steps", "0"], "--card_inference_steps 0 model calls cannot sample the card's grid with trig-rk4"),
        (["--prediction_type", "joint", "--joint_solver", "rk2", "--card_inference_steps", "-1"], "cannot sample the card's grid with trig-rk2"),
    ],
)
def test_bad_joint_arguments_raise_a_clear_value_error(extra, message, capsys):
    args = train_script.build_arg_parser().parse_args(["--dataset_name", "triangles"] + extra)
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_args(args)
    with pytest.raises(SystemExit):
        parse_args(["--dataset_name", "triangles"] + extra)
    assert message in capsys.readouterr().err


def test_joint_card_steps_are_not_checked_without_a_card():
    args = parse_args(["--dataset_name", "triangles", "--prediction_type", "joint", "--card_inference_steps", "0", "--num_card_samples", "0"])
    assert (args.joint_gamma, args.joint_loss_norm, args.joint_solver) == (1.0, "mse", "rk4")
    assert parse_args(["--dataset_name", "triangles"]).joint_gamma is None


def test_init_unet_widens_a_trained_epsilon_model_and_keeps_its_architecture(tmp_path, capsys):
    """--init_unet: a joint run fine-tuned from an ε folder starts from its weights (ε head = the ε model)."""
    from diffusers import UNet2DModel

    from diffusers_infoflow import JointUNet2DModel
    from diffusers_infoflow.training import load_init_unet

    epsilon = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                          block_out_channels=(8, 16), norm_num_groups=8,
                          down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    epsilon.save_pretrained(tmp_path / "eps" / "unet")
    args = parse_args(JOINT + ["--init_unet", str(tmp_path / "eps"), "--block_out_channels", "32,64", "--output_dir", str(tmp_path / "o")])
    joint = load_init_unet(args, num_channels=1)
    assert isinstance(joint, JointUNet2DModel)
    assert (args.block_out_channels, args.layers_per_block, args.attention) == ([8, 16], 1, "on")  # the loaded network's
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10, 500])
    with torch.no_grad():
        assert torch.allclose(joint(x, t).sample[:, :1], epsilon(x, t).sample, atol=1e-6)

    args.resolution = 32
    with pytest.raises(ValueError, match="size 16"):
        load_init_unet(args, num_channels=1)
    with pytest.raises(SystemExit):
        parse_args(JOINT + ["--init_unet", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "o")])
    assert "has no UNet config" in capsys.readouterr().err
