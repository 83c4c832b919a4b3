"""How well `preprocess_with_colours` names an item's colour: `python -m ml.colour_eval`.

Photo-like renders of Fashion-MNIST validation images (ml.photos) know the colour they paint the
item in; the top colour is right when it is the palette name nearest (ml.colour) to that colour.
Also the confusions, the images given no colour, and what colours cost on the same bytes.

    python -m ml.colour_eval --images 2000
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from ml import preprocess as pre
from ml.photo_eval import subset_indices
from ml.photos import DEFAULT_STYLE, PhotoStyle, photo_rng, render_jpeg_with_colour


def colour_accuracy(images: np.ndarray, split: str = "val", seed: int = 0, indices: Sequence[int] | None = None,
                    style: PhotoStyle = DEFAULT_STYLE) -> dict[str, Any]:
    """Top-colour accuracy of `preprocess_with_colours` on photo-like JPEG renders of `images[i]`.

    Right: the top colour's name is the palette name nearest to the painted colour. Also the
    confusions (painted name -> reported name), the images given no colour, and the CPU time of
    `preprocess_with_colours` against `preprocess` on the same bytes (interleaved, best of 3).
    """
    from ml.colour import nearest_name

    idx = range(len(images)) if indices is None else indices
    rendered = [render_jpeg_with_colour(images[i], photo_rng(seed, split, int(i)), style) for i in idx]
    results, errors = [], 0
    for blob, _ in rendered:
        try:
            results.append(pre.preprocess_with_colours(blob))
        except pre.ImageError:
            results.append(None)
            errors += 1
    truth = [nearest_name(colour) for _, colour in rendered]
    got = [r.colours[0].name if r is not None and r.colours else None for r in results]
    confusions: dict[str, int] = {}
    for want, name in zip(truth, got):
        if want != name:
            key = f"{want} -> {name}"
            confusions[key] = confusions.get(key, 0) + 1
    blobs = [b for b, _ in rendered]
    spent = {"preprocess": float("inf"), "preprocess_with_colours": float("inf")}
    for _ in range(3):
        for name, fn in (("preprocess", pre.preprocess), ("preprocess_with_colours", pre.preprocess_with_colours)):
            t0 = time.thread_time()
            for b in blobs:
                try:
                    fn(b)
                except pre.ImageError:
                    pass
            spent[name] = min(spent[name], time.thread_time() - t0)
    n = len(blobs)
    return {
        "images": n, "split": split, "seed": seed,
        "top_colour_right": sum(w == g for w, g in zip(truth, got)) / n,
        "no_colour": sum(g is None for g in got), "errors": errors,
        "confusions": dict(sorted(confusions.items(), key=lambda kv: -kv[1])),
        "painted_names": {k: truth.count(k) for k in sorted(set(truth))},
        "ms_per_image": {k: 1000 * v / n for k, v in spent.items()},
        "colour_cost_share": spent["preprocess_with_colours"] / spent["preprocess"] - 1,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import argparse

    from ml import data as data_mod

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000, help="photo-like validation renders to check")
    p.add_argument("--data-dir", default=None, help=f"Fashion-MNIST root (default: ${data_mod.ENV_ROOT} or data/)")
    p.add_argument("--seed", type=int, default=0, help="rendering seed")
    args = p.parse_args(argv)
    images = data_mod.load(args.data_dir, download=False).val.images.numpy()
    m = colour_accuracy(images, "val", args.seed, subset_indices(len(images), args.images, args.seed))
    print(f"Top colour on {m['images']:,} photo-like validation renders (seed {m['seed']}): "
          f"{100 * m['top_colour_right']:.1f}% right, {m['no_colour']} without a colour")
    print("  most frequent confusions (painted -> reported):",
          ", ".join(f"{k} {v}" for k, v in list(m["confusions"].items())[:8]) or "none")
    ms = m["ms_per_image"]
    print(f"  CPU per image: preprocess {ms['preprocess']:.3f} ms, with colours "
          f"{ms['preprocess_with_colours']:.3f} ms (+{100 * m['colour_cost_share']:.0f}%)")
    return m


if __name__ == "__main__":
    from ml.data import run_cli

    run_cli(main)
