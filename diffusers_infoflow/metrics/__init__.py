"""Metrics of information flow: histogram MI (seed 000 §4, Algorithm 1), restoration metrics, forward-process
curves (seed 000 Figs 5–10), I-MMSE information curves and likelihoods (seed 001 Theorem 6; Kong et al. 2023) and FID/KID/IS
with a pluggable (offline MNIST) feature network.

Heavy optional dependencies (torchmetrics, matplotlib, PIL) are imported inside the functions that need them.
"""

from .curves import (
    CURVE_METRICS,
    forward_process_curves,
    plot_forward_process_curves,
    schedules_from_names,
)
from .data import load_image_set, load_mnist, locate_mnist
from .features import (
    MnistClassifier,
    inception_feature_extractor,
    load_mnist_classifier,
    mnist_feature_extractor,
)
from .fid import CONFIDENCE_THRESHOLD, GENERATIVE_METRICS, GenerativeScorer, generative_scores, process_shard
from .information import (
    denoise_fn_from_diffusers,
    gaussian_information,
    gaussian_mmse,
    information_curve,
    nll_bits_per_dim,
    noisy_channel,
)
from .mutual_information import (
    bin_indices,
    histogram_bin_edges,
    histogram_mutual_information,
)
from .restoration import RESTORATION_METRICS, restoration_metrics


__all__ = [
    "CONFIDENCE_THRESHOLD",
    "CURVE_METRICS",
    "GenerativeScorer",
    "GENERATIVE_METRICS",
    "RESTORATION_METRICS",
    "MnistClassifier",
    "bin_indices",
    "denoise_fn_from_diffusers",
    "forward_process_curves",
    "gaussian_information",
    "gaussian_mmse",
    "generative_scores",
    "histogram_bin_edges",
    "histogram_mutual_information",
    "inception_feature_extractor",
    "information_curve",
    "load_image_set",
    "load_mnist",
    "load_mnist_classifier",
    "locate_mnist",
    "mnist_feature_extractor",
    "nll_bits_per_dim",
    "noisy_channel",
    "plot_forward_process_curves",
    "process_shard",
    "restoration_metrics",
    "schedules_from_names",
]
