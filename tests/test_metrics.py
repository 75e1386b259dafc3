"""Histogram MI (seed 000 Algorithm 1) against sklearn, restoration metrics, forward-process curves, the CLI."""

import json
import math

import numpy as np
import pytest
import torch

from diffusers_infoflow.metrics import (
    forward_process_curves,
    histogram_bin_edges,
    histogram_mutual_information,
    restoration_metrics,
    schedules_from_names,
)


sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _pairs(seed=0, shape=(20, 1, 12, 12)):
    rng = np.random.default_rng(seed)
    x = rng.random(shape)
    x[:, :, :3] = 0.0  # MNIST-like: many exact zeros, and the lower edge itself
    x[0, 0, 0, 0] = 1.0  # the upper edge must land in the last bin
    y = np.clip(x + 0.2 * rng.standard_normal(shape), 0.0, 1.0)
    return x, y


def _sklearn_labels(values, bins, value_range):
    # np.digitize on the inner edges = numpy.histogram's [e_j, e_{j+1}) bins with the top edge in the last bin
    return np.digitize(values, histogram_bin_edges(bins, value_range)[1:-1])


@pytest.mark.parametrize("bins", [2, 7, 32, 256])
def test_pooled_mi_equals_sklearn(bins):
    x, y = _pairs()
    ours = histogram_mutual_information(x, y, bins=bins, value_range=(0, 1))
    ref = sklearn_metrics.mutual_info_score(_sklearn_labels(x, bins, (0, 1)).ravel(), _sklearn_labels(y, bins, (0, 1)).ravel())
    assert float(ours) == pytest.approx(ref, abs=1e-12)


def test_per_sample_mi_equals_sklearn_and_bits():
    x, y = _pairs(1)
    ours = histogram_mutual_information(torch.from_numpy(x), torch.from_numpy(y), bins=16, value_range=(0, 1), reduction="per_sample")
    lx, ly = _sklearn_labels(x, 16, (0, 1)), _sklearn_labels(y, 16, (0, 1))
    ref = [sklearn_metrics.mutual_info_score(a.ravel(), b.ravel()) for a, b in zip(lx, ly)]
    assert ours.shape == (x.shape[0],)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)
    bits = histogram_mutual_information(x, y, bins=16, value_range=(0, 1), reduction="per_sample", base=2)
    np.testing.assert_allclose(bits.numpy(), np.array(ref) / math.log(2), atol=1e-12)


def test_bin_edges_match_numpy_histogram_counts():
    x, _ = _pairs(2)
    # marginal counts implied by I(X;X) = H(X): compare the entropy with numpy.histogram's counts
    counts, _ = np.histogram(x, bins=10, range=(0, 1))
    p = counts[counts > 0] / counts.sum()
    assert float(histogram_mutual_information(x, x, bins=10, value_range=(0, 1))) == pytest.approx(-(p * np.log(p)).sum(), abs=1e-12)


def test_separate_range_for_noisy_values_and_miller_madow_reduces_bias():
    rng = np.random.default_rng(3)
    x, y = rng.random((50, 100)), rng.standard_normal((50, 100))  # independent: true MI = 0
    plug_in = histogram_mutual_information(x, y, bins=8, value_range=(0, 1), y_value_range=(y.min(), y.max()), reduction="per_sample")
    corrected = histogram_mutual_information(
        x, y, bins=8, value_range=(0, 1), y_value_range=(y.min(), y.max()), reduction="per_sample", correction="miller-madow"
    )
    assert plug_in.mean() > 0.1  # the plug-in estimator's upward bias
    assert abs(corrected.mean()) < plug_in.mean() / 2


