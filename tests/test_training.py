"""End-to-end checks of scripts/train.py: tiny CPU runs, exact resume (1 and 2 processes), crash recovery."""

import importlib.util
import json
import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the unknown-dataset check must fail fast, not retry the network
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from diffusers_infoflow.hub import CARD_SCHEDULERS
from diffusers_infoflow.images import make_grid
from diffusers_infoflow.sampling import build_scheduler, generate
from diffusers_infoflow.schedules import DISCRETE_SCHEDULES
from diffusers_infoflow.training import (
    SimulatedCrash,
    build_noise_scheduler,
    checkpoint_step,
    epoch_batches,
    list_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
    train,
    validate_args,
)
from diffusers_infoflow.training.checkpointing import _CheckpointableEMA


REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = str(REPO / "scripts" / "train.py")
# The command line (parse_args, build_arg_parser) lives in the script, which is not part of the package.
_spec = importlib.util.spec_from_file_location("infoflow_train_script", TRAIN_SCRIPT)
train_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_script)
parse_args = train_script.parse_args
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
# 32 triangles, 16×16, a 2-level UNet of widths 8/16: a few seconds per run on one CPU core.
TINY = [
    "--dataset_name", "triangles", "--dataset_options", "count=32", "--resolution", "16",
    "--block_out_channels", "8,16", "--layers_per_block", "1", "--train_batch_size", "4",
    "--learning_rate", "1e-3", "--lr_warmup_steps", "2", "--lr_scheduler", "cosine", "--use_ema",
    "--checkpointing_steps", "2", "--report_to", "none", "--num_card_samples", "0", "--seed", "3",
]
# 1 process: 8 images per step (accumulation 2) → 4 steps per epoch, so 6 steps cross an epoch boundary.
SINGLE = TINY + ["--gradient_accumulation_steps", "2", "--max_train_steps", "6"]
# 2 processes × 4 images → 4 steps per epoch as well.
DOUBLE = TINY + ["--max_train_steps", "6"]


def train_in_process(args, output_dir, crash_after=None, monkeypatch=None):
    """Runs the training function in this process (saves the subprocess start-up of `launch`)."""
    if crash_after is not None:
        monkeypatch.setenv("INFOFLOW_CRASH_AFTER_STEP", str(crash_after))
    try:
        train(parse_args(list(args) + ["--output_dir", str(output_dir)]))
    finally:
        if monkeypatch is not None:
            monkeypatch.delenv("INFOFLOW_CRASH_AFTER_STEP", raising=False)


def launch(args, output_dir, processes=1, crash_after=None, wait=True):
    """Runs scripts/train.py through `accelerate launch` (gloo data parallel for 2 processes)."""
    env = dict(ENV)
    if processes == 1:
        cmd = [sys.executable, TRAIN_SCRIPT]
    else:
        env["ACCELERATE_USE_CPU"] = "1"  # `--cpu --num_processes 2` would quietly run one process
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", TRAIN_SCRIPT]
    if crash_after is not None:
        env["INFOFLOW_CRASH_AFTER_STEP"] = str(crash_after)
    cmd += list(args) + ["--output_dir", str(output_dir)]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def final_weights(output_dir):
    return load_file(str(Path(output_dir) / "unet" / "diffusion_pytorch_model.safetensors"))


def max_weight_diff(a, b):
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def check_ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("single_full")
    notes = tmp_path_factory.mktemp("notes") / "recipe.md"
    notes.write_text("Six steps, because a test has no time for more.\n")
    train_in_process(SINGLE + ["--num_card_samples", "4", "--card_inference_steps", "2", "--card_notes", str(notes)], out)
    return out


def test_output_dir_is_a_ddpm_pipeline_with_model_card(uninterrupted):
    from diffusers import DDPMPipeline, DiffusionPipeline

    pipeline = DiffusionPipeline.from_pretrained(str(uninterrupted))
    assert isinstance(pipeline, DDPMPipeline)
    image = pipeline(batch_size=1, num_inference_steps=2, output_type="np").images
    assert image.shape == (1, 16, 16, 1)
    card = (uninterrupted / "README.md").read_text()
    assert "library_name: diffusers" in card and "linear" in card and "entropy.png" in card
    assert (uninterrupted / "entropy.png").is_file()
    assert (uninterrupted / "samples.png").is_file() and "samples.png" in card
    assert "## Training recipe\n\nSix steps, because a test has no time for more.\n\n## Training\n" in card
    assert "--scheduler ddim --model-calls 2 --num-images 4 --seed 3`" in card and "4 samples, DDIMScheduler with 2 steps = 2 model calls, seed 3." in card
    assert json.loads((uninterrupted / "infoflow_training_args.json").read_text())["max_train_steps"] == 6
    assert [checkpoint_step(p) for p in list_checkpoints(str(uninterrupted))] == [2, 4, 6]


