"""benchmarks/_results.py: ``--merge`` of the FID benchmarks adds a run's rows only to results measured the same way."""

import importlib.util
import json
from pathlib import Path

import pytest


_spec = importlib.util.spec_from_file_location("benchmark_results", Path(__file__).resolve().parents[1] / "benchmarks" / "_results.py")
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)


def test_merge_refuses_results_measured_differently_and_replaces_only_remeasured_rows(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    saved = {"model": str(model), "num_samples": 500, "num_reference": 10000,  # written before the seed was recorded
             "num_processes": 2,  # and before each row recorded its process count
             "rows": [{"sampler": "a", "budget": 5, "fid": 1.0}, {"sampler": "a", "budget": 10, "fid": 2.0},
                      {"sampler": "b", "budget": 5, "fid": 3.0}]}
    (tmp_path / "race.json").write_text(json.dumps(saved))
    same = {"model": model / ".." / "model", "num_samples": 500, "num_reference": 10000, "seed": 0}
    read = results.saved_for_merge(tmp_path / "race", **same)  # the model compared as a resolved path
    assert "num_processes" not in read and [row["num_processes"] for row in read["rows"]] == [2, 2, 2]
    assert [{**row, "num_processes": 2} for row in saved["rows"]] == read["rows"]
    with pytest.raises(SystemExit, match=r"measured differently: num_samples 500 \(saved\) != 2000; seed 0 \(saved\) != 1$"):
        results.saved_for_merge(tmp_path / "race", **{**same, "num_samples": 2000, "seed": 1})
    with pytest.raises(SystemExit, match="no saved results at .*other.json"):
        results.saved_for_merge(tmp_path / "other", **same)

    rows = [{"sampler": "a", "budget": 10, "fid": 0.5}, {"sampler": "c", "budget": 5, "fid": 4.0}]
    merged = results.merged_rows(read["rows"], rows, key=lambda r: (r["sampler"], r["budget"]))
    assert merged == [read["rows"][0], read["rows"][2], *rows]  # a's 5-call row kept: this run did not measure it


def test_write_atomic_replaces_whole_files_and_keeps_the_old_one_when_a_writer_fails(tmp_path):
    path = tmp_path / "plot.png"
    results.write_atomic(path, "old")
    seen = []
    results.write_atomic(path, lambda staged: seen.append(staged.suffix) or staged.write_text("new"))
    assert path.read_text() == "new" and seen == [".png"]  # the staged file keeps the suffix (savefig's format)

    def failing(staged):
        staged.write_text("half")
        raise RuntimeError("stopped mid-write")

    with pytest.raises(RuntimeError):
        results.write_atomic(path, failing)
    assert path.read_text() == "new"
