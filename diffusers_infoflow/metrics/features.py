"""Feature networks for FID / KID / IS.

The offline default is :class:`MnistClassifier`, a small CNN trained on MNIST by
``scripts/train_fid_classifier.py`` and shipped as ``diffusers_infoflow/assets/mnist_classifier.safetensors``.
Its penultimate layer (128 ReLU units) plays the role of Inception's 2048-d pool features, its logits the role
of Inception's class logits for the Inception Score. Scores computed with it are comparable only with other
scores computed with the same weights — never with published Inception-based FIDs (seed 000 Tables 6–7).

Inception-v3 is offered through torchmetrics only, and only where its weights are already on disk
(:func:`inception_feature_extractor` raises a clear error otherwise; nothing is downloaded silently here).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal, Optional, Union

import torch
from torch import nn


__all__ = [
    "DEFAULT_CLASSIFIER_FILE",
    "ClassifierFeatures",
    "MnistClassifier",
    "inception_feature_extractor",
    "load_mnist_classifier",
    "mnist_feature_extractor",
]

DEFAULT_CLASSIFIER_FILE = "mnist_classifier.safetensors"
IMAGE_SHAPE = (1, 28, 28)


class MnistClassifier(nn.Module):
    """conv(1→16, 3×3) → ReLU → maxpool → conv(16→32, 3×3) → ReLU → maxpool → fc(1568→128) → ReLU → fc(128→10).

    Input: ``(N, 1, 28, 28)`` floats in ``[0, 1]`` (MNIST's pixel values / 255, seed 000 App. A.1).
    """

    num_features = 128

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.hidden = nn.Linear(32 * 7 * 7, self.num_features)
        self.head = nn.Linear(self.num_features, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations, ``(N, 128)``: the FID/KID feature space."""
        return torch.relu(self.hidden(self.conv(images)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits, ``(N, 10)``."""
        return self.head(self.features(images))


def _default_weights_path() -> Path:
    return Path(str(resources.files("diffusers_infoflow") / "assets" / DEFAULT_CLASSIFIER_FILE))


def load_mnist_classifier(path: Optional[Union[str, Path]] = None) -> MnistClassifier:
    """The trained MNIST classifier in eval mode (weights from ``path`` or the packaged asset)."""
    from safetensors.torch import load_file

    weights_path = Path(path) if path is not None else _default_weights_path()
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"classifier weights not found at {weights_path}; create them with "
            "`python scripts/train_fid_classifier.py --output <path>`."
        )
    model = MnistClassifier()
    model.load_state_dict(load_file(str(weights_path)))
    return model.eval()


class ClassifierFeatures(nn.Module):
    """Wraps :class:`MnistClassifier` as a torchmetrics feature extractor.

    ``output="features"`` gives the penultimate layer (FID, KID); ``output="logits"`` the class logits (IS).
    Inputs are checked to be ``(N, 1, 28, 28)`` in ``[0, 1]`` so that a wrongly scaled image set fails loudly
    instead of producing a meaningless distance.
    """

    def __init__(self, classifier: MnistClassifier, output: Literal["features", "logits"] = "features"):
        super().__init__()
        if output not in ("features", "logits"):
            raise ValueError(f"`output` must be 'features' or 'logits', got {output!r}.")
        self.classifier = classifier.eval()
        self.output = output
        self.num_features = MnistClassifier.num_features if output == "features" else 10

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"the MNIST feature network takes (N, 1, 28, 28) images, got {tuple(images.shape)}.")
        images = images.float()
        if images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"the MNIST feature network takes pixel values in [0, 1], got [{images.min().item():.4g}, "
                f"{images.max().item():.4g}]; rescale first (e.g. (x + 1) / 2 for [-1, 1] data)."
            )
        if self.output == "features":
            return self.classifier.features(images)
        return self.classifier(images)


def mnist_feature_extractor(path: Optional[Union[str, Path]] = None, output: Literal["features", "logits"] = "features") -> ClassifierFeatures:
    """The offline default feature network (see the module docstring)."""
    return ClassifierFeatures(load_mnist_classifier(path), output)


def inception_feature_extractor(feature: Union[int, str] = 2048) -> nn.Module:
    """torchmetrics' FID Inception-v3 (``feature`` = 64, 192, 768, 2048 or ``"logits_unbiased"``).

    Raises:
        RuntimeError: when torch-fidelity is missing or the Inception weights are not on disk (this
            package never downloads them; place ``weights-inception-2015-12-05-6726825d.pth`` in torch's
            hub checkpoint folder first).
    """
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as err:  # torchmetrics without its image extra
        raise RuntimeError(f"Inception features need torchmetrics' image extra (torch-fidelity): {err}") from None
    checkpoint_dir = Path(torch.hub.get_dir()) / "checkpoints"
    if not any(checkpoint_dir.glob("weights-inception-2015-12-05-*.pth")):
        raise RuntimeError(
            f"Inception-v3 FID weights not found under {checkpoint_dir}; they cannot be downloaded here. "
            "Use the default MNIST feature network (feature_network='mnist') or copy the weights there."
        )
    try:
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(feature)])
    except (ImportError, ModuleNotFoundError, RuntimeError, OSError) as err:  # torch-fidelity missing, bad checkpoint
        raise RuntimeError(f"could not build torchmetrics' Inception-v3: {err}") from None
