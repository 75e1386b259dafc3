"""Training data sources: built-ins, .npz arrays, image folders, resolution handling, clear errors."""

import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from diffusers_infoflow.data import fit_resolution, load_training_dataset, make_triangles


MNIST = "/work/shared/data/mnist.npz"


def test_triangles_are_seeded_filled_and_antialiased():
    a, b = make_triangles(count=8, size=32, supersample=4, seed=1), make_triangles(count=8, size=32, supersample=4, seed=1)
    assert np.array_equal(a, b) and a.shape == (8, 32, 32)
    assert ((a > 0) & (a < 1)).any()  # grey edges from supersampling
    assert set(np.unique(make_triangles(count=8, supersample=1, seed=1))) <= {0.0, 1.0}


def test_builtins_and_npz_give_unit_range_tensors(tmp_path):
    digits = load_training_dataset("digits", resolution=16)
    assert len(digits) == 1797 and digits[0]["input"].shape == (1, 16, 16)
    path = tmp_path / "arr.npz"
    np.savez(path, x_train=np.random.default_rng(0).integers(0, 256, (5, 28, 28, 3), dtype=np.uint8))
    data = load_training_dataset(str(path), resolution=32, resize_mode="pad")
    x = data[0]["input"]
    assert x.shape == (3, 32, 32) and x.min() >= -1 and x.max() <= 1 and torch.all(x[:, :2] == -1)


@pytest.mark.skipif(not os.path.isfile(MNIST), reason="needs /work/shared/data/mnist.npz")
def test_mnist_npz_padding_keeps_pixels():
    data = load_training_dataset(MNIST, resolution=32, resize_mode="pad", max_train_samples=3)
    raw = np.load(MNIST)["x_train"][:3]
    assert torch.allclose(data.images[:, 0, 2:30, 2:30], torch.from_numpy(raw / 127.5 - 1).float(), atol=1e-6)


def test_image_folder(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((20, 24), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    data = load_training_dataset(train_data_dir=str(tmp_path), resolution=8)
    assert len(data) == 3 and data[0]["input"].shape == (1, 8, 8)


def test_sixteen_bit_image_folder_keeps_its_grey_levels(tmp_path):
    """A 16-bit PNG trains at its full scale, not clipped to 8 bits (which made every pixel -1 or 1)."""
    Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(tmp_path / "deep.png")
    data = load_training_dataset(train_data_dir=str(tmp_path), resolution=8)
    torch.testing.assert_close(data[0]["input"], torch.full((1, 8, 8), 30000 / 65535 * 2 - 1))


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="could not load dataset 'no/such-data'.*--train_data_dir"):
        load_training_dataset("no/such-data")
    with pytest.raises(ValueError, match="cannot pad 28×28 images to the smaller resolution 16"):
        fit_resolution(torch.zeros(1, 1, 28, 28), 16, "pad")
    with pytest.raises(ValueError, match="triangles takes options"):
        load_training_dataset("triangles", dataset_options="colour=red")
    with pytest.raises(ValueError, match="exactly one of"):
        load_training_dataset()
