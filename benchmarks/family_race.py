"""Per checkpoint family: our best sampler against diffusers' best native solver of that family, on the exact
Gaussian denoiser answering as that family's model (VP tables incl. v-prediction and zero-SNR, EDM, flow matching).

Every sampler starts from the same pure-noise draw, ``randn · init_noise_sigma`` at the model's noisiest level, as
a pipeline does; the reference is the exact probability flow from that point to clean data; every model call is
counted; each side runs a grid of its own settings and keeps its best per budget. FLUX.1-dev is sampled the way
FluxPipeline calls a scheduler (``sigmas = linspace(1, 1/N, N)`` and ``mu``); other samplers may place their own
rungs. Writes ``benchmarks/results/family_race.{json,md}``.

    python benchmarks/family_race.py            # about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import diffusers
import torch

from diffusers_infoflow import EntropyHybridScheduler, GaussianDenoiser, S2NGeneralizedScheduler, TrigAngleRKScheduler
from diffusers_infoflow.sampling import denoise
from diffusers_infoflow.schedulers.scheduling_s2n_generalized import spacing_kwargs


ROOT = Path(__file__).resolve().parent
CONFIG_DIR = ROOT.parent / "tests" / "data" / "scheduler_configs"
FAMILIES = {  # config file -> family label
    "ddpm-cifar10-32": "VP ε (linear β)",
    "sd15": "VP ε (SD 1.5, scaled-linear, leading)",
    "sd21-v": "VP v (SD 2.1)",
    "zero-snr-v-trailing": "VP v, zero terminal SNR",
    "playground-v2.5": "EDM (Playground v2.5)",
    "sd3-medium": "flow matching (SD3, shift 3)",
    "flux1-dev": "flow matching (FLUX.1-dev, μ = 1.15)",
    "flux1-schnell": "flow matching (FLUX.1-schnell)",
}
MU = 1.15  # FluxPipeline's mu at its largest image sequence length (max_shift)
SHAPE = (4, 16, 16)


def load_config(name: str) -> dict:
    return json.loads((CONFIG_DIR / f"{name}.json").read_text())


def family_of(config: dict) -> str:
    return S2NGeneralizedScheduler.from_config(config).config.noise_family


def gaussian(interface) -> GaussianDenoiser:
    """Two-scale image-like statistics: per-pixel means in [-0.3, 0.3], variances from 0.02 to 0.32."""
    g = torch.Generator().manual_seed(0)
    mean = 0.6 * torch.rand(SHAPE, generator=g, dtype=torch.float64) - 0.3
    variance = 0.02 + 0.3 * torch.rand(SHAPE, generator=g, dtype=torch.float64)
    return GaussianDenoiser(mean, variance, interface)


def run(scheduler, model, noise, set_kwargs) -> Tuple[torch.Tensor, int]:
    scheduler.set_timesteps(**set_kwargs)
    # diffusers' flow-matching schedulers have no init_noise_sigma: SD3's and FLUX's pipelines start from randn itself
    flow_match = (diffusers.FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchHeunDiscreteScheduler)
    scale = 1.0 if isinstance(scheduler, flow_match) else float(scheduler.init_noise_sigma)
    return denoise(scheduler, model, noise * scale), len(scheduler.timesteps)


def ladder_kwargs(name: str, n: int, own_ladder: bool = False) -> dict:
    """What a pipeline passes: FLUX.1-dev's sigmas and mu, otherwise a step count."""
    if name == "flux1-dev" and not own_ladder:
        return {"sigmas": torch.linspace(1.0, 1.0 / n, n).tolist(), "mu": MU}
    return {"num_inference_steps": n}


# ------------------------------------------------------------------------------------------------ samplers


