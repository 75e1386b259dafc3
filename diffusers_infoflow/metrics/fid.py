"""FID, KID, IS and digit confidence with a pluggable feature network (seed 000 Tables 6–7 report IS and FID).

The distances come from torchmetrics (``FrechetInceptionDistance``, ``KernelInceptionDistance``,
``InceptionScore``), which accept any ``nn.Module`` as feature extractor, accumulate statistics in float64 and
gather them across processes; we only supply the feature network:

* ``"mnist"`` (default, offline): the penultimate layer of the packaged MNIST classifier
  (:mod:`diffusers_infoflow.metrics.features`); its logits for IS and for ``"confident"``.
* ``"inception"``: torchmetrics' FID Inception-v3, only when torch-fidelity and its weights are present.
* any ``nn.Module`` mapping a float ``(N, C, H, W)`` batch in [0, 1] to ``(N, F)`` features, with an integer
  ``num_features = F`` attribute (torchmetrics reads it; FID and KID only).

``"confident"`` (MNIST network only) is what a person sees in a grid: the fraction of images the digit classifier
is confident on (max-softmax > 0.9) and the share of the rarest predicted digit (0.1 each for uniform digits).

Under ``accelerate launch`` each process scores its own share of the images; the statistics are gathered when
scores are computed, so every process gets the scores of the whole set. Numbers from the MNIST network are not
comparable with Inception FIDs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Dict, Optional, Union

import torch
from torch import nn

from .features import IMAGE_SHAPE, inception_feature_extractor, mnist_feature_extractor


__all__ = ["CONFIDENCE_THRESHOLD", "GENERATIVE_METRICS", "REFERENCE_METRICS", "GenerativeScorer", "generative_scores", "process_shard"]

GENERATIVE_METRICS = ("fid", "kid", "is", "confident")
REFERENCE_METRICS = ("fid", "kid")  # the metrics that compare with a reference set
CONFIDENCE_THRESHOLD = 0.9
FeatureNetwork = Union[str, nn.Module]


class _InceptionInput(nn.Module):
    """Feeds [0, 1] float images to torchmetrics' Inception (uint8, 3 channels) so all networks share one input."""

    def __init__(self, inception: nn.Module, num_features: int):
        super().__init__()
        self.inception, self.num_features = inception, num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return self.inception((rgb * 255).round().to(torch.uint8))


def _feature_networks(feature_network: FeatureNetwork, want_logits: bool):
    """(feature extractor, logits extractor or None) for the requested network."""
    if isinstance(feature_network, nn.Module):
        # without it torchmetrics probes the module with a 3×299×299 Inception image, which a small network cannot take
        if not isinstance(getattr(feature_network, "num_features", None), int):
            raise ValueError(f"a custom feature network needs an integer `num_features` attribute (the size F of its (N, F) "
                             f"features); {type(feature_network).__name__} has {getattr(feature_network, 'num_features', None)!r}.")
        return feature_network.eval(), None
    if feature_network == "mnist":
        return mnist_feature_extractor(), (mnist_feature_extractor(output="logits") if want_logits else None)
    if feature_network == "inception":
        logits = _InceptionInput(inception_feature_extractor("logits_unbiased"), 1008) if want_logits else None
        return _InceptionInput(inception_feature_extractor(2048), 2048), logits
    raise ValueError(f"`feature_network` must be 'mnist', 'inception' or an nn.Module, got {feature_network!r}.")


def _check_images(name: str, images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"`{name}` must be a float tensor (N, C, H, W) in [0, 1], got {getattr(images, 'shape', type(images))}.")
    if images.numel() and (not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1):
        raise ValueError(f"`{name}` must hold finite values in [0, 1].")


