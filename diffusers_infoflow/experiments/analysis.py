"""Entropy analysis of the schedule families and seed 000's matched-step cases (the ``infoflow analyze`` job).

Writes, into one folder: entropy and log-SNR curves of every discrete family (PNG + CSV), the matched-step
tables for seed 000's Tables 2–5 and §3.2.3 (JSON + CSV), and ``report.md`` that shows them and states,
case by case, whether the paper's numbers are consistent with its own entropy rule.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import torch
from tqdm.auto import tqdm

from ..entropy import match_timestep, match_timestep_fractional
from ..schedules import DISCRETE_SCHEDULES, DiscreteSchedule


# Seed 000's cases: (label, (src schedule, T_src), source steps, (dst schedule, T_dst), the paper's matched steps).
PAPER_CASES: List[Tuple[str, Tuple[str, int], Tuple[int, ...], Tuple[str, int], Tuple[int, ...]]] = [
    ("Table 2", ("linear", 300), (50, 90, 150), ("cosine", 300), (55, 96, 155)),
    ("Table 3", ("sigmoid", 300), (18, 49, 110), ("cosine", 300), (50, 100, 150)),
    ("Table 4", ("sigmoid", 300), (40, 75, 150), ("sigmoid", 500), (48, 100, 220)),
    ("Table 4", ("sigmoid", 300), (40, 75, 150), ("sigmoid", 1000), (56, 137, 372)),
    ("Table 5", ("cosine", 1000), (167, 335, 435), ("cosine", 300), (50, 100, 130)),
    ("Table 5", ("cosine", 1000), (167, 335, 435), ("cosine", 500), (85, 170, 218)),
    ("Table 5", ("cosine", 1000), (167, 335, 435), ("quadratic", 300), (76, 145, 178)),
    ("§3.2.3", ("quadratic", 300), (178,), ("cosine", 300), (130,)),
    ("§3.2.3", ("cosine", 300), (130,), ("quadratic", 300), (178,)),
]

MNIST_SHAPE = (1, 28, 28)


@dataclass
class MatchedCase:
    case: str
    src: str
    dst: str
    src_step: int
    paper_step: int
    matched_step: int
    matched_fractional: float
    paper_step_with_s_0_08: int  # our match had the cosine offset been the s = 0.08 of seed 000's text
    entropy_gap_nats_per_pixel: float  # H_dst(paper step) − H_src(src step), per coordinate
    verdict: str


def _verdict(paper: int, ours: int, T_dst: int) -> str:
    gap = abs(paper - ours)
    if gap == 0:
        return "agrees"
    if gap <= 1:
        return "agrees within one step"
    if gap <= max(2, round(0.01 * T_dst)):
        return "close (within 1% of T)"
    return "disagrees"


def paper_cases(progress: bool = True) -> List[MatchedCase]:
    """Recompute every matched step of seed 000 with the corrected schedules (cosine s = 0.008)."""
    rows = []
    cases = [(label, src, t, dst, p) for label, src, steps, dst, paper in PAPER_CASES for t, p in zip(steps, paper)]
    for label, (src, T_src), t, (dst, T_dst), paper in tqdm(cases, desc="matching seed 000's cases", disable=not progress):
        kw = {"src": src, "dst": dst, "src_steps": T_src, "dst_steps": T_dst}
        ours = match_timestep(t, **kw)
        try:
            frac = match_timestep_fractional(t, **kw)
        except ValueError:
            frac = math.nan
        s_text = {"src_params": {"s": 0.08} if src == "cosine" else None, "dst_params": {"s": 0.08} if dst == "cosine" else None}
        with_s_text = match_timestep(t, **kw, **s_text)
        a = DiscreteSchedule.from_name(src, T_src)
        b = DiscreteSchedule.from_name(dst, T_dst)
        gap = float(b.entropy(paper - 1.0, 1) - a.entropy(t - 1.0, 1))
        rows.append(
            MatchedCase(label, f"{src} T={T_src}", f"{dst} T={T_dst}", t, paper, ours, frac, with_s_text, gap, _verdict(paper, ours, T_dst))
        )
    return rows


def schedule_curves(T: int = 300, sample_shape: Sequence[int] = MNIST_SHAPE) -> Dict[str, Dict[str, List[float]]]:
    """Entropy (nats, for ``sample_shape``) and log-SNR per step 1..T of every discrete family."""
    n = math.prod(sample_shape)
    curves = {}
    for name in DISCRETE_SCHEDULES:
        sched = DiscreteSchedule.from_name(name, T)
        t = torch.arange(T, dtype=torch.float64)
        curves[name] = {"entropy": sched.entropy(t, n).tolist(), "logsnr": sched.logsnr_table.tolist()}
    return curves


def _plot_curves(curves: Dict[str, Dict[str, List[float]]], T: int, n: int, out_dir: str) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    steps = list(range(1, T + 1))
    for key, ylabel, fname in (
        ("entropy", f"H(x_t | x_0) [nats], n = {n}", "entropy_curves.png"),
        ("logsnr", "log-SNR λ_t = log(ᾱ_t / (1 − ᾱ_t))", "logsnr_curves.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for name, c in curves.items():
            ax.plot(steps, c[key], label=name, lw=1.4)
        if key == "entropy":
            ax.axhline(n / 2 * math.log(2 * math.pi * math.e), color="k", ls=":", lw=1, label="(n/2) ln(2πe)")
        ax.set_xlabel(f"forward step t (T = {T})")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        path = os.path.join(out_dir, fname)
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def _plot_matching(out_dir: str) -> str:
    """Matched-step maps t → t' for the paper's schedule pairs (the curves its Tables 2–5 sample)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    pairs = {(src, dst) for _, src, _, dst, _ in PAPER_CASES}
    for (src, T_src), (dst, T_dst) in sorted(pairs):
        a = DiscreteSchedule.from_name(src, T_src)
        b = DiscreteSchedule.from_name(dst, T_dst)
        h_a = a.entropy(torch.arange(T_src, dtype=torch.float64), 1)
        h_b = b.entropy(torch.arange(T_dst, dtype=torch.float64), 1)
        matched = torch.argmin((h_b[None, :] - h_a[:, None]).abs(), dim=1) + 1
        ax.plot(range(1, T_src + 1), matched.tolist(), label=f"{src} {T_src} → {dst} {T_dst}", lw=1.3)
    for _, (src, T_src), steps, (dst, T_dst), paper in PAPER_CASES:
        ax.scatter(steps, paper, marker="x", color="k", s=25, zorder=3)
    ax.scatter([], [], marker="x", color="k", label="seed 000's reported steps")
    ax.set_xlabel("source step t")
    ax.set_ylabel("entropy-matched destination step t'")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out_dir, "matched_steps.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def _markdown_table(rows: List[MatchedCase]) -> str:
    head = "| case | source | destination | t | paper t' | ours t' | ours (fractional) | with s = 0.08 | ΔH at paper t' [nats/pixel] | verdict |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        frac = "out of range" if math.isnan(r.matched_fractional) else f"{r.matched_fractional:.2f}"
        lines.append(
            f"| {r.case} | {r.src} | {r.dst} | {r.src_step} | {r.paper_step} | {r.matched_step} | {frac} | "
            f"{r.paper_step_with_s_0_08} | {r.entropy_gap_nats_per_pixel:+.4f} | {r.verdict} |"
        )
    return "\n".join(lines)


