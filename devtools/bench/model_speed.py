"""In-process inference throughput of a checkpoint: images per second at a fixed batch size.

    python -m devtools.bench.model_speed --checkpoint models/compact/model.pt --batch-size 256 --threads 2

Times what a worker does per batch, on real test images: uint8 -> normalise -> forward ->
softmax -> arg-max, under torch.inference_mode, the model loaded by ml.checkpoint.load, both
as trained and as the worker serves it (BatchNorm folded into the convs). Prints the median of several timed rounds (the machine is
shared, so the median is steadier than the mean) and the best round.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from ml import checkpoint as ckpt_io
from ml import data as data_mod
from ml.model import fuse_for_inference


def measure(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int, rounds: int = 7, batches_per_round: int = 20
) -> list[float]:
    """Images per second of each timed round (after a warm-up round)."""
    model.eval()
    n = len(images)
    batches = [images[(i * batch_size) % n : (i * batch_size) % n + batch_size] for i in range(batches_per_round)]
    batches = [b if len(b) == batch_size else images[:batch_size] for b in batches]
    rates = []
    with torch.inference_mode():
        for r in range(rounds + 1):
            t0 = time.perf_counter()
            for b in batches:
                model(data_mod.normalize(b)).softmax(dim=1).max(dim=1)
            secs = time.perf_counter() - t0
            if r > 0:  # the first round warms up oneDNN's kernels and caches
                rates.append(batch_size * len(batches) / secs)
    return rates


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="path to a model.pt written by ml.train")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds of 20 batches each")
    p.add_argument("--data-dir", default=None, help=f"Fashion-MNIST root (default: ${data_mod.ENV_ROOT} or data/)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    ck = ckpt_io.load(args.checkpoint)
    images = data_mod.load_split(data_mod.resolve_root(args.data_dir), train=False).images
    result: dict[str, Any] = {"checkpoint": args.checkpoint, "model": ck.name, "batch_size": args.batch_size,
                              "threads": args.threads}
    # "as trained" is the checkpoint as loaded; "as served" folds BatchNorm as the worker does.
    for label, model in (("as trained", ck.model), ("as served", fuse_for_inference(ck.model))):
        rates = measure(model, images, args.batch_size, rounds=args.rounds)
        key = label.replace(" ", "_")
        result[key] = {"median_images_per_s": statistics.median(rates), "best_images_per_s": max(rates)}
        print(f"{ck.name} {label}: {statistics.median(rates):,.0f} images/s median, {max(rates):,.0f} best "
              f"(batch {args.batch_size}, {args.threads} threads, {args.rounds} rounds, torch.inference_mode)")
    return result


if __name__ == "__main__":
    data_mod.run_cli(main)
