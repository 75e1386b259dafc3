"""Training throughput of candidate MNIST UNets on the CPU: a UNet sized for CPU throughput.

Each candidate (``scripts/train.py``'s model flags) takes ``--steps`` timed AdamW steps of ε-prediction on batches
of 64 28×28 images after two warm-up steps, in each ``--precision`` (``bf16``: ``torch.autocast`` on the CPU, as
``--mixed_precision bf16`` trains; the weights stay float32); the table gives parameters, images/s and the hours
for 10,000 steps. Writes ``benchmarks/results/unet_throughput.{json,md}`` (one thread, float32, every candidate),
otherwise ``unet_throughput_<threads>threads.{json,md}``.

    python benchmarks/unet_throughput.py [--steps 10]
    python benchmarks/unet_throughput.py --threads 2 --precision float32 bf16 --match shipped
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _train_script import parse_args

from diffusers_infoflow.training import build_noise_scheduler, build_unet


RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 64
CANDIDATES = {
    "16,32,64 + attention (the 0.69M mnist-ddpm shipped first)": ["--block_out_channels", "16,32,64", "--attention", "on"],
    "16,32,64": ["--block_out_channels", "16,32,64", "--attention", "off"],
    "32,64,64 (the 1.06M mnist-ddpm shipped second)": ["--block_out_channels", "32,64,64", "--attention", "off"],
    "32,64,64 + attention": ["--block_out_channels", "32,64,64", "--attention", "on"],
    "32,64,128": ["--block_out_channels", "32,64,128", "--attention", "off"],
    "64,128,128": ["--block_out_channels", "64,128,128", "--attention", "off"],
    "32,64,128, 2 layers per block (shipped mnist-ddpm and mnist-joint-trig)": [
        "--block_out_channels", "32,64,128", "--attention", "off", "--layers_per_block", "2"],
}
PRECISIONS = {"float32": None, "bf16": torch.bfloat16}


def images_per_second(flags, steps: int, precision: str = "float32") -> tuple:
    args = parse_args(["--dataset_name", "triangles", "--resolution", "28", "--layers_per_block", "1", *flags])
    unet, scheduler = build_unet(args, 1), build_noise_scheduler(args)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(BATCH, 1, 28, 28, generator=generator) * 2 - 1

    def step():
        noise = torch.randn(clean.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (BATCH,), generator=generator)
        with torch.autocast("cpu", dtype=PRECISIONS[precision], enabled=precision != "float32"):
            prediction = unet(scheduler.add_noise(clean, noise, t), t).sample
        F.mse_loss(prediction.float(), noise).backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return sum(p.numel() for p in unet.parameters()), BATCH * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", nargs="+", choices=tuple(PRECISIONS), default=["float32"])
    parser.add_argument("--match", default="", help="only the candidates whose name contains this text.")
    args = parser.parse_args()
    candidates = {name: flags for name, flags in CANDIDATES.items() if args.match in name}
    if not candidates:
        parser.error(f"--match {args.match!r} names no candidate; they are: {', '.join(CANDIDATES)}.")
    torch.set_num_threads(args.threads)
    rows = []
    for name, flags in candidates.items():
        for precision in args.precision:
            params, rate = images_per_second(flags, args.steps, precision)
            rows.append({"unet": name, "precision": precision, "parameters": params, "images_per_s": rate,
                         "hours_per_10k_steps": 10_000 * BATCH / rate / 3600})
            print(f"{name:48s} {precision:8s} {params:>10,d} params  {rate:6.1f} images/s  "
                  f"{rows[-1]['hours_per_10k_steps']:.2f} h / 10k steps", flush=True)
    full = args.threads == 1 and args.precision == ["float32"] and not args.match
    stem = "unet_throughput" if full else f"unet_throughput_{args.threads}threads"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"batch_size": BATCH, "torch_threads": args.threads, "steps": args.steps, "rows": rows}, indent=1))
    command = shlex.join(["python", "benchmarks/unet_throughput.py", *sys.argv[1:]])
    lines = [f"# Training throughput of MNIST UNets, {args.threads} CPU thread(s)", "",
             f"`{command}`: AdamW steps of batch {BATCH}, ε loss, 28×28, one layer per block unless named.", "",
             "| UNet widths | precision | parameters | images/s | hours per 10k steps |", "|---|---|---|---|---|"]
    lines += [f"| {r['unet']} | {r['precision']} | {r['parameters']:,} | {r['images_per_s']:.1f} | {r['hours_per_10k_steps']:.2f} |" for r in rows]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
