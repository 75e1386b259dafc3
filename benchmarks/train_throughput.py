"""Training throughput (images/s) of scripts/train.py's loop vs a plain minimal diffusers loop, same UNet, CPU.

Our loop is timed as the difference of two runs (SHORT and LONG steps), which cancels start-up, data loading
and the final save. Writes benchmarks/results/train_throughput.json.
"""

import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _train_script import parse_args

from diffusers_infoflow.training import build_noise_scheduler, build_unet, train


BATCH, SHORT, LONG = 32, 5, 25
ARGS = ["--dataset_name", "triangles", "--dataset_options", f"count={BATCH * LONG},size=28", "--resolution", "28",
        "--block_out_channels", "16,32,64", "--layers_per_block", "1", "--train_batch_size", str(BATCH),
        "--report_to", "none", "--num_card_samples", "0", "--checkpointing_steps", "100000", "--lr_warmup_steps", "0"]


def ours(steps: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(parse_args(ARGS + ["--max_train_steps", str(steps), "--output_dir", out]))
        return time.perf_counter() - start


def plain(steps: int) -> float:
    args = parse_args(ARGS)
    unet, scheduler = build_unet(args, 1), build_noise_scheduler(args)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    clean = torch.rand(BATCH, 1, 28, 28) * 2 - 1
    start = time.perf_counter()
    for _ in range(steps):
        noise = torch.randn_like(clean)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (BATCH,))
        loss = F.mse_loss(unet(scheduler.add_noise(clean, noise, t), t).sample, noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - start


if __name__ == "__main__":
    ours_ips = (LONG - SHORT) * BATCH / (ours(LONG) - ours(SHORT))
    plain_ips = (LONG - SHORT) * BATCH / plain(LONG - SHORT)
    result = {"images_per_s_ours": round(ours_ips, 1), "images_per_s_plain_loop": round(plain_ips, 1),
              "batch_size": BATCH, "unet": "16,32,64 x1, attention on, 28x28", "torch_threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count()}
    path = Path(__file__).parent / "results" / "train_throughput.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
