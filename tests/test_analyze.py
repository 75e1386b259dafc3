"""`infoflow analyze`: runs offline, writes the report and reproduces seed 000's self-consistent cases."""

import json

import pytest

from diffusers_infoflow.cli import main
from diffusers_infoflow.experiments.analysis import paper_cases


def test_analyze_writes_report_plots_and_tables(tmp_path, capsys):
    assert main(["analyze", "--output-dir", str(tmp_path), "--quiet"]) == 0
    for name in ("report.md", "entropy_curves.png", "logsnr_curves.png", "matched_steps.png", "matched_steps.json", "matched_steps.csv", "schedule_curves.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = (tmp_path / "report.md").read_text()
    assert "![entropy](entropy_curves.png)" in report and "Table 3 is not self-consistent" in report
    rows = json.loads((tmp_path / "matched_steps.json").read_text())
    assert len(rows) == 23
    out = capsys.readouterr().out
    assert "quadratic T=300 t=178" in out and "paper 130" in out


def test_paper_cases_where_the_paper_is_self_consistent():
    rows = paper_cases(progress=False)
    by_key = {(r.case, r.src, r.dst, r.src_step): r for r in rows}
    assert by_key[("§3.2.3", "quadratic T=300", "cosine T=300", 178)].matched_step == 130
    assert by_key[("§3.2.3", "cosine T=300", "quadratic T=300", 130)].matched_step == 178
    # every case outside Table 3 lies within 3% of T of the paper's step
    for r in rows:
        if r.case != "Table 3":
            T_dst = int(r.dst.split("T=")[1])
            assert abs(r.matched_step - r.paper_step) <= 0.03 * T_dst, r


def test_analyze_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit, match="num-train-timesteps"):
        main(["analyze", "--output-dir", str(tmp_path), "--num-train-timesteps", "1"])


@pytest.mark.parametrize("command", ["analyze", "sample", "sweep", "curves", "evaluate", "calibrate"])
def test_help_states_defaults_without_none(command, capsys):
    # an option without a default says in words what happens; "(default: None)" after it contradicted that
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "--" in text and "(default: None)" not in text