def distributed_initialized() -> bool:
    """Whether this process is in a ``torch.distributed`` process group (e.g. under ``accelerate launch``)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def process_shard(items: torch.Tensor) -> torch.Tensor:
    """This process's contiguous share of ``items`` under ``torch.distributed`` (e.g. ``accelerate launch``), in
    rank order so that the gathered shards are ``items`` again; all of ``items`` in a single process."""
    if not distributed_initialized():
        return items
    return items.tensor_split(torch.distributed.get_world_size())[torch.distributed.get_rank()]


def _summed_over_processes(counts: torch.Tensor) -> torch.Tensor:
    if distributed_initialized():
        counts = counts.clone()
        torch.distributed.all_reduce(counts)
    return counts


def _default_device(reference: Optional[torch.Tensor]) -> torch.device:
    """This process's GPU under NCCL (whose collectives take no CPU tensors), else the reference's device or the CPU."""
    if distributed_initialized() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return reference.device if reference is not None else torch.device("cpu")


def _global_count(count: int, device: torch.device) -> int:
    return int(_summed_over_processes(torch.tensor(count, device=device)))


class GenerativeScorer:
    """Scores image sets against one reference set whose features are computed once, at construction.

    Under ``torch.distributed`` (``accelerate launch``) pass every process the whole ``reference`` (each takes
    its share, :func:`process_shard`) and each process's own share of the images to :meth:`update`;
    :meth:`compute` gathers the statistics and returns the scores of the whole set on every process.

    Args:
        reference: float ``(N, C, H, W)`` images in [0, 1] (FID and KID only; IS and ``"confident"`` need none).
        feature_network: ``"mnist"``, ``"inception"`` or an ``nn.Module`` (see the module docstring).
        metrics: any of ``"fid"``, ``"kid"`` (mean and std over ``kid_subsets`` random subsets of
            ``min(kid_subset_size, N_images, N_reference)``), ``"is"`` and ``"confident"`` (both need logits).
        batch_size: images per feature-network call.
        seed: seeds KID's and IS's random subsets (torchmetrics draws them from torch's global RNG, which is forked).
        device: where the feature network runs (default: this process's GPU under NCCL, else the reference's device).
    """

    def __init__(
        self,
        reference: Optional[torch.Tensor],
        *,
        feature_network: FeatureNetwork = "mnist",
        metrics: Sequence[str] = GENERATIVE_METRICS,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        batch_size: int = 500,
        seed: int = 0,
        device: Optional[Union[str, torch.device]] = None,
    ):
        try:
            from torchmetrics.image.fid import FrechetInceptionDistance
            from torchmetrics.image.inception import InceptionScore
            from torchmetrics.image.kid import KernelInceptionDistance
        except ImportError as err:
            raise RuntimeError(f"FID/KID/IS need torchmetrics ({err}); install the extra: pip install 'diffusers-infoflow[metrics]'.") from None

        unknown = set(metrics) - set(GENERATIVE_METRICS)
        if unknown or not metrics:
            raise ValueError(f"`metrics` must be a non-empty subset of {GENERATIVE_METRICS}, got {list(metrics)!r}.")
        needs_reference = set(REFERENCE_METRICS) & set(metrics)
        if needs_reference and reference is None:
            raise ValueError(f"{sorted(needs_reference)} need a `reference` image set.")
        if "confident" in metrics and feature_network != "mnist":
            raise ValueError("'confident' counts digit classes: it needs feature_network='mnist'; drop it from `metrics`.")
        want_logits = bool({"is", "confident"} & set(metrics))
        features, logits = _feature_networks(feature_network, want_logits)
        if want_logits and logits is None:
            raise ValueError("IS needs class logits: use feature_network='mnist' or 'inception', or drop it from `metrics`.")
        self.metrics, self.batch_size, self.seed = tuple(metrics), batch_size, seed
        self.device = torch.device(device) if device is not None else _default_device(reference)
        self.kid_subset_size = kid_subset_size
        self.is_splits = is_splits
        self.feature_network = feature_network
        self.num_images = 0
        self.image_shape = None
        self._class_counts = None  # top-1 count of each class, then the count of confident images
        # torchmetrics warns that KID and IS keep every feature in memory: intended, features are small here.
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        self._scorers: Dict[str, nn.Module] = {}  # torchmetrics metrics
        if "fid" in metrics:
            self._scorers["fid"] = FrechetInceptionDistance(feature=features, normalize=True, reset_real_features=False)
        if "kid" in metrics:
            self._scorers["kid"] = KernelInceptionDistance(
                feature=features, subsets=kid_subsets, subset_size=kid_subset_size, normalize=True, reset_real_features=False)
        if "is" in metrics:
            # normalize=False: torchmetrics' IS would otherwise rescale float inputs to uint8 even for a custom network.
            self._scorers["is"] = InceptionScore(feature=logits, splits=is_splits, normalize=False)
        self._classifier = logits.to(self.device) if "confident" in metrics else None
        for scorer in self._scorers.values():
            scorer.to(self.device)
        self._forget_images()
        self.num_reference = 0
        if reference is not None:
            _check_images("reference", reference)
            self.image_shape = tuple(reference.shape[1:])
            self.num_reference = _global_count(len(process_shard(reference)), self.device)
            if self.num_reference < 2:
                raise ValueError(f"`reference` needs at least 2 images for a covariance, got {self.num_reference}.")
            for batch in process_shard(reference).split(batch_size):
                for name in ("fid", "kid"):
                    if name in self._scorers:
                        self._scorers[name].update(batch.to(self.device), real=True)

    def check_image_shape(self, shape) -> None:
        """Raises the error that images of `shape` ``(C, H, W)`` would meet in :meth:`update`, before any are made."""
        shape = tuple(int(v) for v in shape)
        if self.image_shape is not None and shape != self.image_shape:
            raise ValueError(f"images of shape {shape} differ in shape from the reference {self.image_shape}.")
        if self.feature_network == "mnist" and shape != IMAGE_SHAPE:
            raise ValueError(f"the MNIST feature network takes (N, 1, 28, 28) images; these would be {shape}.")

    def update(self, images: torch.Tensor) -> None:
        """Adds ``images`` (this process's share; float ``(N, C, H, W)`` in [0, 1]) to the set being scored."""
        _check_images("images", images)
        if self.image_shape is not None and tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"`images` {tuple(images.shape[1:])} differ in shape from the reference and earlier images {self.image_shape}.")
        self.image_shape = tuple(images.shape[1:])
        if len(images) == 0 and self._updated:
            return  # one empty tensor per process is all a gather needs (torchmetrics mishandles several)
        for batch in images.split(self.batch_size):
            batch = batch.to(self.device)
            for name, scorer in self._scorers.items():
                scorer.update(batch, real=False) if name in ("fid", "kid") else scorer.update(batch)
            if self._classifier is not None:
                self._count_classes(batch)
        self.num_images += len(images)
        self._updated = True

    def _count_classes(self, batch: torch.Tensor) -> None:
        """Adds the batch's top-1 classes and its confident images to the counts."""
        with torch.no_grad():
            probabilities = self._classifier(batch).float().softmax(-1)
        top, label = probabilities.max(-1)
        self._class_counts[:-1] += torch.bincount(label, minlength=len(self._class_counts) - 1)
        self._class_counts[-1] += (top > CONFIDENCE_THRESHOLD).sum()

    def _forget_images(self) -> None:
        for scorer in self._scorers.values():
            scorer.reset()  # FID and KID keep their reference features (reset_real_features=False)
        self.num_images, self._updated = 0, False
        if self._classifier is not None:
            self._class_counts = torch.zeros(self._classifier.num_features + 1, dtype=torch.long, device=self.device)

    def compute(self) -> Dict[str, object]:
        """Scores of all images given to :meth:`update` (on every process), then forgets them (not the reference).

        Returns:
            ``{"fid", "kid_mean", "kid_std", "is_mean", "is_std", "confident_fraction", "min_class_fraction",
            "class_fractions"}`` for the requested metrics, plus ``"num_images"`` and ``"num_reference"``.
        """
        if not self._updated and self.image_shape is not None:
            # a process without images still takes part in every gather, with one empty tensor of the right rank
            self.update(torch.empty(0, *self.image_shape, device=self.device))
        num_images = _global_count(self.num_images, self.device)
        needed = 2 if set(REFERENCE_METRICS) & set(self.metrics) else 1
        if "is" in self.metrics:  # fewer images than splits leave splits of one image: IS is exactly 1
            needed = max(needed, self.is_splits)
        if num_images < needed:
            raise ValueError(f"`images` needs at least {needed} image(s) for {', '.join(self.metrics)}"
                             f"{f' (IS: one per split, {self.is_splits} splits)' if 'is' in self.metrics else ''}, got {num_images}.")
        result: Dict[str, object] = {"num_images": num_images, "num_reference": self.num_reference}
        # torchmetrics gathers a list state entry by entry: one tensor per process keeps the gathered features in
        # rank order (a process's share is a contiguous slice), so KID's and IS's seeded subsets pick the images one
        # process would, and processes with different numbers of batches do not pair up the wrong gathers
        for name, states in (("kid", ("real_features", "fake_features")), ("is", ("features",))):
            for state in states if name in self._scorers else ():
                parts = getattr(self._scorers[name], state)
                if len(parts) > 1:
                    setattr(self._scorers[name], state, [torch.cat(parts)])
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.seed)  # the subsets of KID and IS come from the CPU generator
            if "fid" in self._scorers:
                result["fid"] = float(self._scorers["fid"].compute())
            if "kid" in self._scorers:
                subset_size = min(self.kid_subset_size, num_images, self.num_reference)
                self._scorers["kid"].subset_size = subset_size
                kid_mean, kid_std = self._scorers["kid"].compute()
                result.update(kid_mean=float(kid_mean), kid_std=float(kid_std), kid_subset_size=subset_size)
            if "is" in self._scorers:
                is_mean, is_std = self._scorers["is"].compute()
                result.update(is_mean=float(is_mean), is_std=float(is_std))
        if self._classifier is not None:
            counts = _summed_over_processes(self._class_counts).double()
            shares = counts[:-1] / num_images
            result.update(confident_fraction=float(counts[-1] / num_images), min_class_fraction=float(shares.min()),
                          class_fractions=[round(float(share), 4) for share in shares])
        self._forget_images()
        return result

    def score(self, images: torch.Tensor) -> Dict[str, object]:
        """:meth:`update` with ``images``, then :meth:`compute`."""
        self.update(images)
        return self.compute()


def generative_scores(images: torch.Tensor, reference: Optional[torch.Tensor], **scorer_options) -> Dict[str, object]:
    """The scores of one image set against ``reference`` (both float ``(N, C, H, W)`` in [0, 1]) in one process; the
    options are :class:`GenerativeScorer`'s, which scores many sets against one reference and runs across processes."""
    if distributed_initialized():
        raise ValueError("generative_scores scores a whole set in one process; under torch.distributed use GenerativeScorer "
                         "with each process's share of the images.")
    _check_images("images", images)
    if reference is not None and tuple(images.shape[1:]) != tuple(reference.shape[1:]):
        raise ValueError(f"`images` {tuple(images.shape[1:])} and `reference` {tuple(reference.shape[1:])} differ in image shape.")
    return GenerativeScorer(reference, **{"device": images.device, **scorer_options}).score(images)
