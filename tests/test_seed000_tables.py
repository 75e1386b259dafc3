"""benchmarks/seed000_tables.py on untrained tiny models: under ``accelerate launch`` with 2 CPU processes its
restoration and generation rows are those of one process, and ``--resume`` keeps exactly the rows whose settings
and model weights are unchanged."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


pytest.importorskip("torchmetrics")
from diffusers import DDPMScheduler

from diffusers_infoflow.schedules import get_betas

from .tiny_pipelines import tiny_mnist_ddpm_pipeline


SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "seed000_tables.py"
RESTORATION = ("mse", "euclidean_distance", "ssim", "cosine_similarity", "mutual_information")
GENERATION = ("fid", "kid_mean", "is_mean", "confident_fraction")


def save_model(models: Path, schedule: str, T: int, seed: int) -> None:
    scheduler = DDPMScheduler(num_train_timesteps=T, trained_betas=get_betas(schedule, T).tolist())
    tiny_mnist_ddpm_pipeline(models / f"{schedule}-{T}", scheduler, seed=seed)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    # T = 300 models for Table 2 (its steps are 50, 90 and 150), T = 20 ones for short generation rows
    root = tmp_path_factory.mktemp("seed000")
    for seed, (schedule, T) in enumerate([("linear", 300), ("cosine", 300), ("linear", 20), ("cosine", 20)]):
        save_model(root / "models", schedule, T, seed)
    rng = np.random.default_rng(0)
    # more images than the classifier's 128 features, so that FID's covariances are not singular
    np.savez(root / "mnist.npz", x_train=rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
             x_test=rng.integers(0, 256, (200, 28, 28), dtype=np.uint8))
    return root


def run(root: Path, output: str, *extra: str, processes: int = 1) -> subprocess.CompletedProcess:
    # Table 2 (linear-300 restored by cosine-300), 4 images in 2 batches; the T = 20 generation rows, 140 samples in 2 batches
    args = [str(SCRIPT), "--models-dir", str(root / "models"), "--data", str(root / "mnist.npz"), "--tables", "2", "6",
            "--lengths", "20", "--schedules", "linear", "cosine", "--num-images", "4", "--restoration-batch", "2",
            "--num-samples", "140", "--batch-size", "70", "--output", str(root / output), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes == 1:
        command = [sys.executable, *args]
    else:
        env["ACCELERATE_USE_CPU"] = "1"
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                   "--main_process_port", "0", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def rows(root: Path, output: str) -> list:
    result = json.loads((root / f"{output}.json").read_text())
    return result["restoration"].get("2", []) + result["generation"]


def row_names(rows: list) -> list:
    return [r.get("name", (r.get("source_step"), r.get("model"), r.get("mode"))) for r in rows]


def assert_same_numbers(first: list, second: list) -> None:
    """Restoration: the same images in the same batches, so the same numbers; generation: features gathered from
    the processes are summed in another order."""
    assert row_names(first) == row_names(second)
    for a, b in zip(first, second):
        restoration = "mse" in a
        for key in RESTORATION if restoration else GENERATION:
            assert b[key] == pytest.approx(a[key], rel=1e-12 if restoration else 1e-5, abs=1e-12), (row_names([a]), key)


def test_two_processes_give_the_rows_of_one_and_resume_keeps_unchanged_rows(setup):
    run(setup, "one")
    done = run(setup, "two", processes=2)
    one = rows(setup, "one")
    # Table 2: 3 source steps x (native, matched, same step); generation: 2 models (no hybrid: quadratic not asked)
    assert len(one) == 9 + 2
    assert {r["mode"] for r in one[:9]} == {"native", "matched", "same step"}
    assert all(np.isfinite(r["fid"]) for r in one[9:]) and all(0 <= r["ssim"] <= 1 for r in one[:9])
    assert_same_numbers(one, rows(setup, "two"))
    assert done.stdout.count("T2 ") == 9  # printed once, by the main process
    assert json.loads((setup / "two.json").read_text())["num_processes"] == 2

    # --resume keeps every row of unchanged models and settings (measured with 2 processes, resumed with 1)
    again = run(setup, "two", "--resume")
    assert again.stdout.count("(kept from the earlier run)") == 11
    assert_same_numbers(one, rows(setup, "two"))

    # new cosine-300 weights: the rows that use it are measured again, the native ones and generation kept
    save_model(setup / "models", "cosine", 300, seed=7)
    changed = run(setup, "two", "--resume")
    kept = [line for line in changed.stdout.splitlines() if "kept from the earlier run" in line]
    assert len(kept) == 3 + 2 and all("-> linear-300@" in line or line.startswith("T6/7") for line in kept)
    assert [r["mse"] for r in rows(setup, "two")[:9]] != [r["mse"] for r in one[:9]]

    # other settings: nothing is kept; Table 2, not asked for, stays in the file as it was
    table2 = rows(setup, "two")[:9]
    other = run(setup, "two", "--resume", "--tables", "6", "--num-samples", "150")
    assert "kept from the earlier run" not in other.stdout and "T2 " not in other.stdout
    now = rows(setup, "two")
    assert now[:9] == table2 and [r["settings"]["num_samples"] for r in now[9:]] == [150, 150]


def test_a_process_without_images_and_an_older_results_file(setup):
    """2 images in one batch: the second process restores none and still takes part in the gather. An older
    version's file (rows without settings) is replaced, not mixed with the new rows."""
    legacy = {"restoration": {"3": [{"table": "3", "source_step": 18, "model": "cosine-300", "mode": "matched", "mse": 0.1}]},
              "num_images": 128}
    (setup / "small.json").write_text(json.dumps(legacy))
    small = ("--tables", "2", "--num-images", "2", "--restoration-batch", "2")
    done = run(setup, "small", *small, "--resume")
    assert "is from an older version of this script" in done.stdout and "kept from the earlier run" not in done.stdout
    assert list(json.loads((setup / "small.json").read_text())["restoration"]) == ["2"]
    run(setup, "small_two", *small, processes=2)
    assert_same_numbers(rows(setup, "small"), rows(setup, "small_two"))


