"""Benchmark: seed 000's restoration Tables 2–5 and generation Tables 6–7 on MNIST.

Models: the per-schedule MNIST DDPMs of ``bash benchmarks/train_seed_models.sh`` (``runs/seed-models/<schedule>-<T>``:
the shipped ``mnist-ddpm`` fine-tuned for the same number of steps on each schedule and length; the linear T = 1000
cell uses ``linear-eps-1000``, the same extra steps on its own schedule, so every model has the same compute).

**Restoration (Tables 2–5).** The first ``--num-images`` MNIST test images ``x0`` are noised to paper step ``t``
of a source schedule A with one fixed ``ε`` (``x_t = α_A(t) x0 + σ_A(t) ε``) and restored by ancestral DDPM
sampling (``RestorationPipeline``, rounded matched step as in the paper) with

* ``native``: A's own model, from step ``t`` (the paper's ``FL50+RL50`` rows);
* ``matched``: model B, entering at B's entropy-matched step ``t'`` (``FL50+RC55``), the paper's claim being
  that this restores as well as the native model;
* controls, not in the paper: ``same step`` (Table 2), model B entered at step ``t`` itself, no matching, to show
  what the matching is worth; ``paper step`` (Table 3), model B entered at the paper's step, because the paper's
  Table 3 steps are not entropy-matched (``infoflow analyze``: sigmoid 18/49/110 match cosine 9/19/58, not
  50/100/150).

Every row of a source step restores the same noisy images with the same ancestral noise. Metrics (mean over the
images, ``[0, 1]`` pixels, ``restoration_metrics``): MSE, Euclidean distance, SSIM, cosine similarity and
histogram MI against ``x0``; the paper's MSE and SSIM are shown where it reports the row.

**Generation (Tables 6–7).** ``--num-samples`` images by full-length ancestral DDPM sampling (diffusers'
``DDPMPipeline``, T model calls) from each single-schedule model, and the two §3.2.3 hybrids at T = 300
(``EntropyHybridPipeline.from_models``: quadratic 300→178 then cosine 130→0, and cosine 300→130 then quadratic
178→0, each model told its native timesteps). Scores: FID, KID and IS of the shipped MNIST classifier (the
paper's Inception IS ≈ 1.0 on MNIST says nothing) against the 10,000 MNIST test images, with the FID floor of
real train images at the same N.

    bash benchmarks/train_seed_models.sh
    python benchmarks/seed000_tables.py [--tables 2 3 4 5 6 7] [--num-images 128] [--num-samples 500]

Writes ``benchmarks/results/seed000_tables.{json,md}`` with the tables asked for (the JSON after every row, so a
long run can be read early); ``--resume`` keeps the rows of the earlier file measured with the same settings on the
same model weights. Under ``accelerate launch`` every row's images (restoration) or samples (generation) are split
between the processes, with the same numbers as one process:

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 benchmarks/seed000_tables.py --tables 6 7 --resume
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import torch
from _results import write_atomic
from accelerate.utils import gather_object
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from diffusers_infoflow.entropy import as_discrete_schedule, match_timestep
from diffusers_infoflow.metrics import GenerativeScorer, load_mnist, process_shard, restoration_metrics
from diffusers_infoflow.pipelines import EntropyHybridPipeline, RestorationPipeline
from diffusers_infoflow.pipelines.entropy_hybrid import as_entropy_hybrid_scheduler
from diffusers_infoflow.sampling import denoise, process_state, sample_batches


ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
METRICS = ("mse", "euclidean_distance", "ssim", "cosine_similarity", "mutual_information")
Model = Tuple[str, int]  # (schedule, T)
ANCESTRAL_SEED_OFFSET = 1_000_000  # restoration's ancestral noise seeds, above every forward-noise seed (seed + step)

# Each restoration table: the source schedule, its steps, and the models that restore them. "paper" holds the
# matched steps the paper used and its reported (MSE, SSIM) per (restorer label, source step), for comparison.
RESTORATION_TABLES = {
    "2": {
        "source": ("linear", 300), "steps": (50, 90, 150), "restorers": [("cosine", 300)], "control": "same step",
        "paper_matched": {"cosine-300": (55, 96, 155)},
        "paper": {("linear-300", 50): (0.0067, 0.87162), ("linear-300", 90): (0.0183, 0.79427), ("linear-300", 150): (0.0750, 0.49374),
                  ("cosine-300", 50): (0.0073, 0.90498), ("cosine-300", 90): (0.0184, 0.82312), ("cosine-300", 150): (0.0710, 0.53299)},
    },
    "3": {
        "source": ("sigmoid", 300), "steps": (18, 49, 110), "restorers": [("cosine", 300)], "control": "paper step",
        "paper_matched": {"cosine-300": (50, 100, 150)},
        "paper": {("sigmoid-300", 18): (0.0019, 0.9149), ("sigmoid-300", 49): (0.0063, 0.9044), ("sigmoid-300", 110): (0.0250, 0.7781),
                  ("cosine-300", 18): (0.0018, 0.8957), ("cosine-300", 49): (0.0063, 0.9062), ("cosine-300", 110): (0.0242, 0.7849)},
    },
    "4": {
        "source": ("sigmoid", 300), "steps": (40, 75, 150), "restorers": [("sigmoid", 500), ("sigmoid", 1000)], "control": None,
        "paper_matched": {"sigmoid-500": (48, 100, 220), "sigmoid-1000": (56, 137, 372)},
        "paper": {("sigmoid-300", 40): (0.0014, 0.9187), ("sigmoid-300", 75): (0.0035, 0.9193), ("sigmoid-300", 150): (0.0254, 0.7725),
                  ("sigmoid-500", 40): (0.0016, 0.7955), ("sigmoid-500", 75): (0.0037, 0.7870), ("sigmoid-500", 150): (0.0295, 0.6803),
                  ("sigmoid-1000", 40): (0.0014, 0.9267), ("sigmoid-1000", 75): (0.0034, 0.9229), ("sigmoid-1000", 150): (0.0254, 0.7657)},
    },
    "5": {
        "source": ("cosine", 1000), "steps": (167, 335, 435),
        "restorers": [("cosine", 300), ("cosine", 500), ("quadratic", 300)], "control": None,
        "paper_matched": {"cosine-300": (50, 100, 130), "cosine-500": (85, 170, 218), "quadratic-300": (76, 145, 178)},
        "paper": {("cosine-1000", 167): (0.0046, 0.9219), ("cosine-1000", 335): (0.0171, 0.8189), ("cosine-1000", 435): (0.0603, 0.5752),
                  ("cosine-300", 167): (0.0049, 0.7049), ("cosine-300", 335): (0.0169, 0.6018), ("cosine-300", 435): (0.0389, 0.4782),
                  ("cosine-500", 167): (0.0047, 0.7035), ("cosine-500", 335): (0.0158, 0.6290), ("cosine-500", 435): (0.0438, 0.4983),
                  ("quadratic-300", 167): (0.0049, 0.8895), ("quadratic-300", 335): (0.0190, 0.7982), ("quadratic-300", 435): (0.0564, 0.5803)},
    },
}
# Tables 6–7 (paper FIDs, Inception on MNIST): single schedules at T = 300/500/1000 and the two T = 300 hybrids.
PAPER_FID = {
    ("linear", 300): 126.730, ("linear", 500): 550.910, ("linear", 1000): 210.436,
    ("cosine", 300): 313.253, ("cosine", 500): 550.054, ("cosine", 1000): 156.361,
    ("quadratic", 300): 138.863, ("quadratic", 500): 134.126, ("quadratic", 1000): 155.218,
    ("sigmoid", 300): 140.521, ("sigmoid", 500): 249.828, ("sigmoid", 1000): 118.942,
    "quadratic→cosine": 1002.769, "cosine→quadratic": 118.455,
}
HYBRIDS = {"quadratic→cosine": (("quadratic", 300), ("cosine", 300), 178), "cosine→quadratic": (("cosine", 300), ("quadratic", 300), 130)}


def label(model: Model) -> str:
    return f"{model[0]}-{model[1]}"


def folder_name(model: Model) -> str:
    """The model's folder under ``--models-dir`` (linear T = 1000 is ``linear-eps-1000``, seed 004's control)."""
    return "linear-eps-1000" if model == ("linear", 1000) else label(model)


def model_folder(models_dir: Path, model: Model) -> Path:
    name = folder_name(model)
    folder = models_dir / name
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"{folder} is not a trained pipeline folder; run `bash benchmarks/train_seed_models.sh {name}` first.")
    return folder


class Models:
    """Loads each model folder once: (UNet, its DDPMScheduler); ``schedules[model]`` is its training table."""

    def __init__(self, models_dir: Path):
        self.models_dir, self.cache, self.schedules, self.fingerprints = models_dir, {}, {}, {}

    def __call__(self, model: Model) -> Tuple[UNet2DModel, DDPMScheduler]:
        if model not in self.cache:
            folder = model_folder(self.models_dir, model)
            unet = UNet2DModel.from_pretrained(folder / "unet").eval()
            scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
            schedule = as_discrete_schedule(*model)
            expected = schedule.alphas_cumprod
            if scheduler.alphas_cumprod.shape != expected.shape or not torch.allclose(scheduler.alphas_cumprod.double(), expected, rtol=1e-5):
                raise ValueError(f"{folder} was not trained on {label(model)} (its scheduler's ᾱ table differs).")
            self.schedules[model] = schedule
            self.cache[model] = (unet, scheduler)
        return self.cache[model]

    def weights(self, model: Model) -> str:
        """A fingerprint of the model's weights (SHA-256 of its UNet's safetensors files), so that a kept row is
        known to come from the same model."""
        if model not in self.fingerprints:
            files = sorted((model_folder(self.models_dir, model) / "unet").glob("*.safetensors"))
            if not files:
                raise ValueError(f"{model_folder(self.models_dir, model)}/unet has no .safetensors weights to fingerprint.")
            digest = hashlib.sha256()
            for file in files:
                digest.update(file.read_bytes())
            self.fingerprints[model] = digest.hexdigest()[:16]
        return self.fingerprints[model]


def restore(models: Models, model: Model, x0: torch.Tensor, noise: torch.Tensor, source, step: int, seed: int,
            entry: Optional[int] = None, chunk: int = 32):
    """Restore ``x0`` noised to ``step`` of ``source`` (a DDPMScheduler) with ``model``, entering at the
    entropy-matched step, or at ``entry`` of the model's own schedule when given: (mean metrics, entry step).

    The images go in chunks of ``chunk``, the chunk from image ``i`` on with the ancestral noise of
    ``seed + ANCESTRAL_SEED_OFFSET + i`` (apart from the forward noise, ``seed + step``); under
    ``accelerate launch`` the chunks are split between the processes and the per-image metrics gathered, so the
    means do not depend on the number of processes."""
    unet, ddpm = models(model)
    state = process_state()
    pipe = RestorationPipeline(unet=unet, scheduler=as_entropy_hybrid_scheduler(ddpm, fractional_timesteps=False)).to(state.device)
    pipe.set_progress_bar_config(disable=True)
    scheduler = pipe.scheduler
    per_sample, first_step = {name: [] for name in METRICS}, None
    with state.split_between_processes(list(range(0, len(x0), chunk))) as starts:
        for start in starts:
            clean, eps = x0[start:start + chunk].to(state.device), noise[start:start + chunk].to(state.device)
            generator = torch.Generator().manual_seed(seed + ANCESTRAL_SEED_OFFSET + start)
            if entry is None:
                out = pipe(clean, source_step=step, source_schedule=source, noise=eps, generator=generator, output_type="pt")
                metrics, first_step = out.metrics["restored"], float(out.start_timestep)
            else:  # control: the same noisy images, entered at the model's own step `entry` (no entropy matching)
                noisy = pipe.source_schedule(source).marginal(clean, eps, step - 1)
                scheduler.set_restoration_timesteps(entry, source_schedule=scheduler.train_schedule)
                image = denoise(scheduler, unet, noisy, generator)
                metrics = restoration_metrics(clean / 2 + 0.5, (image / 2 + 0.5).clamp(0, 1))
                first_step = float(scheduler.timesteps[0])
            for name in METRICS:
                per_sample[name] += metrics["per_sample"][name].tolist()
    shares = gather_object([(per_sample, first_step)])  # rank order: the images in their order
    means = {name: sum(v for share, _ in shares for v in share[name]) / len(x0) for name in METRICS}
    return means, next(first for _, first in shares if first is not None) + 1


class Results:
    """The results file, written by the main process after every row: the restoration tables this run measures
    and those of the earlier file it does not, and the generation rows of the earlier file with this run's added or
    replaced. Each row carries the settings and the model weights it was measured with. A file of an older version
    of this script, whose rows do not say what they were measured with, is replaced.

    Args:
        path: the ``.json`` file.
        settings: per part (``"restoration"``, ``"generation"``), what a row's numbers depend on.
        resume: keep a row of the earlier file with the same key, settings and weights instead of measuring it
            again, so that a run of hours can be stopped and started again.
    """

    def __init__(self, path: Path, settings: Dict[str, dict], resume: bool):
        self.path, self.settings = path, settings
        state = process_state()
        earlier = json.loads(path.read_text()) if path.is_file() else {}
        earlier_rows = [r for table in earlier.get("restoration", {}).values() for r in table] + (earlier.get("generation") or [])
        if not all("settings" in r for r in earlier_rows):
            state.print(f"{path} is from an older version of this script (its rows do not record their settings); it is replaced.")
            earlier, earlier_rows = {}, []
        state.wait_for_everyone()  # every process has read the file before the main one writes it
        self.data = {"restoration": earlier.get("restoration", {}), "generation": earlier.get("generation") or [],
                     "generation_floor": earlier.get("generation_floor")}
        self.earlier = {row_key(r): r for r in earlier_rows} if resume else {}

    def row_for(self, key: tuple, weights: Dict[str, str], measure) -> Tuple[dict, bool]:
        """(the row of ``key``, whether it was kept from the earlier file); ``measure()`` makes a new one."""
        settings = self.settings[key[0]]
        row = self.earlier.get(key)
        if row is not None and row.get("weights") == weights and row.get("settings") == settings:
            return row, True
        return {**measure(), "settings": settings, "weights": weights}, False

    def add_generation_row(self, row: dict) -> None:
        rows = self.data["generation"]
        same = [i for i, r in enumerate(rows) if row_key(r) == row_key(row)]
        if same:
            rows[same[0]] = row
        else:
            rows.append(row)

    def write(self) -> None:
        if process_state().is_main_process:
            write_atomic(self.path, json.dumps(self.data, indent=1))


def row_key(row: dict) -> tuple:
    """What a row measures: its table, source step, model and mode, or its generation row name."""
    if "table" in row:
        return ("restoration", row["table"], row["source_step"], row["model"], row["mode"])
    return ("generation", row["name"])


def report(results: Results, row: dict, kept: bool, message: str) -> None:
    """Writes the results file and prints the row's line (on the main process)."""
    results.write()
    process_state().print(message + (" (kept from the earlier run)" if kept else f" ({row['seconds']:.0f} s)"), flush=True)


