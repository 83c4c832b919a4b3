"""Fashion-MNIST rendered as product photos, and the model's accuracy on them after `preprocess`.

A 28 x 28 Fashion-MNIST image is the negative of a product photo's grey levels, so each one
is turned back into a photo: the item (bicubic-upscaled) in a random colour, from black to pale
but at least 40 grey levels darker than the background (its intensity is the ink density), on
a white or light, slightly tinted background, on a random canvas of 200-1200 pixels a side, at a
random scale (30-95% of the short side) and offset, half of them with sensor-like noise, saved
as a JPEG of random quality (70-95). The bytes then go through the same
`ml.preprocess.preprocess` as the worker's. Every image's randomness comes from
(seed, split, index), so a subset renders exactly the same images as the full run.

The review threshold (tags under it get needs_review) is the lowest one, on a 0.01 grid, whose
unflagged tags are >= 97% correct on the photo-like validation images; it is then reported on
the test images, photo-like and clean.

The renders also know the item's colour (`render_image_with_colour`: the colour painted where
the item's intensity is 255), so `colour_accuracy` measures `preprocess_with_colours`: the top
colour is right when it is the palette name nearest (ml.colour) to the painted colour.

    python -m ml.evaluate --checkpoint models/seed/model.pt --photos
    python -m ml.photos --examples docs/preprocess_examples.png   # the README's before/after
    python -m ml.photos --colours 2000                            # top-colour accuracy, cost
"""

from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageChops

from ml import preprocess as pre

SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}
TARGET_PRECISION = 0.97  # precision of the tags that are not flagged for review


@dataclass(frozen=True)
class PhotoStyle:
    """The ranges a photo's random parameters are drawn from (uniformly)."""

    min_side: int = 200
    max_side: int = 1200
    min_scale: float = 0.3  # item's long side as a share of the canvas' short side
    max_scale: float = 0.95
    white_share: float = 0.5  # the rest get a light grey/tinted background
    min_background: int = 215
    max_item_luma: int = 215  # item colours from black up to pale (faint once negated) ...
    min_contrast: int = 40  # ... but at least this many grey levels darker than the background
    min_quality: int = 70
    max_quality: int = 95
    noise_share: float = 0.5  # share of photos with sensor-like grey noise ...
    noise_sigma: float = 3.0  # ... of this standard deviation (grey levels)


DEFAULT_STYLE = PhotoStyle()


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_STREAM[split], index])


def _luma(rgb: Sequence[float]) -> float:
    """ITU-R 601 luma, as Pillow's "L" conversion."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _item_colour(rng: np.random.Generator, max_luma: float) -> tuple[int, int, int]:
    """A random colour whose luma is at most `max_luma`."""
    while True:
        rgb = rng.integers(0, 256, 3)
        if _luma(rgb) <= max_luma:
            return int(rgb[0]), int(rgb[1]), int(rgb[2])


def render_image(image: np.ndarray, rng: np.random.Generator, style: PhotoStyle = DEFAULT_STYLE,
                 background: str = "light") -> Image.Image:
    """A 28 x 28 uint8 Fashion-MNIST image -> an RGB product-photo-like PIL image.

    `background="dark"` puts the same item, same colour, on a near-black background instead.
    """
    return render_image_with_colour(image, rng, style, background)[0]


def render_image_with_colour(image: np.ndarray, rng: np.random.Generator, style: PhotoStyle = DEFAULT_STYLE,
                             background: str = "light") -> tuple[Image.Image, tuple[int, int, int]]:
    """`render_image` and the colour it paints the item in (where the item's intensity is 255):
    the same draws from `rng`, so the same image."""
    w, h = (int(v) for v in rng.integers(style.min_side, style.max_side + 1, 2))
    side = max(8, round(rng.uniform(style.min_scale, style.max_scale) * min(w, h)))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    if rng.random() < style.white_share:
        bg = (255, 255, 255)
    else:
        base = rng.uniform(style.min_background, 255)
        bg = tuple(int(np.clip(base + rng.uniform(-6, 6), 0, 255)) for _ in range(3))
    colour = _item_colour(rng, min(style.max_item_luma, _luma(bg) - style.min_contrast))
    if background == "dark":
        bg = tuple(255 - c for c in bg)
        colour = tuple(255 - c for c in colour)
    canvas = Image.new("RGB", (w, h), bg)
    mask = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "L").resize(
        (side, side), Image.Resampling.BICUBIC)
    canvas.paste(colour, (x, y, x + side, y + side), mask)  # bg * (1 - v) + colour * v
    if rng.random() < style.noise_share:
        tile = _noise_tile(style.max_side, style.noise_sigma)
        nx, ny = int(rng.integers(0, tile.width - w + 1)), int(rng.integers(0, tile.height - h + 1))
        canvas = ImageChops.add(canvas, tile.crop((nx, ny, nx + w, ny + h)), 1.0, -128)
    return canvas, (int(colour[0]), int(colour[1]), int(colour[2]))


@lru_cache(maxsize=2)
def _noise_tile(side: int, sigma: float) -> Image.Image:
    """One fixed tile of Gaussian grey noise around 128; photos take random windows of it."""
    noise = np.random.default_rng(12345).normal(128, sigma, (side, side))
    return Image.fromarray(np.clip(np.round(noise), 0, 255).astype(np.uint8), "L").convert("RGB")


def render_jpeg(image: np.ndarray, rng: np.random.Generator, style: PhotoStyle = DEFAULT_STYLE,
                background: str = "light") -> bytes:
    """`render_image` saved as JPEG bytes at a random quality."""
    return render_jpeg_with_colour(image, rng, style, background)[0]


def render_jpeg_with_colour(image: np.ndarray, rng: np.random.Generator, style: PhotoStyle = DEFAULT_STYLE,
                            background: str = "light") -> tuple[bytes, tuple[int, int, int]]:
    """`render_jpeg` and the item's painted colour."""
    photo, colour = render_image_with_colour(image, rng, style, background)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=int(rng.integers(style.min_quality, style.max_quality + 1)))
    return buf.getvalue(), colour


