"""FID, KID and IS with a pluggable feature network (seed 000 Tables 6–7 report IS and FID).

The distances themselves come from torchmetrics (``FrechetInceptionDistance``, ``KernelInceptionDistance``,
``InceptionScore``), which accept any ``nn.Module`` as feature extractor, accumulate feature statistics in float64 and
are widely used and tested; we only supply the feature network:

* ``"mnist"`` (default, offline): the penultimate layer of the packaged MNIST classifier
  (:mod:`diffusers_infoflow.metrics.features`); its logits for IS. Needs 1×28×28 images in [0, 1].
* ``"inception"``: torchmetrics' FID Inception-v3, only when torch-fidelity and its weights are present.
* any ``nn.Module`` mapping a float ``(N, C, H, W)`` batch in [0, 1] to ``(N, F)`` features (IS is then skipped).

Numbers from the MNIST network are not comparable with Inception FIDs; compare runs with the same network only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Dict, Union

import torch
from torch import nn

from .features import inception_feature_extractor, mnist_feature_extractor

__all__ = ["GENERATIVE_METRICS", "generative_scores"]

GENERATIVE_METRICS = ("fid", "kid", "is")
FeatureNetwork = Union[str, nn.Module]


class _InceptionInput(nn.Module):
    """Feeds [0, 1] float images to torchmetrics' Inception (uint8, 3 channels) so all networks share one input."""

    def __init__(self, inception: nn.Module):
        super().__init__()
        self.inception = inception

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return self.inception((rgb * 255).round().to(torch.uint8))


def _feature_networks(feature_network: FeatureNetwork, want_is: bool):
    """(feature extractor, logits extractor or None) for the requested network."""
    if isinstance(feature_network, nn.Module):
        return feature_network.eval(), None
    if feature_network == "mnist":
        return mnist_feature_extractor(), (mnist_feature_extractor(output="logits") if want_is else None)
    if feature_network == "inception":
        logits = _InceptionInput(inception_feature_extractor("logits_unbiased")) if want_is else None
        return _InceptionInput(inception_feature_extractor(2048)), logits
    raise ValueError(f"`feature_network` must be 'mnist', 'inception' or an nn.Module, got {feature_network!r}.")


def _check_images(name: str, images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"`{name}` must be a float tensor (N, C, H, W) in [0, 1], got {getattr(images, 'shape', type(images))}.")
    if images.shape[0] < 2:
        raise ValueError(f"`{name}` needs at least 2 images for a covariance, got {images.shape[0]}.")
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError(f"`{name}` must hold finite values in [0, 1].")


def generative_scores(
    images: torch.Tensor,
    reference: torch.Tensor,
    *,
    feature_network: FeatureNetwork = "mnist",
    metrics: Sequence[str] = GENERATIVE_METRICS,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
    batch_size: int = 500,
    seed: int = 0,
) -> Dict[str, float]:
    """FID / KID / IS of ``images`` against ``reference`` (both float ``(N, C, H, W)`` in [0, 1]).

    Args:
        metrics: any of ``"fid"``, ``"kid"`` (mean and std over ``kid_subsets`` random subsets of
            ``min(kid_subset_size, N_images, N_reference)``), ``"is"`` (of ``images``; needs a network with logits).
        seed: seeds KID's and IS's random subsets (torchmetrics draws them from torch's global RNG, which is forked).

    Returns:
        ``{"fid": …, "kid_mean": …, "kid_std": …, "is_mean": …, "is_std": …}`` for the requested metrics, plus
        ``"num_images"`` and ``"num_reference"``.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    unknown = set(metrics) - set(GENERATIVE_METRICS)
    if unknown or not metrics:
        raise ValueError(f"`metrics` must be a non-empty subset of {GENERATIVE_METRICS}, got {list(metrics)!r}.")
    _check_images("images", images)
    _check_images("reference", reference)
    if tuple(images.shape[1:]) != tuple(reference.shape[1:]):
        raise ValueError(f"`images` {tuple(images.shape[1:])} and `reference` {tuple(reference.shape[1:])} differ in image shape.")
    features, logits = _feature_networks(feature_network, "is" in metrics)
    if "is" in metrics and logits is None:
        raise ValueError("IS needs class logits: use feature_network='mnist' or 'inception', or drop 'is' from `metrics`.")

    scorers: Dict[str, object] = {}
    # torchmetrics warns that KID and IS keep every feature in memory: intended, features are small here.
    warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
    if "fid" in metrics:
        scorers["fid"] = FrechetInceptionDistance(feature=features, normalize=True)
    if "kid" in metrics:
        subset_size = min(kid_subset_size, images.shape[0], reference.shape[0])
        scorers["kid"] = KernelInceptionDistance(feature=features, subsets=kid_subsets, subset_size=subset_size, normalize=True)
    for name in ("fid", "kid"):
        if name in scorers:
            for batch in reference.split(batch_size):
                scorers[name].update(batch, real=True)
            for batch in images.split(batch_size):
                scorers[name].update(batch, real=False)
    if "is" in metrics:
        # normalize=False: torchmetrics' IS would otherwise rescale float inputs to uint8 even for a custom network.
        scorers["is"] = InceptionScore(feature=logits, splits=is_splits, normalize=False)
        for batch in images.split(batch_size):
            scorers["is"].update(batch)

    result: Dict[str, float] = {"num_images": int(images.shape[0]), "num_reference": int(reference.shape[0])}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if "fid" in scorers:
            result["fid"] = float(scorers["fid"].compute())
        if "kid" in scorers:
            kid_mean, kid_std = scorers["kid"].compute()
            result.update(kid_mean=float(kid_mean), kid_std=float(kid_std))
        if "is" in scorers:
            is_mean, is_std = scorers["is"].compute()
            result.update(is_mean=float(is_mean), is_std=float(is_std))
    return result
