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

from ..images import pil_to_unit_array, to_unit_images


__all__ = ["IMAGE_SUFFIXES", "MNIST_ENV_VAR", "load_image_set", "load_mnist", "locate_mnist"]

MNIST_ENV_VAR = "INFOFLOW_MNIST"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
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


def load_image_set(path: PathLike, key: Optional[str] = None, value_range: Optional[Sequence[float]] = None) -> torch.Tensor:
    """An image set from a folder of image files (sorted by name; one channel unless one of them has colour, 8- and
    16-bit files at their full scale), a ``.npy`` array or an ``.npz`` archive (array ``key``; defaults to the only
    array, or ``x_test`` for MNIST-like archives)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image set {path} does not exist.")
    ignored = [name for name, value, applies in (("`key` (--key)", key, path.suffix == ".npz"),
                                                  ("`value_range` (--input-range)", value_range, not path.is_dir()))
               if value is not None and not applies]
    if ignored:  # image files have their own scale and a .npy file holds one array: the option would be ignored
        kind = "a folder of images" if path.is_dir() else f"{path.suffix or 'this'} file"
        raise ValueError(f"{' and '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply to {kind} ({path}): `key` picks an "
                         "array of a .npz archive, `value_range` is the range of float arrays (.npy, .npz).")
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        others = sorted(p.name for p in path.iterdir() if p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in folder {path}.")
        if others:  # an image in a format not listed would be left out of the set without a word
            raise ValueError(f"folder {path} holds {len(others)} file(s) that are not {'/'.join(IMAGE_SUFFIXES)} images, e.g. {others[:3]}; "
                             "give a folder of images only.")
        arrays = [pil_to_unit_array(Image.open(f)) for f in files]
        if any(a.shape[-1] == 3 for a in arrays):  # one colour file makes the set colour: the grey ones are repeated
            arrays = [np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a for a in arrays]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"images in {path} have different sizes {sorted(shapes)}.")
        return to_unit_images(np.stack(arrays), channels_first=False)
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