@pytest.mark.parametrize("extra, message", [(["--num-samples", "4", "--lengths", "300", "--schedules", "linear", "cosine"], "--num-samples must be at least 10"),
                                            (["--lengths", "500", "1000", "--schedules", "linear", "cosine"],
                                             "no trained model cosine-500, cosine-1000, linear-500, linear-eps-1000 in")])
def test_bad_input_fails_in_one_line_before_any_work(setup, extra, message):
    done = subprocess.run([sys.executable, str(SCRIPT), "--models-dir", str(setup / "models"), "--data", str(setup / "mnist.npz"),
                           "--tables", "2", "6", "--output", str(setup / "bad"), *extra], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr and not (setup / "bad.json").exists()


STUB_TRAINER = """#!/usr/bin/env bash
# stands in for `python scripts/train.py ...`: an --output_dir named *bad* fails, one named *slow* takes 2 s
for a in "$@"; do [ "$previous" = --output_dir ] && out=$a; previous=$a; done
case "$out" in *slow*) sleep 2 ;; esac
case "$out" in *bad*) exit 3 ;; esac
echo "trained $out"
"""


@pytest.mark.parametrize("names, failing", [(["ok-300", "slow-300", "ok-500"], False), (["bad-300", "slow-300"], True),
                                            (["slowbad-300", "ok-300"], True)])
def test_train_seed_models_runs_jobs_side_by_side_and_stops_at_a_failure(tmp_path, names, failing):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(STUB_TRAINER)
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(tmp_path / "out"), "JOBS": "2"}
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "train_seed_models.sh"
    done = subprocess.run(["bash", str(script), *names], env=env, capture_output=True, text=True, timeout=60)
    logs = {name: (tmp_path / "out" / "logs" / f"{name}.log").read_text() for name in names}
    if not failing:
        assert done.returncode == 0, done.stderr
        assert all(f"trained {tmp_path / 'out' / name}" in logs[name] for name in names)
    else:
        assert done.returncode == 1 and "a model failed to train" in done.stderr
        if names[0] == "bad-300":  # the other job is stopped, not left running
            import time

            time.sleep(2.5)
            assert "trained" not in (tmp_path / "out" / "logs" / "slow-300.log").read_text()
    bad = subprocess.run(["bash", str(script)], env={**env, "JOBS": "0"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "JOBS must be a whole number of at least 1, got '0'." in bad.stderr
