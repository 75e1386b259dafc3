"""Subcommands of the ``infoflow`` console command (see ``diffusers_infoflow.cli``)."""

import argparse
from pathlib import Path


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except ``None``: those options say in words what happens without them (a
    bare "(default: None)" after "default: MNIST test" read as a contradiction)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def prepare_output(path: str, option: str, folder: bool = False) -> None:
    """Makes the folder an output goes into (``folder=True``: the output folder itself) before any work, so that a
    bad path fails in one line at the start rather than after the work.

    Raises:
        ValueError: naming `option`, when `path` is a folder where a file is wanted (or the reverse), or one of the
            folders above it is a file.
    """
    target = Path(path)
    if folder and target.exists() and not target.is_dir():
        raise ValueError(f"{option} {path!r} is a file; give a folder.")
    if not folder and target.is_dir():
        raise ValueError(f"{option} {path!r} is a folder; give a file name.")
    blocking = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"{option} {path!r}: {str(blocking)!r} is a file, not a folder.")
    (target if folder else target.parent).mkdir(parents=True, exist_ok=True)

