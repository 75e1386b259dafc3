"""FID/KID floor of the shipped MNIST feature network at the sample sizes used elsewhere: the first N MNIST train
images against the 10,000 test images (real against real, so any model's FID at that N should be read against it).

    python benchmarks/fid_floor.py [--sizes 200 1000 10000] [--data ../shared/data/mnist.npz]
"""

import argparse
import json
from pathlib import Path

from diffusers_infoflow.metrics import generative_scores, load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 10000])
    parser.add_argument("--data", default=None)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "fid_floor.json"))
    args = parser.parse_args()
    reference = load_mnist("test", 10000, args.data)
    floors = {}
    for n in args.sizes:
        floors[n] = generative_scores(load_mnist("train", n, args.data), reference, metrics=["fid", "kid"])
        print(f"N = {n:5d}: FID {floors[n]['fid']:.2f}, KID {floors[n]['kid_mean']:.3g}")
    Path(args.output).write_text(json.dumps({"reference": "MNIST test 10k", "floors": floors}, indent=1))


if __name__ == "__main__":
    main()
