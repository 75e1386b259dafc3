#!/usr/bin/env python
"""Upload a trained output folder (pipeline + model card, no checkpoints/logs) to the Hugging Face Hub.

    HF_TOKEN=... python scripts/push_to_hub.py OUTPUT_DIR USER/REPO [--private]
"""

import argparse

from diffusers_infoflow.hub import push_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="an output folder written by scripts/train.py")
    parser.add_argument("repo_id", help="the Hub model repository, e.g. user/mnist-ddpm")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args()
    try:
        print(push_folder(args.folder, args.repo_id, private=args.private))
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise SystemExit(f"scripts/push_to_hub.py: {err}") from None


if __name__ == "__main__":
    main()
