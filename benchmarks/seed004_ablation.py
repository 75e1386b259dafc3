"""Benchmark: seed 004's Table 2 ablation on MNIST at 10, 20 and 50 model calls.

Rows are :data:`diffusers_infoflow.experiments.ablations.SEED004_TABLE2` (DDIM; + the trig schedule β*; + the sin/cos angle
ODE; + joint ``[ε, x0]`` prediction; their combinations; and "Ours" = trig schedule + angle ODE + joint model +
RK4), plus one row of ours with the project's multistep solver in place of RK4, and every joint row again with
the two heads read as one v-prediction (``joint_heads="velocity"``, this project's default) instead of as they
are. Each row's sampler is built by the row itself for the model it needs; the models are four fine-tunes of the shipped ``mnist-ddpm`` with the
same recipe (1,000 steps of 64 images, ``bash benchmarks/train_seed_models.sh``): ``linear-eps-1000``, ``trig-eps-1000``,
``linear-joint-1000`` and ``trig-joint-1000`` (T = 1000). So the rows differ only in schedule, objective and
sampler, not in compute.

Every row clamps x̂0 to [-1, 1] (``clip_sample``, diffusers' DDIM default; ``--clip-sample off`` keeps the rows'
own unclamped configs, under which these briefly trained ε models break at the noisy end of the trig table). Every
row draws ``--num-samples`` images from the same initial noise (``JointTrigPipeline``'s standard loop) in at
most the given number of model calls (multi-call solvers get the most whole steps that fit; the table shows the
calls used), scored by FID with the shipped MNIST classifier against the 10,000 MNIST test images, with the floor
of real train images at the same N.

    bash benchmarks/train_seed_models.sh linear-eps-1000 trig-eps-1000 linear-joint-1000 trig-joint-1000
    python benchmarks/seed004_ablation.py [--model-calls 10 20 50] [--num-samples 500]

Writes ``benchmarks/results/seed004_ablation.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

from diffusers_infoflow.experiments.ablations import SEED004_TABLE2
from diffusers_infoflow.metrics import GenerativeScorer, load_mnist, process_shard
from diffusers_infoflow.pipelines.joint_trig import JointTrigPipeline
from diffusers_infoflow.sampling import process_state, sample_batches, steps_within_calls


RESULTS = Path(__file__).resolve().parent / "results"
# seed 004 Table 2, CIFAR-10 FIDs at 10 / 20 / 50 steps (for the direction of each change, not the scale)
PAPER_FID = {
    "ddim": (18.67, 11.06, 7.08), "ddim+beta*": (15.04, 9.28, 6.00), "ddim+sin": (15.97, 9.79, 6.22),
    "ddim+joint": (15.03, 8.84, 6.25), "ddim+sin+joint": (13.17, 8.29, 5.50), "ddim+beta*+joint": (13.69, 8.73, 5.80),
    "ours": (9.50, 5.62, 4.57),
}
PAPER_BUDGETS = (10, 20, 50)
# The paper's rows (each joint head read as it is), then ours with the multistep solver, and the joint rows with both
# heads read as one v-prediction (this project's default, `joint_heads="velocity"`).
_OURS = next(r for r in SEED004_TABLE2 if r.name == "ours")
ROWS = ([(row, {}) for row in SEED004_TABLE2] + [(_OURS, {"solver": "multistep"})]
        + [(row, {"joint_heads": "velocity"}) for row in SEED004_TABLE2 if row.needs_joint_model]
        + [(_OURS, {"solver": "multistep", "joint_heads": "velocity"})])


def model_name(row) -> str:
    return f"{row.train_schedule}-{'joint' if row.needs_joint_model else 'eps'}-1000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default="runs/seed-models")
    parser.add_argument("--model-calls", "--calls", dest="calls", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="MNIST .npz (default: $INFOFLOW_MNIST or ../shared/data/mnist.npz)")
    parser.add_argument("--clip-sample", choices=["on", "off"], default="on",
                        help="clamp x̂0 to [-1, 1] in every row (diffusers' DDIM default); 'off' = the rows' own no-clip configs")
    parser.add_argument("--output", default=str(RESULTS / "seed004_ablation"))
    args = parser.parse_args()

    state = process_state()  # under accelerate launch the samples are split between processes
    scorer = GenerativeScorer(load_mnist("test", None, args.data), metrics=["fid", "kid", "confident"], device=state.device)
    floor = scorer.score(process_shard(load_mnist("train", args.num_samples, args.data)))
    loaded = {}
    rows, start_all = [], time.perf_counter()
    for row, overrides in ROWS:
        name = model_name(row)
        folder = Path(args.models_dir) / name
        if not (folder / "model_index.json").is_file():
            raise SystemExit(f"{folder} is missing; run `bash benchmarks/train_seed_models.sh {name}` first.")
        if name not in loaded:
            loaded[name] = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
        saved = loaded[name]
        clip = {"clip_sample": args.clip_sample == "on"}
        scheduler = row.make_scheduler(saved.scheduler.config.num_train_timesteps, **overrides, **clip)
        # the row's own training table must be the model's
        if not torch.allclose(saved.scheduler.alphas_cumprod.double(), scheduler.alphas_cumprod.double(), rtol=1e-4, atol=1e-7):
            raise SystemExit(f"row {row.name} expects a {row.train_schedule} model, but {folder} was trained on another table.")
        pipeline = JointTrigPipeline(unet=saved.unet, scheduler=scheduler)
        variant = f" ({', '.join(str(value) for value in overrides.values())})" if overrides else ""
        label = row.name + variant
        for budget in args.calls:
            start = time.perf_counter()
            steps, calls = steps_within_calls(scheduler, budget)
            images = sample_batches(pipeline, steps, args.num_samples, args.seed, args.batch_size)
            scores = scorer.score(images.clamp(0, 1))
            paper = PAPER_FID.get(row.name) if not overrides and budget in PAPER_BUDGETS else None
            rows.append({"row": label, "paper_label": row.paper_label + variant, "model": name, "scheduler": type(scheduler).__name__,
                         "budget": budget, "steps": steps, "calls": calls, **scores,
                         "paper_fid": paper[PAPER_BUDGETS.index(budget)] if paper else None,
                         "seconds": time.perf_counter() - start})
            state.print(f"{label:22s} {budget:3d} calls ({calls} used): FID {scores['fid']:.2f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    if not state.is_main_process:
        return

    result = {"num_samples": args.num_samples, "calls": args.calls, "clip_sample": args.clip_sample == "on", "floor_same_n": floor, "rows": rows,
              "torch_threads": torch.get_num_threads(), "seconds": time.perf_counter() - start_all}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {out}.json/.md in {result['seconds']:.0f} s")


def markdown(result) -> str:
    budgets = result["calls"]
    cells = {(r["row"], r["budget"]): r for r in result["rows"]}
    labels = list(dict.fromkeys(r["row"] for r in result["rows"]))
    lines = ["# Seed 004 Table 2 ablation on MNIST", "",
             f"`python benchmarks/seed004_ablation.py --num-samples {result['num_samples']}`: FID (shipped MNIST classifier, "
             f"{result['num_samples']} samples against the 10k test images; floor at this N "
             f"{result['floor_same_n']['fid']:.2f}) at {', '.join(map(str, budgets))} model calls (calls used in brackets). "
             f"x̂0 clamped to [-1, 1] in every row: {'yes' if result['clip_sample'] else 'no'}. "
             "Paper: seed 004's CIFAR-10 FIDs at the same budgets.", "",
             "| row | model | " + " | ".join(f"{b} calls" for b in budgets) + " | paper (CIFAR-10) |",
             "|---|---|" + "---|" * len(budgets) + "---|"]
    for label in labels:
        first = cells[(label, budgets[0])]
        values = " | ".join(f"{cells[(label, b)]['fid']:.2f} ({cells[(label, b)]['calls']})" for b in budgets)
        paper = " / ".join(f"{cells[(label, b)]['paper_fid']:.2f}" for b in budgets if cells[(label, b)]["paper_fid"]) or "–"
        lines.append(f"| {first['paper_label']} | {first['model']} | {values} | {paper} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
