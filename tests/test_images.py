"""The one image path: layouts and ranges in, pipeline outputs out."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffusers_infoflow.images import images_to_output, make_grid, to_model_range, to_unit_images


def test_every_layout_and_range_reads_to_the_same_images():
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 5, 6, 3), dtype=np.uint8)  # NHWC
    expected = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(to_unit_images(pixels), expected)
    torch.testing.assert_close(to_unit_images(np.transpose(pixels, (0, 3, 1, 2))), expected)
    torch.testing.assert_close(to_unit_images(pixels.astype(np.float32) / 255), expected)
    torch.testing.assert_close(to_unit_images(expected * 2 - 1, value_range=(-1, 1)), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(to_model_range(pixels), expected * 2 - 1)
    assert to_unit_images(pixels[..., 0]).shape == (2, 1, 5, 6)  # (N, H, W): grayscale


@pytest.mark.parametrize(
    ("images", "kwargs", "message"),
    [
        (np.zeros((2, 5)), {}, "images must be"),
        (np.zeros((2, 2, 5, 5)), {}, r"C in \(1, 3, 4\)"),
        (np.full((1, 4, 4), 1.5, dtype=np.float32), {}, r"must lie in \[0, 1\], got \[1.5, 1.5\]"),
        (np.full((1, 4, 4), np.nan, dtype=np.float32), {}, "NaN"),
        (np.zeros((1, 4, 4), dtype=np.uint8), {"value_range": (-1, 1)}, "uint8"),
        (np.zeros((1, 4, 4), dtype=np.int64), {}, "uint8 or floating point"),
        (np.zeros((1, 4, 4), dtype=np.float32), {"value_range": (1, 0)}, r"finite LO < HI, got \[1, 0\]"),
    ],
)
def test_bad_images_are_refused_not_clipped(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        to_unit_images(images, **kwargs)


def test_outputs_of_model_space_samples():
    samples = torch.tensor([-1.5, -1.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    torch.testing.assert_close(images_to_output(samples, "pt"), torch.tensor([0.0, 0.0, 0.5, 1.0]).reshape(1, 1, 2, 2))
    torch.testing.assert_close(images_to_output(samples, "pt", clamp=False).flatten()[0], torch.tensor(-0.25))
    array = images_to_output(samples.expand(2, 3, 2, 2), "np")
    assert array.shape == (2, 2, 2, 3) and array.dtype == np.float32
    (image,) = images_to_output(samples, "pil", clamp=False)  # PIL is always clamped
    assert isinstance(image, Image.Image) and image.mode == "L" and np.asarray(image).tolist() == [[0, 0], [128, 255]]
    grid = make_grid(samples.expand(3, 1, 2, 2), nrow=2)
    assert grid.shape == (2 * (2 + 2) + 2, 2 * (2 + 2) + 2) and grid.dtype == np.uint8 and grid[2, 2] == 0 and grid[3, 3] == 255
