#!/usr/bin/env python
"""Train an unconditional diffusion UNet; run with ``accelerate launch scripts/train.py --help``.

All logic lives in :mod:`diffusers_infoflow.training`; see its docstring for how resuming stays exact.
"""

from diffusers_infoflow.training import parse_args, train


if __name__ == "__main__":
    try:
        train(parse_args())
    except (ValueError, FileNotFoundError) as err:  # bad data, paths or checkpoints: one line, no traceback
        raise SystemExit(f"scripts/train.py: {err}") from None
