"""A shop's catalogue to train on, made from Fashion-MNIST test images rendered as product photos.

    python -m devtools.catalogue --out runs/catalogue --per-class 100 --eval-per-class 200

Writes two image folders in torchvision's ImageFolder layout, each photo a JPEG from ml.photos:
OUT/train/<group>/*.jpg with OUT/train/taxonomy.json, and OUT/eval/<group>/*.jpg, other items
of the same groups held out for `python -m ml.evaluate --image-folder`. The held-out items are
the same whatever --per-class, and a smaller train/ is part of a larger one (same --seed). The groups are coarser
than Fashion-MNIST's classes (tops = T-shirt/top + Pullover + Shirt, footwear = Sandal + Sneaker +
Ankle boot, ...), with a taxonomy of their own. Test images only: the shipped models never
trained on them, so fine-tuning from one is not shown items it has seen.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ml.constants import CLASSES

# group -> the Fashion-MNIST classes its photos come from (Coat, close to Pullover, is left out)
GROUPS: dict[str, tuple[str, ...]] = {
    "tops": ("T-shirt/top", "Pullover", "Shirt"),
    "bottoms": ("Trouser",),
    "dresses": ("Dress",),
    "footwear": ("Sandal", "Sneaker", "Ankle boot"),
    "bags": ("Bag",),
}
# group -> its category and department in this (made-up) shop; none is Fashion-MNIST's
TAXONOMY: dict[str, dict[str, str]] = {
    "tops": {"category": "upper body", "department": "womenswear"},
    "bottoms": {"category": "legwear", "department": "womenswear"},
    "dresses": {"category": "one piece", "department": "womenswear"},
    "footwear": {"category": "shoes", "department": "shoe shop"},
    "bags": {"category": "leather goods", "department": "accessories"},
}


def pick(labels: np.ndarray, group: str, n: int, skip: int, seed: int) -> list[int]:
    """`n` test-image indices of `group` after the first `skip`, taking its classes in turn, in a
    seeded order: the first `skip` go to another folder."""
    rng = np.random.default_rng([seed, list(GROUPS).index(group)])
    pools = [rng.permutation(np.flatnonzero(labels == CLASSES.index(c))) for c in GROUPS[group]]
    interleaved = [int(i) for row in zip(*pools) for i in row]  # class 1, class 2, class 3, class 1, ...
    if skip + n > len(interleaved):
        raise ValueError(f"{group}: {skip + n} photos asked for, {len(interleaved)} test images available")
    return interleaved[skip : skip + n]


def write_folder(out: Path, images: np.ndarray, labels: np.ndarray, per_class: int, skip: int = 0,
                 seed: int = 0, groups: tuple[str, ...] = tuple(GROUPS)) -> dict[str, int]:
    """OUT/<group>/<test index>.jpg for `per_class` items of each group; returns the photos per group."""
    from ml.photos import render_split

    written = {}
    for group in groups:
        idx = pick(labels, group, per_class, skip, seed)
        (out / group).mkdir(parents=True, exist_ok=True)
        for i, blob in zip(idx, render_split(images, "test", seed, indices=idx)):
            (out / group / f"{i:05d}.jpg").write_bytes(blob)
        written[group] = len(idx)
    return written


def write_catalogue(out: Path, images: np.ndarray, labels: np.ndarray, per_class: int, eval_per_class: int,
                    seed: int = 0, groups: tuple[str, ...] = tuple(GROUPS)) -> tuple[Path, Path]:
    """(OUT/train with its taxonomy.json, OUT/eval): disjoint items of the same groups, the held-out
    ones first, so that they do not change with `per_class`."""
    train, held_out = out / "train", out / "eval"
    write_folder(held_out, images, labels, eval_per_class, 0, seed, groups)
    write_folder(train, images, labels, per_class, eval_per_class, seed, groups)
    (train / "taxonomy.json").write_text(json.dumps({g: TAXONOMY[g] for g in groups}, indent=2) + "\n")
    return train, held_out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder to write train/ and eval/ into")
    p.add_argument("--per-class", type=int, default=100, help="photos per group in train/")
    p.add_argument("--eval-per-class", type=int, default=200, help="photos per group in eval/")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST root (default: $FASHION_MNIST_ROOT or data/)")
    p.add_argument("--seed", type=int, default=0, help="which items, and how they are rendered")
    args = p.parse_args(argv)
    from ml import data

    test = data.load_split(data.resolve_root(args.data_dir), train=False, download=False)
    train, held_out = write_catalogue(args.out, test.images.numpy(), test.labels.numpy(), args.per_class,
                                      args.eval_per_class, args.seed)
    print(f"wrote {train} ({args.per_class} photos per group, taxonomy.json) and {held_out} "
          f"({args.eval_per_class} per group)")


if __name__ == "__main__":
    from ml.data import run_cli

    run_cli(main)