def restoration_table(key: str, models: Models, x0: torch.Tensor, seed: int, chunk: int, results: Results) -> None:
    spec = RESTORATION_TABLES[key]
    source_model = spec["source"]
    _, source = models(source_model)
    rows = results.data["restoration"][key] = []
    for i, step in enumerate(spec["steps"]):
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed + step))
        runs = [(source_model, "native", None)]
        for restorer in spec["restorers"]:
            paper_step = spec["paper_matched"][label(restorer)][i]
            runs.append((restorer, "matched", paper_step))
            if spec["control"]:
                runs.append((restorer, spec["control"], paper_step))
        for restorer, mode, paper_step in runs:
            def measure():  # called at once, in this iteration
                start = time.perf_counter()
                if mode == "matched":
                    models(restorer)
                    matched = match_timestep(step, src=models.schedules[source_model], dst=models.schedules[restorer])
                forced = {"same step": step, "paper step": paper_step}.get(mode)
                values, entry = restore(models, restorer, x0, noise, source, step, seed, entry=forced, chunk=chunk)
                if mode == "matched" and round(entry) != matched:
                    raise RuntimeError(f"the pipeline entered {label(restorer)} at {entry}, match_timestep says {matched}.")
                paper = spec["paper"].get((label(restorer), step)) if mode in ("native", "matched") else None
                return {"table": key, "source": label(source_model), "source_step": step, "model": label(restorer), "mode": mode,
                        "entry_step": round(entry), "paper_entry_step": paper_step if mode == "matched" else None, **values,
                        "paper_mse": paper[0] if paper else None, "paper_ssim": paper[1] if paper else None,
                        "seconds": time.perf_counter() - start}

            weights = {label(m): models.weights(m) for m in (source_model, restorer)}
            row, kept = results.row_for(("restoration", key, step, label(restorer), mode), weights, measure)
            rows.append(row)
            report(results, row, kept, f"T{key} {label(source_model)}@{step} -> {label(restorer)}@{row['entry_step']} ({mode}): "
                   f"MSE {row['mse']:.4f} SSIM {row['ssim']:.4f}")