def our_samplers(name: str, config: dict, calls: int) -> List[Tuple[str, Callable[[], object], dict]]:
    """(label, build, set_timesteps kwargs) for every setting of ours that spends exactly `calls` model calls."""
    out = []
    for order, corrector, x0_form, final, interpolation in itertools.product((1, 2, 3, 4), (True, False), (True, False), ("x0", "extrapolate"),
                                                                          ("logsnr", "linear")):
        if interpolation == "linear" and (order == 1 or not x0_form):  # order 1 has no polynomial; ε form's is LMS
            continue
        common = {"solver": "multistep", "solver_order": order, "use_corrector": corrector, "predict_x0": x0_form,
                  "final_step": final, "interpolation": interpolation, "clip_sample": False}
        label = (f"TrigAngleRK multistep o{order}{' +corr' if corrector else ''}{'' if x0_form else ' ε-form'}"
                 f"{' in u' if interpolation == 'linear' else ''}")
        for spacing in ("logsnr", "angle", "karras", "linspace"):
            out.append((f"{label} {spacing} final {final}", lambda kw={**common, "step_spacing": spacing}: TrigAngleRKScheduler.from_config(config, **kw),
                        ladder_kwargs(name, calls, own_ladder=True)))
        if name == "flux1-dev":
            out.append((f"{label} final {final} pipeline sigmas+mu", lambda kw=common: TrigAngleRKScheduler.from_config(config, **kw),
                        ladder_kwargs(name, calls)))
    for solver in ("rk2", "rk4"):
        probe = TrigAngleRKScheduler.from_config(config, solver=solver)
        n = next((n for n in range(1, calls + 1) if probe.num_model_calls(n) == calls), None)
        if n is not None:
            for spacing in ("logsnr", "angle", "karras"):
                kw = {"solver": solver, "step_spacing": spacing, "clip_sample": False}
                out.append((f"TrigAngleRK {solver} {spacing}", lambda kw=kw: TrigAngleRKScheduler.from_config(config, **kw), ladder_kwargs(name, n, own_ladder=True)))
    spacings = ["logsnr", "karras"] + (["trailing", "linspace"] if family_of(config) == "discrete" else ["linspace"])
    for gamma, spacing in itertools.product((0.0, 0.026, 0.1), spacings):
        kw = {"gamma": gamma, **spacing_kwargs(spacing), "clip_sample": False}
        out.append((f"S2N γ={gamma} {spacing}", lambda kw=kw: S2NGeneralizedScheduler.from_config(config, **kw), ladder_kwargs(name, calls, own_ladder=True)))
    if name == "flux1-dev":
        out.append(("S2N γ=0 pipeline sigmas+mu", lambda: S2NGeneralizedScheduler.from_config(config, clip_sample=False), ladder_kwargs(name, calls)))
    out.append(("EntropyHybrid η=0 native ladder", lambda: EntropyHybridScheduler.from_config(config, eta=0.0, clip_sample=False), ladder_kwargs(name, calls)))
    return out


