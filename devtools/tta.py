"""What test-time augmentation would buy a checkpoint, and what it would cost (docs/model.md).

    python -m devtools.tta --checkpoint models/compact_ens/model.pt --data-dir DATA

Views: the image, its mirror image (flip), and one-pixel shifts of both. For each set of views,
accuracy on validation and test when every image gets every view (cost: the number of views),
and when only the images whose top probability is under a threshold get the extra views (cost:
1 + that share x the extra views, on average). Chosen on validation, as everything else. An
experiment, not a serving option: the served model runs one view.
"""

from __future__ import annotations

import argparse

import torch

from ml import checkpoint as ckpt_io
from ml import data
from ml.model import fuse_for_inference

SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))
VIEW_SETS = (("flip",), ("flip", "s1,0", "s-1,0"), ("flip", "s1,0", "s-1,0", "fs1,0", "fs-1,0"),
             ("flip",) + tuple(f"{p}{dx},{dy}" for dx, dy in SHIFTS for p in ("s", "fs")))
THRESHOLDS = (0.5, 0.6, 0.7)


@torch.inference_mode()
def probabilities(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    x = data.normalize(images)
    return torch.cat([model(x[i:i + 1000]).softmax(1) for i in range(0, len(x), 1000)])


def views(model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Softmax outputs of every view, by name."""
    flipped = images.flip(-1)
    out = {"image": probabilities(model, images), "flip": probabilities(model, flipped)}
    for dx, dy in SHIFTS:
        out[f"s{dx},{dy}"] = probabilities(model, torch.roll(images, shifts=(dy, dx), dims=(-2, -1)))
        out[f"fs{dx},{dy}"] = probabilities(model, torch.roll(flipped, shifts=(dy, dx), dims=(-2, -1)))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = fuse_for_inference(ckpt_io.load(args.checkpoint).model).eval()
    ds = data.load(args.data_dir)
    print("| views | split | one view | every image | " + " | ".join(f"top prob. < {t}" for t in THRESHOLDS) + " |")
    print("|---|---|---:|---:|" + "---:|" * len(THRESHOLDS))
    for name, split in (("validation", ds.val), ("test", ds.test)):
        probs = views(model, split.images)
        base, confidence = probs["image"], probs["image"].max(1).values
        accuracy = lambda q: 100 * (q.argmax(1) == split.labels).float().mean().item()  # noqa: E731
        for extra in VIEW_SETS:
            mean = (base + sum(probs[v] for v in extra)) / (1 + len(extra))
            cells = [f"{accuracy(base):.2f}%", f"{accuracy(mean):.2f}% ({1 + len(extra)}x)"]
            for t in THRESHOLDS:
                unsure = confidence < t
                cost = 1 + unsure.float().mean().item() * len(extra)
                cells.append(f"{accuracy(torch.where(unsure[:, None], mean, base)):.2f}% ({cost:.2f}x)")
            print(f"| image + {' + '.join(extra)} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    data.run_cli(main)
