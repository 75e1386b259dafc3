"""Benchmark: FID at few model calls on a shipped model, our best samplers against diffusers' best.

Ours is the model's calibrated information sampler (``infoflow calibrate`` saved it in ``MODEL/scheduler_information``:
TrigAngleRK's multistep solver on rungs placed by the model's measured mmse curve), as shipped and with the other
measures/powers of the exact-denoiser race; diffusers' built-ins are built ``from_config`` of the model's saved
scheduler config with the settings that won their families in that race (``benchmarks/sampler_race.py``,
multimodal sets): ``trailing`` spacing, which starts at t = T − 1, and the saved config's own spacing (a DDPM's
``leading`` starts lower, which on ``mnist-ddpm`` is UniPC's best at 5 calls).

Every candidate draws the same noise per batch (``sampling.sample_batches``), every model call is counted
(``len(timesteps)``), and the scores are FID / KID / confident fraction with the shipped MNIST feature network
against MNIST test images whose features are computed once; the floor is MNIST train at the same N.

    python benchmarks/fid_race.py [--model DIR] [--model-calls 5 10 20] [--num-samples 500]
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 benchmarks/fid_race.py

Writes ``benchmarks/results/fid_race.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _results import merged_rows, saved_for_merge
from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler, UniPCMultistepScheduler

from diffusers_infoflow import TrigAngleRKScheduler
from diffusers_infoflow.metrics import GenerativeScorer, load_mnist, process_shard
from diffusers_infoflow.pipelines.joint_trig import JointTrigPipeline
from diffusers_infoflow.sampling import (
    DEFAULT_MODEL,
    denoise,
    information_scheduler,
    process_state,
    sample_batches,
    steps_within_calls,
)


RESULTS = Path(__file__).resolve().parent / "results"

# name -> (ours, factory(training scheduler config, calibrated information sampler))
CANDIDATES = {
    "trig-information (shipped)": (True, lambda cfg, info: info),
    "trig-information, clean end": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(info.config, ladder_end="clean")),
    "trig-information mmse_decrease^0.25": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(
        info.config, information_measure="mmse_decrease", information_power=0.25)),
    "trig-information information^0.25": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(
        info.config, information_measure="information", information_power=0.25)),
    # the same solver on the other ladders, ending at the clean level
    "trig-multistep logsnr": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(info.config, step_spacing="logsnr", ladder_end="clean")),
    "trig-multistep linspace": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(info.config, step_spacing="linspace", ladder_end="clean")),
    "trig-multistep karras": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(info.config, step_spacing="karras", ladder_end="clean")),
    "trig-multistep linspace, trailing": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(
        info.config, step_spacing="linspace", ladder_end="trailing")),
    "trig-multistep linspace, trailing, order 2": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(
        info.config, step_spacing="linspace", ladder_end="trailing", solver_order=2)),
    "trig-multistep linspace, trailing, ε form": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(
        info.config, step_spacing="linspace", ladder_end="trailing", predict_x0=False)),
    "trig-multistep linspace, trailing, no corrector": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(
        info.config, step_spacing="linspace", ladder_end="trailing", use_corrector=False)),
    # diffusers' multistep solvers' lower-order final steps, and the x̂0 clamp of the saved DDPM config off (UniPC
    # does not read it)
    "trig-multistep linspace, trailing, lower-order final": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(
        info.config, step_spacing="linspace", ladder_end="trailing", lower_order_final=True)),
    "trig-multistep linspace, trailing, lower-order final, no clamp": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(
        info.config, step_spacing="linspace", ladder_end="trailing", lower_order_final=True, clip_sample=False)),
    "trig-information, order 2": (True, lambda cfg, info: TrigAngleRKScheduler.from_config(info.config, solver_order=2)),
    "trig-multistep searched (GITS-style)": (True, lambda cfg, info: SearchedLadderScheduler.from_config(info.config)),
    "unipc bh2-3 trailing": (False, lambda cfg, info: UniPCMultistepScheduler.from_config(
        cfg, solver_type="bh2", solver_order=3, timestep_spacing="trailing")),
    "unipc bh2-2 trailing": (False, lambda cfg, info: UniPCMultistepScheduler.from_config(
        cfg, solver_type="bh2", solver_order=2, timestep_spacing="trailing")),
    # the saved config's own spacing (a DDPM's `leading` starts below t = T − 1): diffusers' best at 5 calls on mnist-ddpm
    "unipc bh2-2 saved spacing": (False, lambda cfg, info: UniPCMultistepScheduler.from_config(cfg, solver_type="bh2", solver_order=2)),
    "unipc bh2-3 saved spacing": (False, lambda cfg, info: UniPCMultistepScheduler.from_config(cfg, solver_type="bh2", solver_order=3)),
    "dpm++2m trailing": (False, lambda cfg, info: DPMSolverMultistepScheduler.from_config(
        cfg, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing")),
}


class SearchedLadderScheduler(TrigAngleRKScheduler):
    """TrigAngleRK's multistep solver on a ladder found by :func:`searched_ladders` for each number of calls."""

    ladders: dict = {}

    def set_timesteps(self, num_inference_steps=None, device=None, timesteps=None, sigmas=None, mu=None):
        if timesteps is None and num_inference_steps in self.ladders:
            timesteps = self.ladders[num_inference_steps]
        super().set_timesteps(None if timesteps is not None else num_inference_steps, device, timesteps, sigmas, mu)


