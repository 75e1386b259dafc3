"""``scripts/train.py``'s command line for the benchmarks (``scripts/`` is not part of the installed package)."""

import importlib.util
from pathlib import Path


TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
_spec = importlib.util.spec_from_file_location("infoflow_train_script", TRAIN_SCRIPT)
_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_script)
parse_args = _script.parse_args
