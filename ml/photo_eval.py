"""Accuracy on product-photo-like images, and the review threshold: `python -m ml.photo_eval`.

Each validation and test image is rendered as a product photo (ml.photos), its JPEG bytes go
through the same `ml.preprocess.preprocess` as the worker's, and the model tags the result.
The review threshold (tags under it get needs_review) is the lowest one, on a 0.01 grid, whose
unflagged tags are >= 97% correct on the photo-like validation images; it is then reported on
the test images, photo-like and clean.

    python -m ml.photo_eval --checkpoint models/compact/model.pt          # ~2 min
    python -m ml.photo_eval --checkpoint ... --subset 500 --val-subset 500  # quicker
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ml import preprocess as pre
from ml.photos import DEFAULT_STYLE, render_split

TARGET_PRECISION = 0.97  # precision of the tags that are not flagged for review


PREPROCESS_PATHS = {
    "fast": lambda blob: pre.preprocess(blob),  # the fastest decoder per format (the service's)
    "pillow": lambda blob: pre.preprocess_pillow(blob),  # Pillow's decoders only (before ml.decode)
    "colours": lambda blob: pre.preprocess_with_colours(blob).image,
}


def preprocess_all(blobs: Sequence[bytes], path: str = "fast") -> tuple[np.ndarray, dict[int, str], float]:
    """Bytes -> (uint8 N x 28 x 28, {index: ImageError code}, seconds spent in preprocess only).

    An image that fails keeps an all-black slot; callers count it as a wrong, flagged tag.
    `path` picks the preprocessing (PREPROCESS_PATHS).
    """
    fn = PREPROCESS_PATHS[path]
    out = np.zeros((len(blobs), 28, 28), dtype=np.uint8)
    errors: dict[int, str] = {}
    spent = 0.0
    for i, blob in enumerate(blobs):
        t0 = time.perf_counter()
        try:
            out[i] = fn(blob)
        except pre.ImageError as exc:
            errors[i] = exc.code
        spent += time.perf_counter() - t0
    return out, errors, spent


def review_figures(correct: np.ndarray, conf: np.ndarray, threshold: float) -> dict[str, float]:
    """Tags with confidence < threshold are flagged for review; precision of the rest."""
    keep = conf >= threshold
    return {
        "threshold": threshold,
        "flagged_share": float(1 - keep.mean()),
        "unflagged_precision": float(correct[keep].mean()) if keep.any() else 1.0,
        "unflagged_count": int(keep.sum()),
    }


def choose_threshold(correct: np.ndarray, conf: np.ndarray, target: float = TARGET_PRECISION) -> float:
    """The lowest threshold on a 0.01 grid whose unflagged precision is >= target."""
    for t in np.round(np.arange(0.0, 1.0, 0.01), 2):
        f = review_figures(correct, conf, float(t))
        if f["unflagged_count"] and f["unflagged_precision"] >= target:
            return float(t)
    return 1.0


def subset_indices(n: int, subset: int | None, seed: int) -> np.ndarray:
    """A fixed, class-mixed subset of indices (all when subset is None or >= n)."""
    if subset is None or subset >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 99]).permutation(n)[:subset])


def evaluate(model: Any, dataset: Any, classes: Sequence[str], seed: int = 0, subset: int | None = None,
             val_subset: int | None = None, target: float = TARGET_PRECISION,
             threshold: float | None = None, path: str = "fast") -> dict[str, Any]:
    """Clean vs photo-like accuracy on the test split; review threshold chosen on photo-like validation.

    `dataset` needs `.val` and `.test` splits of uint8 images and labels (ml.data.Dataset).
    An image that `preprocess` rejects counts as a wrong tag with confidence 0 (so: flagged).
    """
    import torch

    from ml.evaluate import compute_metrics, predict

    def run(split_name: str, split: Any, n: int | None) -> dict[str, Any]:
        idx = subset_indices(len(split), n, seed)
        images, labels = split.images[idx], split.labels[idx]
        t0 = time.perf_counter()
        blobs = render_split(split.images.numpy(), split_name, seed, indices=idx)
        render_s = time.perf_counter() - t0
        photos, errors, pre_s = preprocess_all(blobs, path)
        clean_pred, clean_conf = predict(model, images)
        photo_pred, photo_conf = predict(model, torch.from_numpy(photos))
        for i in errors:
            photo_pred[i], photo_conf[i] = (int(labels[i]) + 1) % len(classes), 0.0
        return {
            "labels": labels, "render_s": render_s, "pre_s": pre_s, "errors": errors,
            "bytes": float(np.mean([len(b) for b in blobs])),
            "clean": (clean_pred, clean_conf), "photo": (photo_pred, photo_conf),
        }

    val = run("val", dataset.val, val_subset)
    val_correct = (val["photo"][0] == val["labels"]).numpy()
    val_conf = val["photo"][1].numpy()
    chosen = threshold is None
    if threshold is None:
        threshold = choose_threshold(val_correct, val_conf, target)
    test = run("test", dataset.test, subset)
    labels = test["labels"]
    out: dict[str, Any] = {"seed": seed, "style": asdict(DEFAULT_STYLE), "test_images": len(labels),
                           "val_images": len(val["labels"])}
    for name in ("clean", "photo"):
        pred, conf = test[name]
        m = compute_metrics(pred, labels, classes)
        out[name] = {**m, "review": review_figures((pred == labels).numpy(), conf.numpy(), threshold)}
    out["photo"]["preprocess_errors"] = {str(i): code for i, code in test["errors"].items()}
    out["accuracy_gap_points"] = 100 * (out["clean"]["accuracy"] - out["photo"]["accuracy"])
    out["review"] = {
        "threshold": threshold,
        "target_unflagged_precision": target,
        "chosen_on": (f"photo-like validation images ({len(val['labels'])})" if chosen else "given"),
        "val_photo": review_figures(val_correct, val_conf, threshold),
        "val_photo_accuracy": float(val_correct.mean()),
        "val_clean_accuracy": float((val["clean"][0] == val["labels"]).float().mean()),
        "test_photo": out["photo"]["review"],
        "test_clean": out["clean"]["review"],
    }
    n = len(labels)
    out["timing"] = {"preprocess_ms_per_image": 1000 * test["pre_s"] / n,
                     "render_ms_per_image": 1000 * test["render_s"] / n, "mean_jpeg_bytes": test["bytes"]}
    return out


def format_report(m: dict[str, Any]) -> str:
    r = m["review"]
    lines = [
        f"Photo-like evaluation ({m['test_images']:,} test images, seed {m['seed']})",
        f"  clean test accuracy       {100 * m['clean']['accuracy']:.2f}%",
        f"  photo-like test accuracy  {100 * m['photo']['accuracy']:.2f}%  (gap {m['accuracy_gap_points']:.2f} points)",
        f"  review threshold {r['threshold']:.2f} (lowest with unflagged precision >= "
        f"{100 * r['target_unflagged_precision']:.0f}% on {r['chosen_on']})",
    ]
    for key, label in (("val_photo", "photo-like validation"), ("test_photo", "photo-like test"),
                       ("test_clean", "clean test")):
        f = r[key]
        lines.append(f"    {label:<22} unflagged precision {100 * f['unflagged_precision']:.2f}%, "
                     f"flagged {100 * f['flagged_share']:.1f}%")
    lines.append(f"  preprocess {m['timing']['preprocess_ms_per_image']:.2f} ms/image "
                 f"(mean JPEG {m['timing']['mean_jpeg_bytes'] / 1024:.0f} KiB)")
    return "\n".join(lines)


def run(checkpoint: str, data_dir: str | None = None, out: str | None = None, subset: int | None = None,
        val_subset: int | None = None, seed: int = 0, threshold: float | None = None,
        path: str = "fast") -> dict[str, Any]:
    """Evaluate, print, write photo_metrics.json next to the checkpoint (or into `out`); return the figures."""
    from ml import checkpoint as ckpt_io
    from ml import data as data_mod

    ck = ckpt_io.load(checkpoint)
    dataset = data_mod.load(data_dir)
    t0 = time.perf_counter()
    metrics = evaluate(ck.model, dataset, ck.classes, seed=seed, subset=subset, val_subset=val_subset,
                       threshold=threshold, path=path)
    metrics = {"checkpoint": ckpt_io.portable_path(checkpoint), "arch": ck.arch, "model_version": ck.version,
               "seconds": round(time.perf_counter() - t0, 1), **metrics}
    folder = Path(out) if out else Path(checkpoint).parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "photo_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(format_report(metrics))
    print(f"\nwrote {folder / 'photo_metrics.json'}")
    return metrics


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from ml.evaluate import evaluation_parser

    p = evaluation_parser(__doc__, "photo_metrics.json")
    p.add_argument("--subset", type=int, default=None, help="only this many test images (default: all)")
    p.add_argument("--val-subset", type=int, default=None, help="only this many validation images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="rendering seed")
    p.add_argument("--path", choices=sorted(PREPROCESS_PATHS), default="fast",
                   help="preprocess with the fastest decoder per format (the service's), with Pillow only "
                        "(the path before ml.decode), or as preprocess_with_colours does")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return run(args.checkpoint, args.data_dir, args.out, args.subset, args.val_subset, args.seed, path=args.path)


if __name__ == "__main__":
    from ml.data import run_cli

    run_cli(main)
