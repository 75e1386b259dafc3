"""The ``infoflow`` console command. Each subcommand lives in ``diffusers_infoflow.commands.<name>``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional


# Module names under diffusers_infoflow.commands; each defines `register(subparsers)` which adds its parser
# and sets `func=run(args) -> int`.
COMMANDS = [
    "analyze",
    "sample",
    "sweep",
    "curves",
    "evaluate",
    "calibrate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infoflow",
        description="Information flow in diffusion models: entropy-guided scheduling, samplers and metrics for diffusers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"diffusers_infoflow.commands.{name}").register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