def test_mi_input_errors():
    x, y = _pairs()
    with pytest.raises(ValueError, match="outside the binning range"):
        histogram_mutual_information(x, y + 0.5, bins=4, value_range=(0, 1))
    with pytest.raises(ValueError, match="bins"):
        histogram_mutual_information(x, y, bins=1, value_range=(0, 1))
    with pytest.raises(ValueError, match="same shape"):
        histogram_mutual_information(x, y[:2], bins=4, value_range=(0, 1))
    with pytest.raises(ValueError, match="same dtype"):
        histogram_mutual_information(x, y.astype(np.float32), bins=4, value_range=(0, 1))
    bad = x.copy()
    bad[0, 0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        histogram_mutual_information(bad, y, bins=4, value_range=(0, 1))
    with pytest.raises(ValueError, match="value_range"):
        histogram_mutual_information(x, y, bins=4, value_range=(1, 0))
    with pytest.raises(ValueError, match="reduction"):
        histogram_mutual_information(x, y, bins=4, value_range=(0, 1), reduction="mean")


def test_restoration_metrics_values_and_ssim_reference():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    from torchmetrics.functional.image import structural_similarity_index_measure

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 28, 28, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    result = restoration_metrics(x, y, mi_bins=32)
    per = result["per_sample"]
    diff = (y - x).double().flatten(1)
    torch.testing.assert_close(per["mse"], diff.pow(2).mean(1))
    torch.testing.assert_close(per["euclidean_distance"], diff.norm(dim=1))
    torch.testing.assert_close(per["rms_distance"], per["mse"].sqrt())
    cos = (x.double().flatten(1) * y.double().flatten(1)).sum(1) / (x.double().flatten(1).norm(dim=1) * y.double().flatten(1).norm(dim=1))
    torch.testing.assert_close(per["cosine_similarity"], cos)
    torch.testing.assert_close(per["ssim"], structural_similarity_index_measure(y, x, data_range=1.0, reduction="none").double())
    # skimage with the same Gaussian window differs only in the border handling
    sk = [skimage_metrics.structural_similarity(a[0].numpy(), b[0].numpy(), data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False) for a, b in zip(x, y)]
    np.testing.assert_allclose(per["ssim"].numpy(), sk, atol=0.03)
    assert set(result["mean"]) == set(per)
    torch.testing.assert_close(result["mean"]["mse"], per["mse"].mean())
    identical = restoration_metrics(x, x, mi_bins=32)["per_sample"]
    assert torch.allclose(identical["ssim"], torch.ones(6, dtype=torch.float64), atol=1e-5)
    assert torch.all(identical["mse"] == 0)


def test_restoration_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match="too small for SSIM"):
        restoration_metrics(torch.rand(2, 1, 5, 5), torch.rand(2, 1, 5, 5))
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="shape"):
        restoration_metrics(x, x[:1])
    with pytest.raises(ValueError, match="NaN"):
        restoration_metrics(x, torch.full_like(x, float("nan")))


def test_forward_process_curves_are_monotone_for_pure_noising():
    images = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    curves = forward_process_curves(images, schedules_from_names(["linear", "cosine"], [100]), num_points=6, mi_bins=16)
    for curve in curves.values():
        assert curve["t"][0] == 1 and curve["t"][-1] == 100
        assert np.all(np.diff(curve["mse"]) > 0)
        assert np.all(np.diff(curve["cosine_similarity"]) < 0)
        assert curve["ssim"][0] > 0.9 > curve["ssim"][-1]
        assert curve["mutual_information"][0] > curve["mutual_information"][-1]
        # at pure noise the MI is the estimator's floor (pixels shuffled), far below the MI at t = 1
        floor = curve["mutual_information_floor"]
        assert abs(curve["mutual_information"][-1] - floor[-1]) < 0.2 * floor[-1] and floor[0] < 0.5 * curve["mutual_information"][0]


def test_curves_command_on_mnist(tmp_path, mnist_path, capsys):
    from diffusers_infoflow.cli import main

    out = tmp_path / "curves"
    assert main(["curves", "--data", str(mnist_path), "--num-images", "16", "--num-points", "5", "--schedules", "linear", "cosine", "--output-dir", str(out)]) == 0
    report = json.loads((out / "curves.json").read_text())
    assert set(report["curves"]) == {"linear T=300", "cosine T=300"}
    assert all(len(c["mutual_information_floor"]) == len(c["t"]) for c in report["curves"].values())
    assert "the estimator's floor, pixels shuffled" in capsys.readouterr().out
    assert (out / "curves.png").stat().st_size > 0


def test_curves_command_missing_data(tmp_path):
    from diffusers_infoflow.cli import main

    with pytest.raises(SystemExit, match="does not exist"):
        main(["curves", "--data", str(tmp_path / "none.npz"), "--output-dir", str(tmp_path)])
    np.savez(tmp_path / "few.npz", x_test=np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(SystemExit, match=r"schedule names \['cosine'\] are given more than once"):
        main(["curves", "--data", str(tmp_path / "few.npz"), "--schedules", "cosine", "linear", "cosine", "--output-dir", str(tmp_path)])
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit, match="--output-dir .* is a file; give a folder"):
        main(["curves", "--output-dir", str(tmp_path / "afile")])