def searched_ladders(unet, information, budgets, grid: int = 100, batch: int = 64, seed: int = 1) -> dict:
    """GITS-style dynamic-programming ladders (Chen et al., 2024, "On the Trajectory Regularity of ODE-based Diffusion
    Sampling"): a teacher trajectory on `grid` λ-uniform rungs from noise of its own seed, the cost of a DDIM step from
    teacher rung i to rung j its squared distance to the teacher at j, and per budget the path of that many calls from
    the noisiest to the cleanest rung with the least total cost. Costs `grid` batched model calls."""
    from diffusers_infoflow.model_interface import finite_noisy_logsnr

    interface = information.interface
    lam = torch.linspace(finite_noisy_logsnr(interface), interface.logsnr_range[1], grid, dtype=torch.float64)
    teacher = TrigAngleRKScheduler.from_config(information.config, step_spacing="logsnr")
    teacher.set_timesteps(timesteps=interface.model_timesteps(lam)[0].tolist())
    size = unet.config.sample_size
    x = torch.randn((batch, unet.config.in_channels, size, size), generator=torch.Generator().manual_seed(seed)) * teacher.init_noise_sigma
    states, x0s = [], []

    def record(i, t, state, out):
        states.append(state.double())
        x0s.append(out.pred_original_sample.double())

    denoise(teacher, unet, x, callback=record)
    levels = interface.logsnr_from_model_timesteps(teacher.timesteps)
    alpha, sigma = torch.sigmoid(levels).sqrt(), torch.sigmoid(-levels).sqrt()
    cost = torch.full((grid, grid), float("inf"), dtype=torch.float64)
    for i in range(grid - 1):
        for j in range(i + 1, grid):
            ddim = sigma[j] / sigma[i] * states[i] + (alpha[j] - sigma[j] / sigma[i] * alpha[i]) * x0s[i]
            cost[i, j] = float((ddim - states[j]).pow(2).mean())
    ladders = {}
    for calls in budgets:
        best = torch.full((calls, grid), float("inf"), dtype=torch.float64)  # best[k, j]: k jumps from rung 0 to j
        parent = torch.zeros((calls, grid), dtype=torch.long)
        best[0, 0] = 0.0
        for k in range(1, calls):
            total = best[k - 1][:, None] + cost
            best[k], parent[k] = total.min(0)
        path = [grid - 1]
        for k in range(calls - 1, 0, -1):
            path.append(int(parent[k, path[-1]]))
        ladders[calls] = teacher.timesteps[list(reversed(path))].tolist()
    return ladders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))  # quote names with spaces
    parser.add_argument("--model-calls", "--calls", dest="calls", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-reference", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="MNIST .npz (default: $INFOFLOW_MNIST or ../shared/data/mnist.npz)")
    parser.add_argument("--output", default=str(RESULTS / "fid_race"))
    parser.add_argument("--merge", action="store_true", help="keep the rows of an existing OUTPUT.json that this run does not measure "
                        "(same model, samples, reference and seed) and add this run's")
    args = parser.parse_args()
    earlier = saved_for_merge(args.output, model=args.model, num_samples=args.num_samples, num_reference=args.num_reference,
                              seed=args.seed) if args.merge and Path(args.output).with_suffix(".json").is_file() else None

    state = process_state()
    saved = DiffusionPipeline.from_pretrained(args.model, local_files_only=True)
    config, information = saved.scheduler.config, information_scheduler(args.model)
    if any("searched" in name for name in args.candidates):
        SearchedLadderScheduler.ladders = searched_ladders(saved.unet, information, args.calls)
    scorer = GenerativeScorer(load_mnist("test", args.num_reference, args.data), metrics=["fid", "kid", "confident"], device=state.device)
    floor = scorer.score(process_shard(load_mnist("train", args.num_samples, args.data)))
    rows = []
    for name in args.candidates:
        ours, factory = CANDIDATES[name]
        for budget in args.calls:
            scheduler = factory(config, information)
            steps, calls = steps_within_calls(scheduler, budget)
            tick = time.perf_counter()
            images = sample_batches(JointTrigPipeline(unet=saved.unet, scheduler=scheduler), steps, args.num_samples, args.seed, args.batch_size)
            scores = scorer.score(images.clamp(0, 1))
            rows.append({"sampler": name, "ours": ours, "budget": budget, "steps": steps, "calls": calls,
                         "first_timestep": float(scheduler.timesteps[0]), **scores, "seconds": time.perf_counter() - tick,
                         "num_processes": state.num_processes})
            state.print(f"{name:36s} {budget:3d} calls ({calls} used): FID {scores['fid']:.2f}, KID {scores['kid_mean']:.2f}, "
                        f"confident {scores['confident_fraction']:.1%}")
    if not state.is_main_process:
        return
    result = {"model": str(args.model), "num_samples": args.num_samples, "num_reference": args.num_reference, "seed": args.seed,
              "floor_same_n": floor, "rows": rows, "information_sampler": dict(information.config), "calls": args.calls}
    if earlier is not None:
        result.update(rows=merged_rows(earlier["rows"], rows, key=lambda r: (r["sampler"], r["budget"])),
                      calls=sorted(set(earlier["calls"]) | set(args.calls)))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result, result["calls"]))
    print(f"wrote {out}.json/.md")