def generation_table(models: Models, lengths: Sequence[int], schedules: Sequence[str], num_samples: int, batch_size: int,
                     scorer: GenerativeScorer, seed: int, results: Results) -> None:
    """Each row's samples are split between the processes under ``accelerate launch`` (``sample_batches``) and
    scored together (``GenerativeScorer`` gathers the features)."""

    def run(name: str, used: Sequence[Model], pipeline, num_inference_steps: Optional[int], calls: int, **extra):
        def measure():
            start = time.perf_counter()
            scores = scorer.score(sample_batches(pipeline, num_inference_steps, num_samples, seed, batch_size))
            paper = PAPER_FID.get(used[0] if len(used) == 1 else name)  # None for a length the paper did not run
            return {"name": name, "calls": calls, **extra, **scores, "paper_fid": paper, "seconds": time.perf_counter() - start}

        row, kept = results.row_for(("generation", name), {label(m): models.weights(m) for m in used}, measure)
        results.add_generation_row(row)
        report(results, row, kept, f"T6/7 {name}: FID {row['fid']:.2f} IS {row['is_mean']:.3f}")

    for T in lengths:
        for schedule in schedules:
            unet, ddpm = models((schedule, T))
            run(label((schedule, T)), [(schedule, T)], DDPMPipeline(unet=unet, scheduler=ddpm), T, T, T=T)
    for name, (a, b, switch) in HYBRIDS.items():
        if not all(m[1] in lengths and m[0] in schedules for m in (a, b)):
            continue
        (unet_a, ddpm_a), (unet_b, ddpm_b) = models(a), models(b)
        pipe = EntropyHybridPipeline.from_models(unet_a, ddpm_a, unet_b, ddpm_b, switch_step=switch, fractional_timesteps=False)
        pipe.scheduler.set_timesteps(None)
        run(name, [a, b], pipe, None, len(pipe.scheduler.timesteps), T=a[1], switch=f"{switch}→{pipe.scheduler.config.segments[1]['start']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default="runs/seed-models")
    parser.add_argument("--tables", nargs="+", default=["2", "3", "4", "5", "6"], choices=["2", "3", "4", "5", "6", "7"],
                        help="6 and 7 are one run (single schedules and hybrids)")
    parser.add_argument("--num-images", type=int, default=128, help="restoration: MNIST test images per row")
    parser.add_argument("--num-samples", type=int, default=500, help="generation: samples per row")
    parser.add_argument("--lengths", type=int, nargs="+", default=[300], help="generation: the T columns")
    parser.add_argument("--schedules", nargs="+", default=["linear", "cosine", "quadratic", "sigmoid"], help="generation rows")
    parser.add_argument("--batch-size", type=int, default=250, help="generation: samples per model batch")
    parser.add_argument("--restoration-batch", type=int, default=32,
                        help="restoration: images per model batch (the unit split between processes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="MNIST .npz (default: $INFOFLOW_MNIST or ../shared/data/mnist.npz)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows of an earlier run of the same settings whose models are unchanged (same weights)")
    parser.add_argument("--output", default=str(RESULTS / "seed000_tables"))
    args = parser.parse_args()
    for flag in ("num_images", "num_samples", "batch_size", "restoration_batch"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}.")
    state = process_state()  # under accelerate launch the images and samples are split between the processes
    generation = bool({"6", "7"} & set(args.tables))
    models = Models(Path(args.models_dir))
    needed = {m for t in args.tables if t in RESTORATION_TABLES for m in [RESTORATION_TABLES[t]["source"], *RESTORATION_TABLES[t]["restorers"]]}
    if generation:
        needed |= {(schedule, T) for T in args.lengths for schedule in args.schedules}
    missing = [name for name in map(folder_name, sorted(needed)) if not (models.models_dir / name / "model_index.json").is_file()]
    if missing:  # every model before any work
        parser.error(f"no trained model {', '.join(missing)} in {models.models_dir}; "
                     f"run `bash benchmarks/train_seed_models.sh {' '.join(missing)}` first.")
    if generation:  # before the restoration tables, so that a bad --num-samples fails at once
        scorer = GenerativeScorer(load_mnist("test", None, args.data), metrics=["fid", "kid", "is", "confident"], device=state.device)
        if args.num_samples < scorer.is_splits:
            parser.error(f"--num-samples must be at least {scorer.is_splits} (IS scores {scorer.is_splits} splits), got {args.num_samples}.")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # what a row's numbers depend on; not the number of processes, which changes none of them
    settings = {"restoration": {"num_images": args.num_images, "batch_size": args.restoration_batch, "seed": args.seed},
                "generation": {"num_samples": args.num_samples, "batch_size": args.batch_size, "seed": args.seed}}
    results = Results(out.with_suffix(".json"), settings, args.resume)
    results.data.update(num_processes=state.num_processes, torch_threads=torch.get_num_threads())
    start = time.perf_counter()
    x0 = load_mnist("test", args.num_images, args.data) * 2 - 1
    for key in [t for t in args.tables if t in RESTORATION_TABLES]:
        restoration_table(key, models, x0, args.seed, args.restoration_batch, results)
    if generation:
        results.data["generation_floor"] = scorer.score(process_shard(load_mnist("train", args.num_samples, args.data)))
        generation_table(models, args.lengths, args.schedules, args.num_samples, args.batch_size, scorer, args.seed, results)
    results.data["seconds"] = time.perf_counter() - start
    results.write()
    if state.is_main_process:
        out.with_suffix(".md").write_text(markdown(results.data))
        print(f"wrote {out}.json/.md in {results.data['seconds']:.0f} s")


def markdown(result) -> str:
    lines = ["# Seed 000 on MNIST: restoration (Tables 2–5) and generation (Tables 6–7)", ""]
    names = {"2": "Table 2: linear → cosine (T = 300)", "3": "Table 3: sigmoid → cosine (T = 300)",
             "4": "Table 4: sigmoid T = 300 → T = 500, 1000", "5": "Table 5: cosine T = 1000 → cosine T = 300, 500 and quadratic T = 300"}
    for key, rows in sorted(result["restoration"].items()):
        lines += [f"## {names[key]}", "", f"{rows[0]['settings']['num_images']} MNIST test images per row, full ancestral DDPM restoration.", "",
                  "| source step | model | entry step (paper) | mode | MSE | ED | SSIM | cos sim | MI (nats) | paper MSE / SSIM |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            paper = f"{r['paper_mse']:.4f} / {r['paper_ssim']:.4f}" if r["paper_mse"] is not None else "–"
            entry = f"{r['entry_step']}" + (f" ({r['paper_entry_step']})" if r["paper_entry_step"] else "")
            lines.append(f"| {r['source']}@{r['source_step']} | {r['model']} | {entry} | {r['mode']} | {r['mse']:.4f} | "
                         f"{r['euclidean_distance']:.3f} | {r['ssim']:.4f} | {r['cosine_similarity']:.4f} | "
                         f"{r['mutual_information']:.3f} | {paper} |")
        lines.append("")
    if result.get("generation"):
        floor = result["generation_floor"]
        lines += ["## Tables 6–7: ancestral DDPM generation, single schedules and entropy-guided hybrids", "",
                  "FID/KID/IS of each row's samples with the shipped MNIST classifier against the MNIST test images. "
                  f"Floor (real train images, N = {floor['num_images']}): FID {floor['fid']:.2f}, IS {floor['is_mean']:.3f}. "
                  "The paper's FIDs use Inception features and are not on the same scale.", "",
                  "| model | T | model calls | samples | FID | KID | IS | paper FID |", "|---|---|---|---|---|---|---|---|"]
        for r in sorted(result["generation"], key=lambda r: (r["T"], "switch" in r)):
            paper = f"{r['paper_fid']:.1f}" if r.get("paper_fid") else "–"
            name = r["name"] + (f" (switch {r['switch']})" if "switch" in r else "")
            lines.append(f"| {name} | {r['T']} | {r['calls']} | {r['settings']['num_samples']} | {r['fid']:.2f} | {r['kid_mean']:.2f} | {r['is_mean']:.3f} | {paper} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
