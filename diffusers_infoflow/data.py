"""Training data for unconditional diffusion models, as tensors in ``[-1, 1]`` of shape ``(C, R, R)``.

Sources (:func:`load_training_dataset`):

* built-ins ``triangles`` (seed 003: monochrome filled triangles from three random vertices) and ``digits``
  (scikit-learn's 8×8 hand-written digits, upsampled);
* ``.npz`` arrays (key ``x_train`` unless another is named; uint8 in ``[0, 255]`` or floats in ``[0, 1]``);
* local image folders (datasets' ``imagefolder`` builder);
* Hugging Face Hub data sets through :func:`datasets.load_dataset`.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .images import GREY_MODES, pil_to_unit_array, to_model_range


BUILTIN_DATASETS = ("triangles", "digits")
RESIZE_MODES = ("resize", "pad")
# Column names tried, in order, when a Hub or image-folder data set does not say which column holds images.
IMAGE_COLUMN_GUESSES = ("image", "img", "images", "pixel_values")


class ImageTensorDataset(Dataset):
    """A stack of images already in ``[-1, 1]``, shape ``(N, C, R, R)``; item ``i`` is ``{"input": images[i]}``."""

    def __init__(self, images: torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}.")
        self.images = images.contiguous()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        return {"input": self.images[index]}

    @property
    def num_channels(self) -> int:
        return self.images.shape[1]


class TransformedHFDataset(Dataset):
    """A ``datasets.Dataset`` whose image column is turned into ``[-1, 1]`` tensors on access."""

    def __init__(self, hf_dataset, image_column: str, transform: Callable[[object], torch.Tensor], num_channels: int):
        self.hf_dataset = hf_dataset
        self.image_column = image_column
        self.transform = transform
        self.num_channels = num_channels

    def __len__(self) -> int:
        return len(self.hf_dataset)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        return {"input": self.transform(self.hf_dataset[int(index)][self.image_column])}


# ----------------------------------------------------------------------------------------------- arrays


def fit_resolution(images: torch.Tensor, resolution: int, mode: str = "resize") -> torch.Tensor:
    """Square ``(N, C, H, W)`` images in ``[-1, 1]`` to ``resolution``: ``resize`` (bilinear, antialiased;
    non-square images are centre-cropped first) or ``pad`` (centred, with the background value -1, which
    keeps e.g. MNIST digits pixel-exact at 28 → 32)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}.")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}.")
    h, w = images.shape[-2:]
    if (h, w) == (resolution, resolution):
        return images
    if mode == "pad":
        if h > resolution or w > resolution:
            raise ValueError(f"cannot pad {h}×{w} images to the smaller resolution {resolution}; use resize mode 'resize'.")
        top, left = (resolution - h) // 2, (resolution - w) // 2
        return F.pad(images, (left, resolution - w - left, top, resolution - h - top), value=-1.0)
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = images[..., top : top + side, left : left + side]
    return F.interpolate(square, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


# ----------------------------------------------------------------------------------------------- built-ins


def make_triangles(count: int = 10000, size: int = 32, supersample: int = 4, seed: int = 0) -> np.ndarray:
    """Seed 003's data set: ``count`` monochrome ``size``×``size`` images of one filled triangle each, with
    three vertices drawn uniformly in the image, white on black, float in ``[0, 1]``.

    Args:
        supersample: anti-aliasing factor: the triangle is rasterised at ``size·supersample`` and box-averaged,
            so edges get grey levels (seed 003's "grey noise"); ``1`` gives hard binary edges.
        seed: the NumPy seed; the same arguments always give the same images.
    """
    for name, value in (("count", count), ("size", size), ("supersample", supersample)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"triangles: {name} must be a positive integer, got {value!r}.")
    rng = np.random.default_rng(seed)
    fine = size * supersample
    centres = (np.arange(fine, dtype=np.float64) + 0.5) / supersample  # pixel centres in output-pixel units
    py, px = np.meshgrid(centres, centres, indexing="ij")
    vertices = rng.uniform(0.0, size, size=(count, 3, 2))  # (x, y) per vertex
    images = np.empty((count, size, size), dtype=np.float32)
    for i, ((x0, y0), (x1, y1), (x2, y2)) in enumerate(vertices):
        # A point is inside when the three edge functions share a sign (either winding order).
        e0 = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
        e1 = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
        e2 = (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)
        inside = ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0))
        images[i] = inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return images