def check_crash_and_resume(args, uninterrupted_dir, tmp_path, monkeypatch):
    """``args`` with ``--resume_from_checkpoint latest`` starts a run in an empty folder (as diffusers' scripts do);
    stopped after its step-2 checkpoint, the same command resumes it and ends with the weights of the uninterrupted
    run in ``uninterrupted_dir`` (to 1e-6)."""
    args = args + ["--resume_from_checkpoint", "latest"]
    with pytest.raises(SimulatedCrash):
        train_in_process(args, tmp_path, crash_after=2, monkeypatch=monkeypatch)
    assert not (tmp_path / "model_index.json").exists()
    assert resolve_checkpoint("latest", str(tmp_path)).endswith("checkpoint-2")
    train_in_process(args, tmp_path)
    assert max_weight_diff(uninterrupted_dir, tmp_path) <= 1e-6


def test_a_hub_models_card_samples_it_by_its_repo_id(uninterrupted, tmp_path):
    """A card for `someone/tiny-ddpm` loads and samples it by that id (`infoflow sample` downloads Hub models)."""
    from diffusers_infoflow.hub import write_model_card

    folder = tmp_path / "model"
    shutil.copytree(uninterrupted, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    args = parse_args(SINGLE + ["--output_dir", str(folder), "--overwrite_output_dir", "--hub_model_id", "someone/tiny-ddpm"])
    card = Path(write_model_card(str(folder), args, final_loss=None, num_processes=1, total_steps=6, command="train")).read_text()
    assert 'DiffusionPipeline.from_pretrained("someone/tiny-ddpm")' in card
    assert "Or, with diffusers-infoflow installed: `infoflow sample --model someone/tiny-ddpm --scheduler ddim " in card


def test_crash_and_resume_latest_matches_uninterrupted_run(uninterrupted, tmp_path, monkeypatch):
    check_crash_and_resume(SINGLE, uninterrupted, tmp_path, monkeypatch)


def card_loss(folder):
    """The loss row of a run's model card."""
    return next(line for line in (Path(folder) / "README.md").read_text().splitlines() if "training loss" in line)


def test_resuming_a_finished_run_keeps_its_final_loss_on_the_card(uninterrupted, tmp_path):
    """Re-exporting a finished run (resume from its last checkpoint) states the loss of its last step, kept in the
    checkpoint; the card of a checkpoint written before the loss was kept says n/a instead of failing."""
    shutil.copytree(uninterrupted, tmp_path, dirs_exist_ok=True)
    original = card_loss(uninterrupted)
    assert re.search(r"\| \d\.\d{4} \|$", original), original
    train_in_process(SINGLE + ["--resume_from_checkpoint", "latest"], tmp_path)
    assert card_loss(tmp_path) == original
    (tmp_path / "checkpoint-6" / "infoflow_run_state.json").unlink()
    train_in_process(SINGLE + ["--resume_from_checkpoint", "latest"], tmp_path)
    assert card_loss(tmp_path).endswith("| n/a |")


def test_save_model_steps_snapshots_the_ema_pipeline_without_changing_the_run(uninterrupted, tmp_path, monkeypatch):
    """--save_model_steps 2: at step 4 the output folder holds the EMA weights of checkpoint-4 as a pipeline whose card
    says it is a snapshot; resumed, the run ends with the weights of the run that took no snapshots."""
    from diffusers import UNet2DModel

    args = SINGLE + ["--save_model_steps", "2", "--num_card_samples", "4", "--card_inference_steps", "2", "--card_scheduler", "unipc"]
    with pytest.raises(SimulatedCrash):
        train_in_process(args, tmp_path, crash_after=4, monkeypatch=monkeypatch)
    assert "| optimisation steps | 4 of the run's 6 (a snapshot saved during training) |" in (tmp_path / "README.md").read_text()
    shadow = torch.load(tmp_path / "checkpoint-4" / "custom_checkpoint_0.pkl", weights_only=False)["shadow_params"]
    snapshot = list(UNet2DModel.from_pretrained(str(tmp_path / "unet")).parameters())
    assert len(snapshot) == len(shadow) and all(torch.equal(p.detach(), s) for p, s in zip(snapshot, shadow))
    train_in_process(args + ["--resume_from_checkpoint", "latest"], tmp_path)
    assert max_weight_diff(uninterrupted, tmp_path) <= 1e-6
    card = (tmp_path / "README.md").read_text()
    assert "| optimisation steps | 6 |" in card
    # the grid is what the card's `infoflow sample` line draws (same scheduler, calls and noise)
    assert "--scheduler unipc --model-calls 2 --num-images 4 --seed 3`" in card and "4 samples, UniPCMultistepScheduler with 2 steps = 2 model calls, seed 3." in card
    images, _, _ = generate(str(tmp_path), "unipc", 2, 4, seed=3)
    grid = np.asarray(Image.open(tmp_path / "samples.png").convert("L"))
    assert np.array_equal(grid, make_grid(images * 2 - 1))


def test_killed_run_resumes_to_the_same_weights(uninterrupted, tmp_path):
    """SIGKILL at an arbitrary moment after the first checkpoint; `latest` is always a complete one."""
    proc = launch(SINGLE, tmp_path, wait=False)
    deadline = time.time() + 120
    while not list_checkpoints(str(tmp_path)) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert list_checkpoints(str(tmp_path)), "the run never reached its first checkpoint"
    train_in_process(SINGLE + ["--resume_from_checkpoint", "latest"], tmp_path)
    assert max_weight_diff(uninterrupted, tmp_path) <= 1e-6


def test_two_process_data_parallel_resume_is_exact(tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    result = launch([a for a in DOUBLE if a not in ("--report_to", "none")], full, processes=2)  # the default, "all"
    check_ok(result)
    assert "Num processes: 2" in result.stdout + result.stderr
    assert f"saved the pipeline and its model card to {full}" in result.stdout
    assert "no supported trackers" not in (result.stdout + result.stderr).lower()
    assert "SimulatedCrash" in launch(DOUBLE, resumed, processes=2, crash_after=2).stderr
    assert checkpoint_step(resolve_checkpoint("latest", str(resumed))) == 2
    check_ok(launch(DOUBLE + ["--resume_from_checkpoint", "latest"], resumed, processes=2))
    assert max_weight_diff(full, resumed) <= 1e-6


def test_epoch_batches_split_one_permutation_between_processes():
    single = torch.cat(epoch_batches(20, 1, 0, 4, 1, 0))
    ranks = [epoch_batches(20, 1, 0, 2, 2, r) for r in range(2)]
    interleaved = torch.cat([torch.cat([ranks[0][b], ranks[1][b]]) for b in range(len(ranks[0]))])
    assert torch.equal(single, interleaved)
    assert sorted(single.tolist()) == list(range(20))
    assert not torch.equal(single, torch.cat(epoch_batches(20, 2, 0, 4, 1, 0)))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--resolution", "18", "--block_out_channels", "8,16,16"], "not divisible by the UNet's downsampling factor 4"),
        (["--resume_from_checkpoint", "/nonexistent/checkpoint-5"], "is not a folder"),
        (["--card_notes", "/nonexistent/notes.md"], "--card_notes '/nonexistent/notes.md' is not a file"),
        (["--beta_schedule", "zigzag"], "Unknown beta schedule 'zigzag'"),
        (["--block_out_channels", "8,12", "--norm_num_groups", "8"], "must divide every --block_out_channels"),
        (["--prediction_type", "score"], "invalid choice: 'score'"),
        (["--snr_gamma", "5", "--prediction_type", "joint"], "--snr_gamma must be > 0 and needs --prediction_type"),
        (["--snr_gamma", "-1"], "--snr_gamma must be > 0"),
        (["--save_model_steps", "0"], "--save_model_steps must be >= 1, got 0"),
        (["--logging_steps", "0"], "--logging_steps must be >= 1, got 0"),
        (["--max_train_samples", "-4"], "--max_train_samples must be >= 1, got -4"),
        (["--num_card_samples", "2", "--card_inference_steps", "0"], "--card_inference_steps 0 model calls cannot sample the card's grid with ddim"),
        (["--num_card_samples", "2", "--card_scheduler", "heun", "--card_inference_steps", "-2"],
         "--card_inference_steps -2 model calls cannot sample the card's grid with heun"),
        (["--card_scheduler", "trig-information"], "argument --card_scheduler: invalid choice: 'trig-information'"),
        # diffusers' UniPC fails inside `step` with as many steps as levels: found by the dry run, before training
        (["--num_card_samples", "2", "--num_train_timesteps", "50", "--card_scheduler", "unipc"],
         "--card_inference_steps 50 model calls cannot sample the card's grid with unipc (UniPCMultistepScheduler cannot sample with 50 steps (AssertionError"),
        (["--report_to", "surely_not_a_tracker"], "--report_to 'surely_not_a_tracker': ['surely_not_a_tracker'] not installed"),
        (["--push_to_hub", "--hub_model_id", "bad id!!"], "--hub_model_id: "),
        (["--overwrite_output_dir", "--resume_from_checkpoint", "latest"], "it cannot be combined with --resume_from_checkpoint"),
    ],
)
def test_bad_arguments_are_rejected_with_a_clear_message(extra, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--dataset_name", "triangles"] + extra)
    assert message in capsys.readouterr().err


def test_an_output_dir_of_another_run_is_not_overwritten(uninterrupted, capsys):
    """A folder holding a model or checkpoints is refused unless the run resumes it or says --overwrite_output_dir."""
    with pytest.raises(SystemExit):
        parse_args(SINGLE + ["--output_dir", str(uninterrupted)])
    assert "holds a trained model or checkpoints of another run" in capsys.readouterr().err
    parse_args(SINGLE + ["--output_dir", str(uninterrupted), "--resume_from_checkpoint", "latest"])
    parse_args(SINGLE + ["--output_dir", str(uninterrupted), "--overwrite_output_dir"])


def test_overwrite_output_dir_removes_the_earlier_runs_checkpoints(uninterrupted, tmp_path):
    """A stale checkpoint-5000 of another run is neither resumed by `latest` later nor kept while pruning the new ones."""
    (tmp_path / "checkpoint-5000").mkdir()
    (tmp_path / "checkpoint-5000" / "optimizer.bin").write_bytes(b"another run")
    (tmp_path / "checkpoint-7.tmp").mkdir()
    train_in_process(SINGLE + ["--overwrite_output_dir", "--checkpoints_total_limit", "2"], tmp_path)
    assert [Path(p).name for p in list_checkpoints(str(tmp_path))] == ["checkpoint-4", "checkpoint-6"]
    assert not (tmp_path / "checkpoint-7.tmp").exists()
    assert max_weight_diff(uninterrupted, tmp_path) <= 1e-6


class _Accelerator:
    """Enough of accelerate's Accelerator for save_checkpoint; `fail` makes save_state die half-way."""

    is_main_process = True

    def __init__(self, fail=False):
        self.fail = fail

    def wait_for_everyone(self):
        pass

    def save_state(self, path):
        os.makedirs(path)
        (Path(path) / "model.safetensors").write_bytes(b"weights")
        if self.fail:
            raise OSError("disk full")


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(_Accelerator(), str(tmp_path), 2, total_limit=1)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_Accelerator(fail=True), str(tmp_path), 4, total_limit=1)
    assert resolve_checkpoint("latest", str(tmp_path)) == str(tmp_path / "checkpoint-2")
    save_checkpoint(_Accelerator(), str(tmp_path), 6, total_limit=1)
    assert [Path(p).name for p in list_checkpoints(str(tmp_path))] == ["checkpoint-6"]