def native_samplers(name: str, config: dict, calls: int) -> List[Tuple[str, Callable[[], object], dict]]:
    family = family_of(config)
    out = []
    base = {k: v for k, v in config.items() if not k.startswith("_")}
    if family == "discrete":
        vp = {**base, "clip_sample": False}
        for spacing in ("leading", "trailing", "linspace"):
            out.append((f"DDIM {spacing}", lambda s=spacing: diffusers.DDIMScheduler.from_config(vp, timestep_spacing=s, set_alpha_to_one=True), {"num_inference_steps": calls}))
        ladders = [{"timestep_spacing": s} for s in ("trailing", "linspace")] + [{"use_karras_sigmas": True}, {"use_lu_lambdas": True}]
        for order, ladder in itertools.product((1, 2, 3), ladders):
            kw = dict(solver_order=order, algorithm_type="dpmsolver++", final_sigmas_type="zero", lower_order_final=True, **ladder)
            out.append((f"DPM-Solver++ {order}M {ladder}", lambda kw=kw: diffusers.DPMSolverMultistepScheduler.from_config(vp, **kw), {"num_inference_steps": calls}))
        for order, solver_type, ladder in itertools.product((1, 2, 3, 4), ("bh1", "bh2"), ladders[:3]):
            kw = dict(solver_order=order, solver_type=solver_type, final_sigmas_type="zero", **ladder)
            out.append((f"UniPC {solver_type} o{order} {ladder}", lambda kw=kw: diffusers.UniPCMultistepScheduler.from_config(vp, **kw), {"num_inference_steps": calls}))
        for order in (1, 2, 3):
            out.append((f"DEIS o{order} trailing", lambda o=order: diffusers.DEISMultistepScheduler.from_config(vp, solver_order=o, timestep_spacing="trailing"), {"num_inference_steps": calls}))
        for ladder in ({"timestep_spacing": "trailing"}, {"use_karras_sigmas": True}):
            out.append((f"Euler {ladder}", lambda kw=ladder: diffusers.EulerDiscreteScheduler.from_config(vp, final_sigmas_type="zero", **kw), {"num_inference_steps": calls}))
        if calls % 2 == 1:
            out.append(("Heun trailing", lambda: diffusers.HeunDiscreteScheduler.from_config(vp, timestep_spacing="trailing"), {"num_inference_steps": (calls + 1) // 2}))
    elif family == "edm":
        for schedule in ("karras", "exponential"):
            out.append((f"EDMEuler {schedule}", lambda s=schedule: diffusers.EDMEulerScheduler.from_config(base, sigma_schedule=s), {"num_inference_steps": calls}))
            for order, solver_type in itertools.product((1, 2, 3), ("midpoint", "heun")):
                kw = {"sigma_schedule": schedule, "solver_order": order, "solver_type": solver_type, "final_sigmas_type": "zero"}
                out.append((f"EDM DPM-Solver++ {order}M {solver_type} {schedule}", lambda kw=kw: diffusers.EDMDPMSolverMultistepScheduler.from_config(base, **kw), {"num_inference_steps": calls}))
    else:
        out.append(("FlowMatchEuler", lambda: diffusers.FlowMatchEulerDiscreteScheduler.from_config(base), ladder_kwargs(name, calls)))
        if calls % 2 == 1:
            heun_n = (calls + 1) // 2
            out.append(("FlowMatchHeun", lambda: diffusers.FlowMatchHeunDiscreteScheduler.from_config(base), {"num_inference_steps": heun_n}))
        dynamic = bool(base.get("use_dynamic_shifting"))
        flow = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": math.exp(MU) if dynamic else base.get("shift", 1.0)}
        for order in (1, 2, 3):  # DPM-Solver++ stops at order 3, UniPC does not
            kw = dict(flow, solver_order=order, algorithm_type="dpmsolver++", final_sigmas_type="zero")
            out.append((f"DPM-Solver++ {order}M flow", lambda kw=kw: diffusers.DPMSolverMultistepScheduler(**kw), {"num_inference_steps": calls}))
        for order, solver_type in itertools.product((1, 2, 3, 4), ("bh1", "bh2")):
            kw = dict(flow, solver_order=order, solver_type=solver_type, final_sigmas_type="zero")
            out.append((f"UniPC {solver_type} o{order} flow", lambda kw=kw: diffusers.UniPCMultistepScheduler(**kw), {"num_inference_steps": calls}))
    return out


# ------------------------------------------------------------------------------------------------ race


def race(budgets: List[int], num_samples: int) -> Dict[str, dict]:
    results = {}
    for name, label in FAMILIES.items():
        config = load_config(name)
        interface = S2NGeneralizedScheduler.from_config(config).interface
        model = gaussian(interface)
        noise = torch.randn((num_samples, *SHAPE), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        start = noise * interface.init_noise_sigma
        reference = model.ode_solution_logsnr(start, interface.logsnr_range[0], math.inf)
        rows = {}
        for calls in budgets:
            for side, samplers in (("ours", our_samplers(name, config, calls)), ("native", native_samplers(name, config, calls))):
                best = {"any": (math.inf, None), "pipeline": (math.inf, None)}  # pipeline: given FluxPipeline's sigmas + mu
                for sampler_label, build, kwargs in samplers:
                    try:
                        out, used = run(build(), model, noise, kwargs)
                    except (ValueError, RuntimeError, IndexError) as err:  # a setting a sampler refuses at this budget
                        print(f"  skip {sampler_label}: {err}")
                        continue
                    error = float(((out - reference) ** 2).mean().sqrt())
                    if used != calls or not math.isfinite(error):
                        continue
                    for key in ("any", "pipeline") if "sigmas" in kwargs else ("any",):
                        best[key] = min(best[key], (error, sampler_label))
                rows.setdefault(str(calls), {})[side] = {"rmse": best["any"][0], "sampler": best["any"][1]}
                if best["pipeline"][1] is not None:
                    rows[str(calls)][side + "_pipeline_ladder"] = {"rmse": best["pipeline"][0], "sampler": best["pipeline"][1]}
            r = rows[str(calls)]
            print(f"{label:45s} {calls:3d} calls  ours {r['ours']['rmse']:.3e} ({r['ours']['sampler']})  native {r['native']['rmse']:.3e} ({r['native']['sampler']})")
        results[name] = {"family": label, "budgets": rows}
    return results


def write(results: Dict[str, dict], budgets: List[int], seconds: float) -> None:
    out_dir = ROOT / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "family_race.json").write_text(json.dumps({"budgets": budgets, "seconds": seconds, "results": results}, indent=1))
    lines = ["# Per-family race: our best against diffusers' best native solver", "",
             "RMSE to the exact probability-flow endpoint, Gaussian data, same pure-noise start, every model call counted "
             f"(`python benchmarks/family_race.py`, {seconds:.0f} s).", "",
             "| family | calls | ours (best setting) | native (best setting) | ours / native |", "|---|---|---|---|---|"]
    for result in results.values():
        for calls in budgets:
            r = result["budgets"][str(calls)]
            lines.append(f"| {result['family']} | {calls} | {r['ours']['rmse']:.2e} ({r['ours']['sampler']}) | "
                         f"{r['native']['rmse']:.2e} ({r['native']['sampler']}) | {r['ours']['rmse'] / r['native']['rmse']:.2f} |")
            if "ours_pipeline_ladder" in r and "native_pipeline_ladder" in r:
                o, n = r["ours_pipeline_ladder"], r["native_pipeline_ladder"]
                lines.append(f"| {result['family']}, both on the pipeline's sigmas + mu | {calls} | {o['rmse']:.2e} ({o['sampler']}) | "
                             f"{n['rmse']:.2e} ({n['sampler']}) | {o['rmse'] / n['rmse']:.2f} |")
    (out_dir / "family_race.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-calls", "--calls", dest="calls", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--num-samples", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    results = race(args.calls, args.num_samples)
    write(results, args.calls, time.time() - start)


if __name__ == "__main__":
    main()
