"""The one image path of the package: image arrays of any common layout and range into ``[0, 1]`` or the models'
``[-1, 1]``, and model samples out to ``pt``/``np``/PIL outputs and sample grids."""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from diffusers.utils import numpy_to_pil


__all__ = ["CHANNELS", "OUTPUT_TYPES", "check_output_type", "images_to_output", "make_grid", "to_model_range", "to_unit_images"]

CHANNELS = (1, 3, 4)  # grayscale, RGB, RGBA
OUTPUT_TYPES = ("pil", "np", "pt")


def to_unit_images(
    array: Union[np.ndarray, torch.Tensor], value_range: Optional[Sequence[float]] = None, channels_first: Optional[bool] = None
) -> torch.Tensor:
    """Images as float32 ``(N, C, H, W)`` in ``[0, 1]``.

    Args:
        array: ``(N, H, W)``, ``(N, C, H, W)`` or channels-last ``(N, H, W, C)``, C in :data:`CHANNELS`; uint8 or float.
        value_range: the range of float images (default ``(0, 1)``; ``(-1, 1)`` for diffusers' model space). uint8
            images are always read as ``[0, 255]``.
        channels_first: the layout of 4-D images; ``None`` (default) reads ``(N, H, W, C)`` when only the last axis
            is a channel count.

    Returns:
        The images, mapped linearly from their range to ``[0, 1]``.

    Raises:
        ValueError: for another layout or dtype, non-finite values, or floats outside `value_range` (never clipped).
    """
    tensor = torch.from_numpy(np.asarray(array)) if not isinstance(array, torch.Tensor) else array.detach().cpu()
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    elif tensor.ndim == 4 and (channels_first is False or (channels_first is None and tensor.shape[1] not in CHANNELS and tensor.shape[-1] in CHANNELS)):
        tensor = tensor.permute(0, 3, 1, 2)
    if tensor.ndim != 4 or tensor.shape[1] not in CHANNELS:
        layouts = {False: "(N, H, W) or channels-last (N, H, W, C)", True: "(N, H, W) or (N, C, H, W)"}.get(
            channels_first, "(N, H, W), (N, C, H, W) or (N, H, W, C)")
        raise ValueError(f"images must be {layouts} with C in {CHANNELS}, got {tuple(np.shape(array))}.")
    if tensor.shape[0] == 0:
        raise ValueError("no images (the first axis is empty).")
    if tensor.dtype == torch.uint8:
        if value_range is not None:
            raise ValueError("`value_range` applies to float images; uint8 images are always read as [0, 255].")
        return tensor.float() / 255.0
    if not tensor.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point, got {tensor.dtype}.")
    lo, hi = (0.0, 1.0) if value_range is None else (float(v) for v in value_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"a value range needs finite LO < HI, got [{lo:g}, {hi:g}].")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ValueError("images contain NaN or infinite values.")
    if tensor.numel() and (tensor.min() < lo or tensor.max() > hi):
        raise ValueError(
            f"float images must lie in [{lo:g}, {hi:g}], got [{tensor.min().item():.4g}, {tensor.max().item():.4g}] "
            "(never clipped)."
        )
    return (tensor - lo) / (hi - lo)


