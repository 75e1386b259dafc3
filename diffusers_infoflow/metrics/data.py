"""Loading image sets for the metrics: MNIST from an ``.npz``, image folders and ``.npz``/``.npy`` arrays.

Every loader returns float32 ``(N, C, H, W)`` tensors in ``[0, 1]`` (seed 000 App. A.1's pixel convention).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch


__all__ = ["IMAGE_SUFFIXES", "MNIST_ENV_VAR", "load_image_set", "load_mnist", "locate_mnist", "to_unit_images"]

MNIST_ENV_VAR = "INFOFLOW_MNIST"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PathLike = Union[str, Path]


def locate_mnist(explicit: Optional[PathLike] = None) -> Path:
    """The MNIST ``.npz`` (keys ``x_train, y_train, x_test, y_test``): ``explicit``, else ``$INFOFLOW_MNIST`` (either
    must exist), else ``../shared/data/mnist.npz`` next to the current directory or to this repository.

    Raises:
        FileNotFoundError: naming every place that was tried.
    """
    if explicit is not None or os.environ.get(MNIST_ENV_VAR):  # a path given is the only one tried
        candidates = [Path(explicit if explicit is not None else os.environ[MNIST_ENV_VAR])]
    else:
        repo_root = Path(__file__).resolve().parents[2]
        candidates = [Path.cwd().parent / "shared" / "data" / "mnist.npz", repo_root.parent / "shared" / "data" / "mnist.npz"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"MNIST .npz not found (tried {tried}); pass --data PATH or set ${MNIST_ENV_VAR}.")


def load_mnist(split: str = "test", limit: Optional[int] = None, path: Optional[PathLike] = None) -> torch.Tensor:
    """MNIST images of ``split`` ("train" or "test") as ``(N, 1, 28, 28)`` float32 in [0, 1] (first ``limit``)."""
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}.")
    with np.load(locate_mnist(path)) as archive:
        key = f"x_{split}"
        if key not in archive:
            raise ValueError(f"{path or 'MNIST archive'} has no array {key!r} (found {sorted(archive.files)}).")
        pixels = archive[key][:limit]
    return to_unit_images(pixels)


def to_unit_images(array: Union[np.ndarray, torch.Tensor], value_range: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Images as float32 ``(N, C, H, W)`` in [0, 1].

    Accepts ``(N, H, W)``, ``(N, C, H, W)`` or channels-last ``(N, H, W, C)`` with C in {1, 3}. uint8 is divided by
    255; float arrays are mapped from ``value_range`` (default ``(0, 1)``; ``(-1, 1)`` for diffusers model space).
    Values outside the range are an error.
    """
    tensor = torch.from_numpy(np.asarray(array)) if not isinstance(array, torch.Tensor) else array.detach().cpu()
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    elif tensor.ndim == 4 and tensor.shape[1] not in (1, 3) and tensor.shape[-1] in (1, 3):
        tensor = tensor.permute(0, 3, 1, 2)
    if tensor.ndim != 4 or tensor.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W), (N, C, H, W) or (N, H, W, C) with C in {{1, 3}}, got {tuple(tensor.shape)}.")
    if tensor.dtype == torch.uint8:
        if value_range is not None:
            raise ValueError("`value_range` applies to float images; uint8 images are always read as [0, 255].")
        return tensor.float() / 255.0
    if not tensor.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point, got {tensor.dtype}.")
    lo, hi = (0.0, 1.0) if value_range is None else (float(v) for v in value_range)
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ValueError("images contain NaN or infinite values.")
    if tensor.numel() and (tensor.min() < lo or tensor.max() > hi):
        raise ValueError(
            f"float images must lie in [{lo}, {hi}], got [{tensor.min().item():.4g}, {tensor.max().item():.4g}]; "
            "give the right value range (e.g. --input-range -1 1)."
        )
    return (tensor - lo) / (hi - lo)


def load_image_set(path: PathLike, key: Optional[str] = None, value_range: Optional[Sequence[float]] = None) -> torch.Tensor:
    """An image set from a folder of image files (sorted by name, converted to grayscale "L"), a ``.npy`` array or
    an ``.npz`` archive (array ``key``; defaults to the only array, or ``x_test`` for MNIST-like archives)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image set {path} does not exist.")
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in folder {path}.")
        arrays = [np.asarray(Image.open(f).convert("L")) for f in files]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"images in {path} have different sizes {sorted(shapes)}.")
        return to_unit_images(np.stack(arrays))
    if path.suffix == ".npy":
        return to_unit_images(np.load(path), value_range)
    if path.suffix == ".npz":
        with np.load(path) as archive:
            names = archive.files
            if key is None:
                key = names[0] if len(names) == 1 else "x_test" if "x_test" in names else None
            if key not in names:
                raise ValueError(f"{path} holds arrays {names}; choose one with --key.")
            return to_unit_images(archive[key], value_range)
    raise ValueError(f"unsupported image set {path}: give a folder of images, a .npy or a .npz file.")