def render_split(images: np.ndarray, split: str, seed: int = 0, indices: Sequence[int] | None = None,
                 style: PhotoStyle = DEFAULT_STYLE) -> list[bytes]:
    """JPEG bytes of `images[i]` for each i in `indices` (default: all), reproducible per index."""
    idx = range(len(images)) if indices is None else indices
    return [render_jpeg(images[i], _rng(seed, split, int(i)), style) for i in idx]


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


def colour_accuracy(images: np.ndarray, split: str = "val", seed: int = 0, indices: Sequence[int] | None = None,
                    style: PhotoStyle = DEFAULT_STYLE) -> dict[str, Any]:
    """Top-colour accuracy of `preprocess_with_colours` on photo-like JPEG renders of `images[i]`.

    Right: the top colour's name is the palette name nearest to the painted colour. Also the
    confusions (painted name -> reported name), the images given no colour, and the CPU time of
    `preprocess_with_colours` against `preprocess` on the same bytes (interleaved, best of 3).
    """
    from ml.colour import nearest_name

    idx = range(len(images)) if indices is None else indices
    rendered = [render_jpeg_with_colour(images[i], _rng(seed, split, int(i)), style) for i in idx]
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


def _subset(n: int, subset: int | None, seed: int) -> np.ndarray:
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
        idx = _subset(len(split), n, seed)
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
                           "val_images": len(val["labels"]), "preprocess_path": path}
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
        f"Photo-like evaluation ({m['test_images']:,} test images, seed {m['seed']}, "
        f"preprocess path: {m.get('preprocess_path', 'fast')})",
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
    """`python -m ml.evaluate --photos`: evaluate, print, write photo_metrics.json; return the figures."""
    from ml import checkpoint as ckpt_io
    from ml import data as data_mod

    ck = ckpt_io.load(checkpoint)
    dataset = data_mod.load(data_dir)
    t0 = time.perf_counter()
    metrics = evaluate(ck.model, dataset, ck.classes, seed=seed, subset=subset, val_subset=val_subset,
                       threshold=threshold, path=path)
    metrics = {"checkpoint": str(checkpoint), "arch": ck.arch, "model_version": ck.version,
               "seconds": round(time.perf_counter() - t0, 1), **metrics}
    folder = Path(out) if out else Path(checkpoint).parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "photo_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(format_report(metrics))
    print(f"\nwrote {folder / 'photo_metrics.json'}")
    return metrics