def _consistency_notes(rows: List[MatchedCase]) -> List[str]:
    notes = []
    table3 = [r for r in rows if r.case == "Table 3"]
    if table3 and all(r.verdict == "disagrees" for r in table3):
        notes.append(
            "**Table 3 is not self-consistent.** Sigmoid steps "
            + ", ".join(str(r.src_step) for r in table3)
            + " have the entropy of cosine steps "
            + ", ".join(str(r.matched_step) for r in table3)
            + ", not "
            + ", ".join(str(r.paper_step) for r in table3)
            + f"; the paper's pairs differ by {min(abs(r.entropy_gap_nats_per_pixel) for r in table3):.2f}–"
            f"{max(abs(r.entropy_gap_nats_per_pixel) for r in table3):.2f} nats per pixel, and no cosine offset "
            "(0.008 or 0.08) reproduces them. With the two schedules' roles swapped (noise with cosine, restore "
            "with sigmoid) the rule gives "
            + ", ".join(
                str(match_timestep(r.src_step, src="cosine", dst="sigmoid", src_steps=300, dst_steps=300)) for r in table3
            )
            + ": the paper's columns were most likely labelled the wrong way round."
        )
    s_rows = [r for r in rows if "cosine" in r.src + r.dst and r.case != "Table 3"]
    hits_small = sum(r.matched_step == r.paper_step or abs(r.matched_step - r.paper_step) <= 1 for r in s_rows)
    hits_text = sum(abs(r.paper_step_with_s_0_08 - r.paper_step) <= 1 for r in s_rows)
    notes.append(
        f"**Cosine offset.** Seed 000's text gives s = 0.08, but with s = 0.008 (the iDDPM value) {hits_small} of "
        f"{len(s_rows)} cosine cases outside Table 3 come out within one step of the paper, against {hits_text} with "
        "s = 0.08; the project uses s = 0.008, Nichol & Dhariwal's value."
    )
    off = [r for r in rows if r.verdict not in ("agrees", "agrees within one step") and r.case != "Table 3"]
    if off:
        notes.append(
            "**Small disagreements** (not explained by the offset): "
            + "; ".join(f"{r.case} {r.src} {r.src_step} → {r.dst}: paper {r.paper_step}, entropy rule {r.matched_step}" for r in off)
            + ". These are within a few percent of T; the paper does not say how it rounded or which n it used, and "
            "neither changes an argmin of a monotone function, so we report the rule's value."
        )
    hybrid = [r for r in rows if r.case == "§3.2.3"]
    if hybrid and all(r.verdict == "agrees" for r in hybrid):
        notes.append("**§3.2.3 hybrid switch** (Quadratic 178 ↔ Cosine 130 at T = 300) is reproduced exactly in both directions.")
    return notes