# PIL modes of one-channel images, and the full scale of those stored with 16 bits (PNG/TIFF "I;16", read as "I")
GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N")
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def pil_to_unit_array(image, num_channels: Optional[int] = None) -> np.ndarray:
    """One image file's pixels as float32 ``(H, W, C)`` in ``[0, 1]``: 8-bit modes divided by 255, 16-bit ones by
    65535 (not clipped to 8 bits). C is the image's own (1 for grey, also an RGB file whose channels are equal; 3 for
    colour) or `num_channels` when given, a grey image being repeated to 3 channels.

    Raises:
        ValueError: for a colour image asked as one channel (its colour would be lost), 32-bit float files, or
            values beyond 16 bits.
    """
    if num_channels not in (None, 1, 3):
        raise ValueError(f"num_channels must be 1 or 3, got {num_channels!r}.")
    if image.mode == "F":
        raise ValueError("32-bit float image files are not read (their range is unknown); save them with 8 or 16 bits.")
    if image.mode in _SIXTEEN_BIT_MODES:
        array = np.asarray(image, dtype=np.float64)
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(f"a {image.mode} image holds values outside 16 bits [{array.min():g}, {array.max():g}].")
        array = (array / 65535.0)[..., None]
    elif image.mode in GREY_MODES:
        array = np.asarray(image.convert("L"), dtype=np.float64)[..., None] / 255.0
    else:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
        grey = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
        array = rgb[..., :1] if grey else rgb
    if num_channels == 1 and array.shape[-1] == 3:
        raise ValueError(f"a colour ({image.mode}) image in a one-channel image set: its colour would be lost.")
    if num_channels == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array.astype(np.float32)


def unet_sample_shape(config) -> Tuple[int, int, int]:
    """``(C, H, W)`` of the samples of a UNet config (a diffusers config or its JSON dict; ``sample_size`` is an
    int or ``(H, W)``)."""
    size = config["sample_size"]
    height, width = (size, size) if isinstance(size, int) else size
    return int(config["in_channels"]), int(height), int(width)


def to_model_range(
    array: Union[np.ndarray, torch.Tensor], value_range: Optional[Sequence[float]] = None, channels_first: Optional[bool] = None
) -> torch.Tensor:
    """:func:`to_unit_images` mapped to the models' ``[-1, 1]``."""
    return to_unit_images(array, value_range, channels_first) * 2.0 - 1.0


def check_output_type(output_type: str) -> None:
    """Raises ``ValueError`` unless ``output_type`` is one of :data:`OUTPUT_TYPES` (before any sampling)."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")


def check_batch(batch_size, generator=None) -> None:
    """Raises ``ValueError`` unless ``batch_size`` is a positive integer and a list of generators has one per image
    (diffusers' ``randn_tensor`` would fail on a shorter list and use part of a longer one)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if isinstance(generator, list) and len(generator) != batch_size:
        raise ValueError(f"a list of {len(generator)} generators was passed for {batch_size} images; pass one generator "
                         "per image, or a single generator.")


def images_to_output(image: torch.Tensor, output_type: str, clamp: bool = True) -> Union[torch.Tensor, np.ndarray, List]:
    """Model-space samples ``(N, C, H, W)`` in ``[-1, 1]`` to a pipeline's output.

    Args:
        image: the samples.
        output_type: ``pt`` (NCHW tensor in ``[0, 1]``), ``np`` (NHWC float array in ``[0, 1]``) or ``pil``.
        clamp: clamp to ``[0, 1]`` (PIL always is); ``False`` keeps e.g. a noisy image's excursions for metrics.
    """
    image = image / 2 + 0.5
    if clamp or output_type == "pil":
        image = image.clamp(0, 1)
    if output_type == "pt":
        return image
    array = image.detach().cpu().permute(0, 2, 3, 1).float().numpy()
    return numpy_to_pil(array) if output_type == "pil" else array


def make_grid(images: torch.Tensor, nrow: Optional[int] = None) -> np.ndarray:
    """``(N, C, H, W)`` images in ``[-1, 1]`` to one uint8 ``(rows·H, nrow·W[, C])`` grid with 2-pixel gaps.

    Not ``diffusers.utils.make_image_grid``: that one needs ``rows·cols == N`` PIL images and butts tiles
    together, while sample grids here take any N (the last row part-filled) and keep 28-px digits apart."""
    n, c, h, w = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / nrow))
    pad = 2
    grid = np.zeros((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.uint8)
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    for k in range(n):
        r, col = divmod(k, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = pixels[k]
    return grid[0] if c == 1 else np.transpose(grid, (1, 2, 0))
