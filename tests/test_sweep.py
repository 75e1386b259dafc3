"""Tests of the S2N γ sweep (diffusers_infoflow.experiments.sweep) and the `infoflow sweep` command."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from diffusers_infoflow.cli import main
from diffusers_infoflow.experiments.sweep import (
    frechet_distance,
    gamma_delta_grid,
    gamma_sweep,
    load_sweep_data,
    nearest_data_distance,
)


CONFIG = {"noise_family": "edm", "preconditioning": "none"}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_random_data_on_request_and_a_missing_file_is_an_error(tmp_path, monkeypatch):
    data, source = load_sweep_data(8, 6, seed=1, path="random")
    assert data.shape == (8, 1, 6, 6) and "random" in source
    assert data.min() >= -1 and data.max() <= 1
    with pytest.raises(FileNotFoundError, match="missing.npz' not found"):
        load_sweep_data(8, 6, path=str(tmp_path / "missing.npz"))
    import diffusers_infoflow.experiments.sweep as sweep

    def no_mnist():
        raise FileNotFoundError("MNIST .npz not found")

    monkeypatch.setattr(sweep, "locate_mnist", no_mnist)  # the default falls back to random images
    assert "random" in load_sweep_data(8, 6, seed=1)[1]


def test_uint8_and_float_digits_read_alike(tmp_path):
    """MNIST digits saved as floats in [0, 1] are the same images as the uint8 ones (they were divided by 255 again)."""
    digits = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "u8.npz", x_train=digits)
    np.savez(tmp_path / "f.npz", x_train=digits.astype(np.float32) / 255)
    u8, _ = load_sweep_data(4, 14, path=str(tmp_path / "u8.npz"))
    f, _ = load_sweep_data(4, 14, path=str(tmp_path / "f.npz"))
    torch.testing.assert_close(u8, f)
    np.savez(tmp_path / "none.npz", images=digits)
    with pytest.raises(ValueError, match="no array 'x_train'"):
        load_sweep_data(4, 14, path=str(tmp_path / "none.npz"))


def test_measures_are_zero_on_the_data_itself():
    data, _ = load_sweep_data(32, 4, path="random")
    assert float(nearest_data_distance(data, data).max()) < 1e-6
    assert abs(frechet_distance(data, data, num_components=16)) < 1e-8
    # all 16 pixel directions kept: a shift by 0.5 costs ‖μ₁ − μ₂‖² = 16 · 0.25
    assert frechet_distance(data + 0.5, data, num_components=16) == pytest.approx(0.25 * 16, rel=1e-6)


def test_sweeps_recover_the_ode_and_the_data():
    data, _ = load_sweep_data(8, 4, path="random")
    points = gamma_sweep(data, [0.0, 0.05], nfe=6, scheduler_config=CONFIG, num_samples=6, reference_nfe=6)
    # γ = 0 at the reference's own NFE is the reference itself
    assert points[0].ode_error == 0.0 and points[1].ode_error > 0
    grid = gamma_delta_grid(data, [1.0], [0.9, 1.0], nfe=8, scheduler_config=CONFIG, num_samples=6)
    assert [(p.gamma, p.delta, p.sde_rho) for p in grid] == [(1.0, 0.9, 1.0), (1.0, 1.0, 1.0)]
    assert all(p.nearest_data_distance < 0.05 and p.ode_error is None for p in grid)


def test_sweep_command_writes_json_and_plot(tmp_path, capsys):
    code = main(
        [
            "sweep",
            "--output-dir",
            str(tmp_path),
            "--gammas",
            "0",
            "0.026",
            "--model-calls",
            "4",
            "--grid-gammas",
            "1",
            "1.25",
            "--grid-deltas",
            "0.95",
            "--grid-model-calls",
            "4",
            "--num-samples",
            "4",
            "--num-points",
            "6",
            "--image-size",
            "4",
            "--reference-model-calls",
            "8",
            "--data",
            "random",
        ]
    )
    assert code == 0
    with open(tmp_path / "s2n_gamma_sweep.json") as handle:
        results = json.load(handle)
    assert [p["gamma"] for p in results["deterministic"]] == [0.0, 0.026]
    assert len(results["stochastic"]) == 2 and os.path.getsize(tmp_path / "s2n_gamma_sweep.png") > 0
    assert "Fréchet" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="infoflow sweep: MNIST data '.*missing.npz' not found"):
        main(["sweep", "--output-dir", str(tmp_path), "--data", str(tmp_path / "missing.npz")])


def test_sweep_rejects_edm_preconditioning():
    data, _ = load_sweep_data(4, 4, path="random")
    with pytest.raises(ValueError, match="preconditioning"):
        gamma_sweep(data, [0.0], nfe=2, scheduler_config={"noise_family": "edm"}, num_samples=2, reference_nfe=2)
