"""`infoflow sample` with the shipped MNIST DDPM: every scheduler writes a grid PNG, offline."""

import numpy as np
import pytest
from PIL import Image

from diffusers_infoflow.cli import main
from diffusers_infoflow.commands.sample import DEFAULT_MODEL, SCHEDULERS


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_sample_writes_a_grid_with_every_scheduler(scheduler, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "grid.png"
    assert main(["sample", "--scheduler", scheduler, "--steps", "3", "--num_images", "4", "--output", str(out)]) == 0
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 + 2 * 30, 2 + 2 * 30)  # 2×2 tiles of 28 px with 2 px gaps


def test_shipped_model_is_small_and_complete():
    files = {p.relative_to(DEFAULT_MODEL).as_posix() for p in DEFAULT_MODEL.rglob("*") if p.is_file()}
    assert {"model_index.json", "README.md", "unet/config.json", "scheduler/scheduler_config.json"} <= files
    assert sum(p.stat().st_size for p in DEFAULT_MODEL.rglob("*") if p.is_file()) < 10 * 2**20
