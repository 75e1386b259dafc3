"""The benchmarks' results files: ``--merge`` adds a run's rows to the saved ones (``fid_vs_calls.py``,
``fid_race.py``, ``sampler_race.py``), refused before any sampling when the saved numbers were measured another way."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Dict, List


def saved_for_merge(output, **measured) -> dict:
    """The saved results ``output``.json that a ``--merge`` run adds to, each row with the number of processes
    that measured it.

    Args:
        output: the results path without its suffix (``--output``).
        measured: what every number of the file depends on besides the sampler and budget, as this run measures
            it (``model``, a path, compared resolved; ``num_samples``, ``num_reference``, ``seed``, ...). A file
            written before the seed was recorded used the default seed 0.

    Raises:
        SystemExit: one line, when there is no saved file or it was measured differently (each difference named).
    """
    path = Path(output).with_suffix(".json")
    if not path.is_file():
        raise SystemExit(f"--merge: no saved results at {path}")
    saved = json.loads(path.read_text())
    theirs = {"seed": 0, **saved}

    def same(key, value) -> bool:
        return Path(theirs[key]).resolve() == Path(value).resolve() if key == "model" else theirs.get(key) == value

    differ = [f"{key} {theirs.get(key)} (saved) != {value}" for key, value in measured.items() if not same(key, value)]
    if differ:
        raise SystemExit(f"--merge: {path} was measured differently: {'; '.join(differ)}")
    if "num_processes" in saved:  # files of one run recorded its process count once, for every row
        count = saved.pop("num_processes")
        for row in saved["rows"]:
            row.setdefault("num_processes", count)
    return saved


def merged_rows(saved_rows: List[Dict], rows: List[Dict], key: Callable[[Dict], tuple]) -> List[Dict]:
    """The saved rows this run did not measure again (by ``key``, e.g. sampler and budget), then this run's."""
    measured = {key(row) for row in rows}
    return [row for row in saved_rows if key(row) not in measured] + rows


def write_atomic(path, content) -> None:
    """Write ``path`` through a staged file, so that a run stopped mid-write leaves the old file whole.

    Args:
        path: the file.
        content: its text, or a function that writes the file at the path it is given (e.g. a plot's ``savefig``;
            the staged path keeps the suffix, from which such writers take the format).
    """
    path = Path(path)
    staged = path.with_name(f"{path.stem}.tmp{path.suffix}")
    if callable(content):
        content(staged)
    else:
        staged.write_text(content)
    os.replace(staged, path)
