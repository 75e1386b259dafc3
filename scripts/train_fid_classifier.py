"""Train the MNIST classifier whose penultimate layer is the offline FID/KID feature space.

Deterministic (seeded, single-threaded-order data shuffling), a few minutes on CPU. Writes safetensors weights to
``--output`` and prints the test accuracy; the shipped network is ``diffusers_infoflow/assets/mnist_classifier.safetensors``
(every FID in the README is measured with it, so replacing it is a deliberate ``--output`` there).

    python scripts/train_fid_classifier.py --data ../shared/data/mnist.npz --epochs 3 --output runs/mnist_classifier.safetensors
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from diffusers_infoflow.images import to_unit_images
from diffusers_infoflow.metrics.features import MnistClassifier


@torch.no_grad()
def accuracy(model: MnistClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> float:
    model.eval()
    correct = sum(int((model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum()) for i in range(0, len(images), batch_size))
    return correct / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz")
    parser.add_argument("--output", type=Path, required=True, help="the .safetensors file to write")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        parser.error(f"--epochs and --batch-size must be >= 1 and --lr > 0, got {args.epochs}, {args.batch_size}, {args.lr}.")
    if args.output.suffix != ".safetensors" or args.output.is_dir() or any(p.is_file() for p in args.output.parents):
        parser.error(f"--output {str(args.output)!r} must be a .safetensors file path whose folders are not files.")
    if not args.data.is_file():
        parser.error(f"--data {str(args.data)!r} is not a file (an .npz with x_train, y_train, x_test, y_test).")

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    with np.load(args.data) as mnist:
        missing = sorted({"x_train", "y_train", "x_test", "y_test"} - set(mnist.files))
        if missing:
            parser.error(f"--data {str(args.data)!r} lacks {missing} (it has {mnist.files}).")
        try:
            train_x, test_x = to_unit_images(mnist["x_train"]), to_unit_images(mnist["x_test"])
        except ValueError as err:
            parser.error(f"--data: {err}")
        train_y, test_y = torch.from_numpy(mnist["y_train"]).long(), torch.from_numpy(mnist["y_test"]).long()
    for name, labels, images in (("y_train", train_y, train_x), ("y_test", test_y, test_x)):
        if labels.shape != (len(images),) or labels.min() < 0 or labels.max() > 9:
            parser.error(f"--data: {name} must hold one digit label 0-9 per image.")

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
