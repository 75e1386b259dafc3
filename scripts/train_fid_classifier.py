"""Train the MNIST classifier whose penultimate layer is the offline FID/KID feature space.

Deterministic (seeded, single-threaded-order data shuffling), a few minutes on CPU. Writes safetensors weights
(default: ``diffusers_infoflow/assets/mnist_classifier.safetensors``) and prints the test accuracy.

    python scripts/train_fid_classifier.py --data ../shared/data/mnist.npz --epochs 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from diffusers_infoflow.metrics.features import MnistClassifier


DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "diffusers_infoflow" / "assets" / "mnist_classifier.safetensors"


def _as_images(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).float().div_(255.0).unsqueeze(1)


@torch.no_grad()
def accuracy(model: MnistClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> float:
    model.eval()
    correct = sum(int((model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum()) for i in range(0, len(images), batch_size))
    return correct / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    with np.load(args.data) as mnist:
        train_x, train_y = _as_images(mnist["x_train"]), torch.from_numpy(mnist["y_train"]).long()
        test_x, test_y = _as_images(mnist["x_test"]), torch.from_numpy(mnist["y_test"]).long()

    model = MnistClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = (len(train_x) + args.batch_size - 1) // args.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    shuffle_rng = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=shuffle_rng)
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            loss = torch.nn.functional.cross_entropy(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        print(f"epoch {epoch + 1}/{args.epochs}: last loss {loss.item():.4f}, test accuracy {accuracy(model, test_x, test_y):.4f}, {time.perf_counter() - start:.0f} s", flush=True)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(args.output), metadata={"seed": str(args.seed), "epochs": str(args.epochs), "test_accuracy": f"{accuracy(model, test_x, test_y):.4f}"})
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
