"""Training throughput of candidate MNIST UNets on one CPU thread: a UNet sized for CPU throughput.

Each candidate (``scripts/train.py``'s model flags) takes ``--steps`` timed AdamW steps of ε-prediction on batches
of 64 28×28 images after two warm-up steps; the table gives parameters, images/s on one thread and the hours
one thread needs for 10,000 steps. Writes ``benchmarks/results/unet_throughput.{json,md}``.

    python benchmarks/unet_throughput.py [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _train_script import parse_args

from diffusers_infoflow.training import build_noise_scheduler, build_unet


RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 64
CANDIDATES = {
    "16,32,64 + attention (old shipped mnist-ddpm)": ["--block_out_channels", "16,32,64", "--attention", "on"],
    "16,32,64": ["--block_out_channels", "16,32,64", "--attention", "off"],
    "32,64,64 (new shipped mnist-ddpm)": ["--block_out_channels", "32,64,64", "--attention", "off"],
    "32,64,64 + attention": ["--block_out_channels", "32,64,64", "--attention", "on"],
    "32,64,128": ["--block_out_channels", "32,64,128", "--attention", "off"],
    "64,128,128": ["--block_out_channels", "64,128,128", "--attention", "off"],
}


def images_per_second(flags, steps: int) -> tuple:
    args = parse_args(["--dataset_name", "triangles", "--resolution", "28", "--layers_per_block", "1", *flags])
    unet, scheduler = build_unet(args, 1), build_noise_scheduler(args)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(BATCH, 1, 28, 28, generator=generator) * 2 - 1

    def step():
        noise = torch.randn(clean.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (BATCH,), generator=generator)
        loss = F.mse_loss(unet(scheduler.add_noise(clean, noise, t), t).sample, noise)
        loss.backward()
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, flags in CANDIDATES.items():
        params, rate = images_per_second(flags, args.steps)
        rows.append({"unet": name, "parameters": params, "images_per_s": rate, "hours_per_10k_steps": 10_000 * BATCH / rate / 3600})
        print(f"{name:48s} {params:>10,d} params  {rate:6.1f} images/s  {rows[-1]['hours_per_10k_steps']:.2f} h / 10k steps", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "unet_throughput.json").write_text(json.dumps({"batch_size": BATCH, "torch_threads": 1, "steps": args.steps, "rows": rows}, indent=1))
    lines = ["# Training throughput of MNIST UNets, one CPU thread", "",
             f"`python benchmarks/unet_throughput.py --steps {args.steps}`: AdamW steps of batch {BATCH}, ε loss, 28×28, one layer per block.", "",
             "| UNet widths | parameters | images/s | hours per 10k steps |", "|---|---|---|---|"]
    lines += [f"| {r['unet']} | {r['parameters']:,} | {r['images_per_s']:.1f} | {r['hours_per_10k_steps']:.2f} |" for r in rows]
    (RESULTS / "unet_throughput.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