def make_digits() -> np.ndarray:
    """scikit-learn's 1,797 hand-written 8×8 digits (shipped with scikit-learn, no download), float ``[0, 1]``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("the 'digits' data set needs scikit-learn: pip install scikit-learn") from err
    return (load_digits().images / 16.0).astype(np.float32)


def parse_dataset_options(text: Optional[str]) -> Dict[str, object]:
    """``"count=1000,supersample=1"`` → ``{"count": 1000, "supersample": 1}`` (ints, then floats, else strings)."""
    options: Dict[str, object] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise ValueError(f"dataset option {item!r} is not of the form key=value.")
        key, raw = (s.strip() for s in item.split("=", 1))
        for cast in (int, float):
            try:
                options[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            options[key] = raw
    return options


def _builtin_images(name: str, options: Dict[str, object], seed: int) -> np.ndarray:
    if name == "triangles":
        allowed = {"count", "size", "supersample", "seed"}
        unknown = set(options) - allowed
        if unknown:
            raise ValueError(f"triangles takes options {sorted(allowed)}, got unknown {sorted(unknown)}.")
        return make_triangles(**{"seed": seed, **options})
    if options:
        raise ValueError(f"{name} takes no dataset options, got {sorted(options)}.")
    return make_digits()


# ----------------------------------------------------------------------------------------------- loaders


def load_npz_images(path: str, key: Optional[str] = None) -> np.ndarray:
    """The image array of an ``.npz`` file: ``key`` if given, else ``x_train``, else its only array."""
    with np.load(path) as archive:
        keys = list(archive.keys())
        if key is None:
            key = "x_train" if "x_train" in keys else (keys[0] if len(keys) == 1 else None)
        if key not in keys:
            raise ValueError(f"{path} has arrays {keys}; name the image array with --image_column (got {key!r}).")
        return archive[key]


def _pil_transform(resolution: int, mode: str, num_channels: int) -> Callable[[object], torch.Tensor]:
    def transform(image) -> torch.Tensor:
        array = pil_to_unit_array(image, num_channels)
        return fit_resolution(to_model_range(array[None], channels_first=False), resolution, mode)[0]

    return transform


def _wrap_hf_dataset(hf_dataset, image_column: Optional[str], resolution: int, mode: str, source: str) -> TransformedHFDataset:
    if image_column is None:
        image_column = next((c for c in IMAGE_COLUMN_GUESSES if c in hf_dataset.column_names), None)
        if image_column is None:
            raise ValueError(f"{source} has columns {hf_dataset.column_names}; name the image column with --image_column.")
    elif image_column not in hf_dataset.column_names:
        raise ValueError(f"{source} has no column {image_column!r}; its columns are {hf_dataset.column_names}.")
    if len(hf_dataset) == 0:
        raise ValueError(f"{source} is empty.")
    first = hf_dataset[0][image_column]
    num_channels = 1 if getattr(first, "mode", "RGB") in GREY_MODES else 3
    return TransformedHFDataset(hf_dataset, image_column, _pil_transform(resolution, mode, num_channels), num_channels)


def load_training_dataset(
    dataset_name: Optional[str] = None,
    train_data_dir: Optional[str] = None,
    *,
    resolution: int = 32,
    resize_mode: str = "resize",
    image_column: Optional[str] = None,
    dataset_config_name: Optional[str] = None,
    dataset_options: Optional[str] = None,
    cache_dir: Optional[str] = None,
    max_train_samples: Optional[int] = None,
    seed: int = 0,
) -> Dataset:
    """The training images as a map-style data set of ``{"input": (C, R, R) tensor in [-1, 1]}``.

    Args:
        dataset_name: a built-in (``triangles``, ``digits``), a path to an ``.npz`` file, or a Hub data set id.
        train_data_dir: a local folder of images (datasets' ``imagefolder``) or an ``.npz`` file; used when
            ``dataset_name`` is not given.
        resolution, resize_mode: see :func:`fit_resolution`.
        image_column: the image column (Hub/folder) or array key (``.npz``); guessed when ``None``.
        dataset_options: built-in generator options, e.g. ``"count=1000,size=32,supersample=4"``.
        max_train_samples: keep only the first this many images (after loading, before any shuffling).
        seed: seed of generated built-ins (``triangles``).
    """
    if (dataset_name is None) == (train_data_dir is None):
        raise ValueError("give exactly one of --dataset_name (built-in, .npz or Hub id) and --train_data_dir (folder or .npz).")
    source = dataset_name if dataset_name is not None else train_data_dir
    options = parse_dataset_options(dataset_options)
    if options and source not in BUILTIN_DATASETS:
        raise ValueError(f"--dataset_options only apply to the built-ins {BUILTIN_DATASETS}, not {source!r}.")

    if source in BUILTIN_DATASETS or str(source).endswith(".npz"):
        if source in BUILTIN_DATASETS:
            array = _builtin_images(source, options, seed)
        else:
            if not os.path.isfile(source):
                raise FileNotFoundError(f".npz file {source!r} does not exist.")
            array = load_npz_images(source, image_column)
        if max_train_samples is not None:
            array = array[:max_train_samples]
        images = fit_resolution(to_model_range(np.asarray(array)), resolution, resize_mode)
        return ImageTensorDataset(images)

    import datasets

    if train_data_dir is not None:
        if not os.path.isdir(train_data_dir):
            raise FileNotFoundError(f"--train_data_dir {train_data_dir!r} is neither a folder of images nor an .npz file.")
        hf_dataset = datasets.load_dataset("imagefolder", data_dir=train_data_dir, cache_dir=cache_dir, split="train")
    else:
        if os.path.isdir(dataset_name):
            raise ValueError(f"{dataset_name!r} is a local folder: pass it as --train_data_dir.")
        try:
            hf_dataset = datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir, split="train")
        except Exception as err:  # offline, unknown id, gated, ...: all end the same way for the user
            raise ValueError(
                f"could not load dataset {dataset_name!r} ({type(err).__name__}: {err}). Built-ins are {BUILTIN_DATASETS}; "
                "for local data pass --train_data_dir FOLDER (images) or --dataset_name FILE.npz (key x_train)."
            ) from err
    if max_train_samples is not None:
        hf_dataset = hf_dataset.select(range(min(max_train_samples, len(hf_dataset))))
    return _wrap_hf_dataset(hf_dataset, image_column, resolution, resize_mode, repr(source))


def dataset_num_channels(dataset: Dataset) -> int:
    """The channel count of a data set built by :func:`load_training_dataset`."""
    return int(dataset.num_channels)


__all__: Sequence[str] = (
    "BUILTIN_DATASETS",
    "ImageTensorDataset",
    "fit_resolution",
    "load_training_dataset",
    "make_digits",
    "make_triangles",
)
