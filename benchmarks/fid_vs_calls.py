"""Benchmark: sample quality against model calls on a shipped MNIST model.

Every sampler of ``infoflow sample`` (ours and diffusers' built-ins, each ``from_config`` of the model's saved
training scheduler, with the settings ``infoflow sample`` uses) draws ``--num-samples`` images from the same
initial noise at 5, 10, 20 and 50 model calls (calls, not steps: multi-call solvers get as many whole steps as
fit). Scores are FID, KID and the confident fraction with the shipped MNIST feature network against the MNIST
test set, whose features are computed once. Because FID is biased upwards at small N, the table also gives the
**floor at the same N**: MNIST train images (N of them) against the same reference. Writes
``benchmarks/results/fid_vs_calls.{json,md,png}``. Runs under ``accelerate launch`` too (samples split between
processes, one score).

    python benchmarks/fid_vs_calls.py [--model DIR] [--num-samples 500] [--model-calls 5 10 20 50]
    python benchmarks/fid_vs_calls.py --schedulers trig-multistep --merge  # re-run some rows of the saved results
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 benchmarks/fid_vs_calls.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _results import merged_rows, saved_for_merge

from diffusers_infoflow.metrics import GenerativeScorer, load_mnist, process_shard
from diffusers_infoflow.sampling import DEFAULT_MODEL, SCHEDULERS, generate, process_state


OURS = ("entropy-hybrid", "s2n", "s2n-stochastic", "trig-rk4", "trig-multistep")
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--schedulers", nargs="+", default=[s for s in SCHEDULERS if s != "ddpm"])
    parser.add_argument("--model-calls", "--calls", dest="calls", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-reference", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="MNIST .npz (default: $INFOFLOW_MNIST or ../shared/data/mnist.npz)")
    parser.add_argument("--output", default=str(RESULTS / "fid_vs_calls"))
    parser.add_argument("--merge", action="store_true", help="replace the rows of --schedulers in the saved results of "
                        "--output (same model, samples, reference and seed) and keep the others")
    args = parser.parse_args()
    saved = saved_for_merge(args.output, model=args.model, num_samples=args.num_samples, num_reference=args.num_reference,
                            seed=args.seed) if args.merge else None

    state = process_state()
    scorer = GenerativeScorer(load_mnist("test", args.num_reference, args.data), metrics=["fid", "kid", "confident"], device=state.device)
    floor = scorer.score(process_shard(load_mnist("train", args.num_samples, args.data)))
    rows, start_all = [], time.perf_counter()
    for name in args.schedulers:
        for calls in args.calls:
            start = time.perf_counter()
            try:
                images, steps, used = generate(args.model, name, calls, args.num_samples, args.seed, args.batch_size)
            except ValueError as err:  # e.g. RK4 cannot take one step in 5 calls
                rows.append({"scheduler": name, "budget": calls, "error": str(err)})
                state.print(f"{name:15s} {calls:3d} calls: {err}")
                continue
            scores = scorer.score(images.clamp(0, 1))
            row = {"scheduler": name, "budget": calls, "steps": steps, "calls": used, **scores,
                   "seconds": time.perf_counter() - start, "num_processes": state.num_processes}
            rows.append(row)
            state.print(f"{name:15s} {calls:3d} calls ({used} used, {steps} steps): FID {scores['fid']:.2f}, "
                        f"confident {scores['confident_fraction']:.1%}  ({row['seconds']:.0f} s)")
    if not state.is_main_process:
        return

    result = {
        "model": str(args.model), "num_samples": args.num_samples, "num_reference": args.num_reference, "seed": args.seed,
        "feature_network": "shipped MNIST classifier", "floor_same_n": floor, "rows": rows,
        "seconds": time.perf_counter() - start_all,  # of every run the rows come from; each row has its own
    }
    if saved is not None:
        result.update(rows=merged_rows(saved["rows"], rows, key=lambda r: (r["scheduler"], r["budget"])),
                      seconds=saved["seconds"] + result["seconds"])
        args.schedulers = list(dict.fromkeys([r["scheduler"] for r in saved["rows"]] + args.schedulers))
        args.calls = sorted({r["budget"] for r in result["rows"]})
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result, args))
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out}.json/.md/.png; this run took {time.perf_counter() - start_all:.0f} s")


def markdown(result, args) -> str:
    budgets = args.calls
    cells = {(r["scheduler"], r["budget"]): r for r in result["rows"] if "fid" in r}
    best = {b: min((r["fid"] for r in cells.values() if r["budget"] == b), default=None) for b in budgets}

    def table(cell) -> list:
        lines = ["| sampler | " + " | ".join(f"{b} calls" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
        for name in args.schedulers:
            row = [cell(cells[(name, b)], b) if (name, b) in cells else "–" for b in budgets]
            lines.append(f"| {'★ ' if name in OURS else ''}{name} | " + " | ".join(row) + " |")
        return lines

    def fid_cell(r, b) -> str:
        text = f"{r['fid']:.2f} ({r['calls']})"
        return f"**{text}**" if r["fid"] == best[b] else text

    floor = result["floor_same_n"]
    return "\n".join([
        "# FID against model calls",
        "",
        f"`python benchmarks/fid_vs_calls.py --num-samples {args.num_samples}` on `{Path(result['model']).name}`: "
        f"FID of {result['num_samples']} samples against {result['num_reference']} MNIST test images, shipped MNIST "
        f"feature network. ★ = this project's samplers. Floor at the same N (MNIST train {result['num_samples']} vs "
        f"test): **{floor['fid']:.2f}**. Bold = best per column. Cells: FID (model calls used).",
        "",
        *table(fid_cell),
        "",
        f"Confident fraction (the classifier's max-softmax > 0.9; MNIST train at the same N: {floor['confident_fraction']:.1%}) "
        "/ the rarest class's share (uniform: 10%):",
        "",
        *table(lambda r, b: f"{r['confident_fraction']:.1%} / {r['min_class_fraction']:.1%}"),
    ]) + "\n"


def plot(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = sorted({r["scheduler"] for r in result["rows"]})
    for name in names:
        pts = sorted((r["calls"], r["fid"]) for r in result["rows"] if r["scheduler"] == name and "fid" in r)
        if pts:
            ax.plot(*zip(*pts), "o-" if name in OURS else "s--", label=name)
    ax.axhline(result["floor_same_n"]["fid"], color="black", ls=":", lw=1.5, label="floor (train vs test, same N)")
    ax.set(xscale="log", yscale="log", xlabel="model calls", ylabel="FID (MNIST features)",
           title=f"{Path(result['model']).name}: FID vs model calls, N = {result['num_samples']}")
    # plain numbers at the budgets (a solver that fits fewer calls sits left of its budget), not powers of ten
    ax.set_xticks(sorted({r["budget"] for r in result["rows"]}))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))  # labels below 10 too, where the floor is
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