def run_analysis(
    out_dir: str, num_train_timesteps: int = 300, sample_shape: Sequence[int] = MNIST_SHAPE, progress: bool = True
) -> Tuple[Dict[str, str], List[MatchedCase]]:
    """Writes the whole analysis into ``out_dir``; returns ({artifact name: path}, the recomputed paper cases)."""
    os.makedirs(out_dir, exist_ok=True)
    n = math.prod(sample_shape)
    curves = schedule_curves(num_train_timesteps, sample_shape)
    rows = paper_cases(progress=progress)
    written = {}

    curves_csv = os.path.join(out_dir, "schedule_curves.csv")
    with open(curves_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["schedule", "step", "entropy_nats", "logsnr"])
        for name, c in curves.items():
            for t, (h, lam) in enumerate(zip(c["entropy"], c["logsnr"]), start=1):
                writer.writerow([name, t, f"{h:.6f}", f"{lam:.6f}"])
    written["curves_csv"] = curves_csv

    cases_json = os.path.join(out_dir, "matched_steps.json")
    with open(cases_json, "w") as f:
        json.dump([asdict(r) for r in rows], f, indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x)
    cases_csv = os.path.join(out_dir, "matched_steps.csv")
    with open(cases_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    written.update(cases_json=cases_json, cases_csv=cases_csv)

    entropy_png, logsnr_png = _plot_curves(curves, num_train_timesteps, n, out_dir)
    matching_png = _plot_matching(out_dir)
    written.update(entropy_png=entropy_png, logsnr_png=logsnr_png, matching_png=matching_png)

    limit = n / 2 * math.log(2 * math.pi * math.e)
    final = ", ".join(f"{name} {c['entropy'][-1]:.1f}" for name, c in curves.items())
    report = [
        "# infoflow analyze: entropy-guided scheduling",
        "",
        f"Schedules at T = {num_train_timesteps}, images of shape {tuple(sample_shape)} (n = {n}). "
        "Entropy is the differential entropy of the noisy image given the clean one, "
        "H(x_t | x0) = (n/2)·ln(2πe·(1 − ᾱ_t)) in nats (seed 000 eq. 5 with the cumulative ᾱ_t). "
        f"Its limit as ᾱ → 0 is (n/2)·ln(2πe) = {limit:.1f} nats; the families end at: {final}.",
        "",
        "![entropy](entropy_curves.png)",
        "",
        "![log-SNR](logsnr_curves.png)",
        "",
        "## Seed 000's matched steps, recomputed",
        "",
        "t' = argmin |H_dst(t') − H_src(t)| over 1..T_dst; 'fractional' solves H_dst(t') = H_src(t) on the "
        "log-SNR interpolant; ΔH is how far the paper's own choice is from the source entropy.",
        "",
        _markdown_table(rows),
        "",
        "![matched steps](matched_steps.png)",
        "",
        "## Where the paper is and is not self-consistent",
        "",
        *[f"- {note}" for note in _consistency_notes(rows)],
        "",
        "Files: `schedule_curves.csv`, `matched_steps.json`, `matched_steps.csv`.",
        "",
    ]
    report_path = os.path.join(out_dir, "report.md")
    with open(report_path, "w") as f:
        f.write("\n".join(report))
    written["report"] = report_path
    return written, rows
