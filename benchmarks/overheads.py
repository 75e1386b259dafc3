"""Benchmark: per-call cost of ``scheduler.step`` for our schedulers against diffusers' DDIM.

Every scheduler gets the same float32 CPU sample and model output (a fixed random tensor standing in for the UNet)
and runs its full timestep list (``set_timesteps(50)``, not timed); each ``step`` call is timed on its own with
``time.perf_counter``. The schedulers are interleaved pass by pass, so a change of machine load hits all of them
alike; the first ``--warmup`` passes are discarded and the median (with the 10th/90th percentiles) of the
remaining per-call times is reported, with the ratio to ``DDIMScheduler.step`` at the same shape.

Schedulers: DDIMScheduler (η = 0; the baseline), EntropyHybridScheduler (η = 0 and the default η = 1, which
draws noise), S2NGeneralizedScheduler (preset "deterministic" and "stochastic"), TrigAngleRKScheduler (euler,
rk4: one call per RK stage), and, for context, DDPMScheduler (the stochastic baseline), DPMSolverMultistepScheduler
(2M) and EulerDiscreteScheduler. Two diagnostic rows rerun EntropyHybrid (η=0) and TrigAngleRK (euler) with the
model-output NaN/Inf check patched out, which shows where our extra cost comes from.
Model-call, MI and training throughput are covered by ``mi_speed.py`` and ``train_throughput.py``.

    python benchmarks/overheads.py                         # ≈ 30 s on 2 cores
    python benchmarks/overheads.py --passes 5 --warmup 1   # quick

Writes ``benchmarks/results/overheads.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.utils import logging as diffusers_logging

from diffusers_infoflow.schedulers import EntropyHybridScheduler, S2NGeneralizedScheduler, TrigAngleRKScheduler
from diffusers_infoflow.schedulers import scheduling_entropy_hybrid as _eh
from diffusers_infoflow.schedulers import scheduling_trig_angle_rk as _tr


RESULTS = Path(__file__).resolve().parent / "results"
BASE = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear", "prediction_type": "epsilon"}


def schedulers():
    """name -> (factory, ours?)"""
    return {
        "DDIMScheduler (η=0)": (lambda: DDIMScheduler(**BASE, timestep_spacing="trailing"), False),
        "EntropyHybridScheduler (η=0)": (lambda: EntropyHybridScheduler(**BASE, eta=0.0, timestep_spacing="trailing"), True),
        "EntropyHybridScheduler (η=1, default)": (lambda: EntropyHybridScheduler(**BASE, timestep_spacing="trailing"), True),
        "S2NGeneralizedScheduler (preset deterministic)": (
            lambda: S2NGeneralizedScheduler.from_preset("deterministic", {**BASE, "timestep_spacing": "trailing"}), True),
        "S2NGeneralizedScheduler (preset stochastic)": (
            lambda: S2NGeneralizedScheduler.from_preset("stochastic", {**BASE, "timestep_spacing": "trailing"}), True),
        "TrigAngleRKScheduler (euler)": (lambda: TrigAngleRKScheduler(**BASE, solver="euler"), True),
        "TrigAngleRKScheduler (rk4, per stage)": (lambda: TrigAngleRKScheduler(**BASE, solver="rk4"), True),
        # Diagnostic rows: the same schedulers with the model-output NaN/Inf check (`check_model_output`,
        # a full `torch.isfinite(...).all()` pass per call) patched out, to attribute the overhead.
        "EntropyHybridScheduler (η=0), output check off (diagnostic)": (
            lambda: EntropyHybridScheduler(**BASE, eta=0.0, timestep_spacing="trailing"), "diagnostic"),
        "TrigAngleRKScheduler (euler), output check off (diagnostic)": (
            lambda: TrigAngleRKScheduler(**BASE, solver="euler"), "diagnostic"),
        "DDPMScheduler (ancestral, context for the η=1/stochastic rows)": (lambda: DDPMScheduler(**BASE, timestep_spacing="trailing"), False),
        "DPMSolverMultistepScheduler (2M, context)": (lambda: DPMSolverMultistepScheduler(**BASE), False),
        "EulerDiscreteScheduler (context)": (lambda: EulerDiscreteScheduler(**BASE, timestep_spacing="trailing"), False),
    }


@contextlib.contextmanager
def output_check_off(active: bool):
    """Patch `check_model_output` out of our scheduler modules (diagnostic rows only)."""
    if not active:
        yield
        return
    saved = (_eh.check_model_output, _tr.check_model_output)
    _eh.check_model_output = _tr.check_model_output = lambda *args, **kwargs: None
    try:
        yield
    finally:
        _eh.check_model_output, _tr.check_model_output = saved


def one_pass(make, steps: int, sample: torch.Tensor, model_output: torch.Tensor, generator: torch.Generator,
             check_off: bool = False):
    """Per-call seconds of every `step` of one sampling pass (set_timesteps is not timed)."""
    with output_check_off(check_off):
        return _one_pass(make, steps, sample, model_output, generator)


def _one_pass(make, steps, sample, model_output, generator):
    sched = make()
    sched.set_timesteps(steps)
    x = sample
    times = []
    for t in sched.timesteps:
        inp = sched.scale_model_input(x, t)  # not timed: needed by sigma-space schedulers
        del inp
        start = time.perf_counter()
        x = sched.step(model_output, t, x, generator=generator).prev_sample
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50, help="num_inference_steps of each pass")
    parser.add_argument("--passes", type=int, default=60, help="timed passes per scheduler and shape")
    parser.add_argument("--warmup", type=int, default=3, help="passes discarded first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable timings on a shared machine)")
    parser.add_argument("--output-dir", default=str(RESULTS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    diffusers_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    shapes = {"16x1x28x28": (16, 1, 28, 28), "4x3x64x64": (4, 3, 64, 64)}
    scheds = schedulers()
    results = {"shapes": {}, "dtype": "float32", "device": "cpu", "steps_per_pass": args.steps,
               "timed_passes": args.passes, "warmup_passes": args.warmup, "torch_threads": torch.get_num_threads(),
               "torch": torch.__version__, "machine": platform.machine(), "command": " ".join(["python"] + sys.argv)}
    for shape_name, shape in shapes.items():
        gen = torch.Generator().manual_seed(0)
        sample = torch.randn(shape, generator=gen)
        model_output = torch.randn(shape, generator=gen)
        per_call = {name: [] for name in scheds}
        for p in range(args.warmup + args.passes):
            for name, (make, kind) in scheds.items():  # interleaved: load drift hits everybody alike
                times = one_pass(make, args.steps, sample, model_output, gen, check_off=kind == "diagnostic")
                if p >= args.warmup:
                    per_call[name].extend(times)
        base = statistics.median(per_call["DDIMScheduler (η=0)"])
        rows = {}
        for name, (_, ours) in scheds.items():
            arr = np.array(per_call[name]) * 1e6
            med = float(np.median(arr))
            rows[name] = {
                "ours": bool(ours),
                "diagnostic": ours == "diagnostic",
                "calls_timed": int(arr.size),
                "median_us": med,
                "p10_us": float(np.percentile(arr, 10)),
                "p90_us": float(np.percentile(arr, 90)),
                "ratio_to_ddim": med / (base * 1e6),
                "overhead_vs_ddim_us": med - base * 1e6,
            }
        results["shapes"][shape_name] = rows
        print(f"[{shape_name}] DDIM median {base * 1e6:.1f} µs/step", flush=True)
        for name, r in rows.items():
            print(f"  {name:48s} {r['median_us']:8.1f} µs  (p10 {r['p10_us']:.1f}, p90 {r['p90_us']:.1f})  ×{r['ratio_to_ddim']:.2f}", flush=True)
    results["seconds_total"] = time.perf_counter() - t_start

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overheads.json").write_text(json.dumps(results, indent=1))
    lines = ["# Scheduler `.step` overhead", "",
             f"Generated by `{results['command']}`: median per-call time of `scheduler.step` (µs, float32, CPU, "
             f"{results['torch_threads']} torch thread(s), {args.passes} timed passes of {args.steps} steps after "
             f"{args.warmup} warm-up passes, schedulers interleaved), ratio to `DDIMScheduler.step` at the same shape. "
             "The model output is a fixed random tensor (no model in the loop).", ""]
    names = list(scheds)
    lines += ["| scheduler | " + " | ".join(f"{s} median µs (p10–p90) | × DDIM" for s in shapes) + " |",
              "|---|" + "---|---|" * len(shapes)]
    for name in names:
        cells = []
        for s in shapes:
            r = results["shapes"][s][name]
            cells.append(f"{r['median_us']:.1f} ({r['p10_us']:.0f}–{r['p90_us']:.0f}) | {r['ratio_to_ddim']:.2f}")
        lines.append(f"| {'★ ' if scheds[name][1] else ''}{name} | " + " | ".join(cells) + " |")
    lines += ["", "★ = this package. \"output check off\" rows patch `check_model_output` (a full "
              "`torch.isfinite(model_output).all()` per call) out of our scheduler modules: the difference to the same scheduler's row "
              "with the check is the cost of that check.", "", "Context from the existing benchmarks (not re-run here):", ""]
    for fname in ("mi_speed.json", "train_throughput.json"):
        path = out / fname
        if path.exists():
            data = json.loads(path.read_text())
            keep = {k: v for k, v in data.items() if not isinstance(v, (list, dict))}
            lines.append(f"- `{fname}`: " + ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in keep.items()))
    lines.append("")
    (out / "overheads.md").write_text("\n".join(lines))
    print(f"wrote {out}/overheads.{{json,md}} in {results['seconds_total']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
