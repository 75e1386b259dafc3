#!/usr/bin/env python
"""Train an unconditional diffusion UNet; run with ``accelerate launch scripts/train.py --help``.

All logic lives in :mod:`diffusers_infoflow.training`; see its docstring for how resuming stays exact.
"""

from diffusers_infoflow.training import parse_args, train


if __name__ == "__main__":
    train(parse_args())