def examples_figure(images: np.ndarray, labels: Sequence[int], classes: Sequence[str], path: Path,
                    seed: int = 0) -> Path:
    """Before/after: photo-like inputs (two on a dark background, one a transparent cut-out),
    what `preprocess` makes of them, and the original Fashion-MNIST image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.9 * n, 6.4), gridspec_kw={"height_ratios": [1.6, 1, 1]})
    for j, (img, label) in enumerate(zip(images, labels)):
        rng = np.random.default_rng([seed, 7, j])
        kind = "dark" if j in (2, n - 2) else "cutout" if j == n - 1 else "light"
        photo = render_image(img, rng, background="dark" if kind == "dark" else "light")
        buf = io.BytesIO()
        if kind == "cutout":  # the item alone, on a transparent background, as a PNG
            side = min(photo.size) * 3 // 4
            alpha = Image.new("L", photo.size, 0)
            alpha.paste(Image.fromarray(img, "L").resize((side, side), Image.Resampling.BICUBIC), (20, 20))
            photo = Image.new("RGBA", photo.size, _item_colour(rng, 150) + (0,))
            photo.putalpha(alpha)
            fmt, note = "PNG", "RGBA PNG, transparent"
        else:
            fmt, note = "JPEG", f"JPEG, {kind} bg"
        photo.save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
        result = pre.preprocess(buf.getvalue())
        shown = photo
        if kind == "cutout":  # show transparency as a checkerboard
            yy, xx = np.mgrid[0 : photo.size[1], 0 : photo.size[0]]
            board = Image.fromarray(np.where(((xx // 24 + yy // 24) % 2) == 0, 205, 245).astype(np.uint8), "L")
            shown = board.convert("RGBA")
            shown.alpha_composite(photo)
        axes[0, j].imshow(np.asarray(shown.convert("RGB")))
        axes[0, j].set_title(f"{photo.size[0]}x{photo.size[1]}\n{note}", fontsize=8)
        axes[1, j].imshow(result, cmap="gray", vmin=0, vmax=255)
        axes[1, j].set_title("preprocess()", fontsize=8)
        axes[2, j].imshow(img, cmap="gray", vmin=0, vmax=255)
        axes[2, j].set_title(f"original: {classes[int(label)]}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Product-photo-like inputs -> 28 x 28 model input (middle) vs the Fashion-MNIST original (bottom)",
                 fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", default=None, help="write the before/after picture to this PNG")
    p.add_argument("--colours", type=int, default=None, metavar="N",
                   help="top-colour accuracy on N photo-like validation renders (and its cost)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST root (default: $FASHION_MNIST_ROOT or data/)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from ml import data as data_mod
    from ml.constants import CLASSES

    if args.examples is None and args.colours is None:
        p.error("give --examples PATH and/or --colours N")
    if args.colours is not None:
        ds = data_mod.load(args.data_dir, download=False)
        images = ds.val.images.numpy()
        m = colour_accuracy(images, "val", args.seed, _subset(len(images), args.colours, args.seed))
        print(f"Top colour on {m['images']:,} photo-like validation renders (seed {m['seed']}): "
              f"{100 * m['top_colour_right']:.1f}% right, {m['no_colour']} without a colour")
        print("  most frequent confusions (painted -> reported):",
              ", ".join(f"{k} {v}" for k, v in list(m["confusions"].items())[:8]) or "none")
        ms = m["ms_per_image"]
        print(f"  CPU per image: preprocess {ms['preprocess']:.3f} ms, with colours "
              f"{ms['preprocess_with_colours']:.3f} ms (+{100 * m['colour_cost_share']:.0f}%)")
        if args.examples is None:
            return
    test = data_mod.load_split(data_mod.resolve_root(args.data_dir), train=False, download=False)
    # the first test image of each of seven classes
    picks, seen = [], set()
    for i, y in enumerate(test.labels.tolist()):
        if y not in seen and y in (0, 1, 3, 5, 7, 8, 9):
            picks.append(i)
            seen.add(y)
        if len(picks) == 7:
            break
    path = examples_figure(test.images[picks].numpy(), test.labels[picks].tolist(), CLASSES, Path(args.examples),
                           args.seed)
    print(f"wrote {path}")


if __name__ == "__main__":
    from ml.data import run_cli

    run_cli(main)