def test_resumed_ema_weights_go_back_to_the_models_device():
    """accelerate loads custom checkpoint objects onto the CPU; the EMA must return to its device (here 'meta',
    standing in for a GPU) or its first step mixes devices."""
    from diffusers.training_utils import EMAModel

    saved = EMAModel(torch.nn.Linear(3, 2).parameters()).state_dict()
    ema = EMAModel(torch.nn.Linear(3, 2).parameters())
    ema.to(device="meta")
    _CheckpointableEMA(ema).load_state_dict(saved)
    assert all(p.device.type == "meta" for p in ema.shadow_params)


def test_resuming_with_ema_switched_is_one_clear_error(uninterrupted, tmp_path):
    without_ema = [a for a in SINGLE if a != "--use_ema"]
    with pytest.raises(ValueError, match="was saved with --use_ema; resume it with --use_ema too"):
        train_in_process(without_ema + ["--resume_from_checkpoint", str(uninterrupted / "checkpoint-6")], tmp_path)


def test_resuming_a_checkpoint_of_another_architecture_is_one_clear_error(uninterrupted, tmp_path):
    result = launch(SINGLE + ["--block_out_channels", "8,8", "--resume_from_checkpoint", str(uninterrupted / "checkpoint-2")], tmp_path / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "holds a model of another shape than this command builds" in result.stderr


def test_a_namespace_built_by_hand_is_validated_too():
    args = parse_args(["--dataset_name", "triangles"])
    args.prediction_type = "score"
    with pytest.raises(ValueError, match="--prediction_type must be one of .*'score'"):
        validate_args(args)


def test_the_script_reports_bad_data_in_one_line(tmp_path):
    result = launch(["--dataset_name", "no-such-dataset-xyz", "--max_train_steps", "1", "--report_to", "none"], tmp_path / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "scripts/train.py: could not load dataset 'no-such-dataset-xyz'" in result.stderr


def test_unknown_dataset_and_missing_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="could not load dataset 'no-such-dataset-xyz'.*--train_data_dir"):
        train_in_process(["--dataset_name", "no-such-dataset-xyz", "--max_train_steps", "1", "--report_to", "none"], tmp_path)
    assert resolve_checkpoint("latest", str(tmp_path)) is None  # a new run
    with pytest.raises(FileNotFoundError, match="'nowhere' does not exist"):
        resolve_checkpoint("nowhere", str(tmp_path))
    (tmp_path / "model_index.json").write_text("{}")  # a finished run without checkpoints is not resumed over
    args = parse_args(["--dataset_name", "triangles"])
    args.output_dir, args.resume_from_checkpoint = str(tmp_path), "latest"
    with pytest.raises(ValueError, match="holds a trained model but no checkpoint to resume"):
        validate_args(args)


@pytest.mark.parametrize("name", DISCRETE_SCHEDULES)
def test_saved_scheduler_reproduces_the_core_schedule(name):
    from diffusers_infoflow import get_betas

    args = parse_args(["--dataset_name", "triangles", "--beta_schedule", name, "--num_train_timesteps", "100"])
    scheduler = build_noise_scheduler(args)
    assert torch.allclose(scheduler.betas.double(), get_betas(name, 100), rtol=1e-5, atol=1e-7)
    # every `infoflow sample` scheduler (the card's too) reads the saved config, diffusers' DDIM/UniPC/... included
    for sampler in CARD_SCHEDULERS:
        built = build_scheduler(sampler, scheduler.config)
        assert torch.allclose(built.alphas_cumprod.double(), scheduler.alphas_cumprod.double(), rtol=1e-5, atol=1e-7), sampler


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_min_snr_gamma_weights_each_sample_by_its_closed_form(prediction_type):
    """Min-SNR-γ (Hang et al. 2023): min(SNR, γ)/SNR for ε, min(SNR, γ) for x0, min(SNR, γ)/(SNR + 1) for v; γ = ∞
    on ε is the plain loss, and a zero-SNR table's ε weight is its limit 1."""
    from diffusers import DDPMScheduler

    from diffusers_infoflow.training import diffusion_loss, min_snr_weights

    scheduler = DDPMScheduler(num_train_timesteps=50)
    output = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))

    class Fixed(torch.nn.Module):
        def forward(self, sample, timestep):
            return type("Out", (), {"sample": output})()

    clean = torch.rand(6, 1, 4, 4) * 2 - 1
    weighted = diffusion_loss(Fixed(), scheduler, clean, prediction_type, torch.Generator().manual_seed(0), snr_gamma=5.0)
    generator = torch.Generator().manual_seed(0)  # the same draws, by hand
    noise = torch.randn(clean.shape, generator=generator)
    t = torch.randint(0, 50, (6,), generator=generator)
    target = {"epsilon": noise, "sample": clean, "v_prediction": scheduler.get_velocity(clean, noise, t)}[prediction_type]
    snr = scheduler.alphas_cumprod[t].double() / (1 - scheduler.alphas_cumprod[t].double())
    weight = {"epsilon": snr.clamp(max=5.0) / snr, "sample": snr.clamp(max=5.0), "v_prediction": snr.clamp(max=5.0) / (snr + 1)}[prediction_type]
    expected = (weight.float() * ((output - target) ** 2).flatten(1).mean(1)).mean()
    torch.testing.assert_close(weighted, expected)
    if prediction_type == "epsilon":
        plain = diffusion_loss(Fixed(), scheduler, clean, prediction_type, torch.Generator().manual_seed(0))
        torch.testing.assert_close(diffusion_loss(Fixed(), scheduler, clean, prediction_type, torch.Generator().manual_seed(0), snr_gamma=1e30), plain)
        zero_snr = DDPMScheduler(num_train_timesteps=50, rescale_betas_zero_snr=True)
        assert min_snr_weights(zero_snr, torch.tensor([49, 0]), "epsilon", 5.0).tolist()[0] == 1.0
    with pytest.raises(ValueError, match="snr_gamma must be a number > 0"):
        min_snr_weights(scheduler, t, prediction_type, 0.0)