def markdown(result, budgets) -> str:
    cells = {(r["sampler"], r["budget"]): r for r in result["rows"]}
    ours = {r["sampler"]: r["ours"] for r in result["rows"]}
    names = sorted(dict.fromkeys(r["sampler"] for r in result["rows"]), key=lambda name: not ours[name])  # ours first
    lines = ["# FID race at few model calls", "",
             f"`python benchmarks/fid_race.py` on `{Path(result['model']).name}`: {result['num_samples']} samples per cell, "
             f"the same noise for every sampler, MNIST feature network against {result['num_reference']} test images. "
             f"Floor (MNIST train, same N): FID **{result['floor_same_n']['fid']:.2f}**, confident "
             f"{result['floor_same_n']['confident_fraction']:.1%}. ★ = ours. Cells: FID / KID / confident (calls used). "
             f"Ours: the model's `scheduler_information` ({len(result['information_sampler']['information_curve']['logsnr'])}-level "
             "mmse curve from `infoflow calibrate`).", "",
             "| sampler | " + " | ".join(f"{b} calls" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for name in names:
        row = []
        for b in budgets:
            r = cells.get((name, b))
            row.append("–" if r is None else f"{r['fid']:.2f} / {r['kid_mean']:.2f} / {r['confident_fraction']:.1%} ({r['calls']})")
        lines.append(f"| {'★ ' if ours[name] else ''}{name} | " + " | ".join(row) + " |")
    lines += ["", "Best per side (FID):", "", "| calls | best ours | FID | best built-in | FID |", "|---|---|---|---|---|"]
    for b in budgets:
        side = {k: [r for r in result["rows"] if r["budget"] == b and r["ours"] == k] for k in (True, False)}
        if side[True] and side[False]:
            o, d = (min(side[k], key=lambda r: r["fid"]) for k in (True, False))
            lines.append(f"| {b} | {o['sampler']} | {o['fid']:.2f} | {d['sampler']} | {d['fid']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
