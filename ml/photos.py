"""Fashion-MNIST rendered as product photos, for evaluation (ml.photo_eval) and the docs' picture.

A 28 x 28 Fashion-MNIST image is the negative of a product photo's grey levels, so each one
is turned back into a photo: the item (bicubic-upscaled) in a random colour, from black to pale
but at least 40 grey levels darker than the background (its intensity is the ink density), on
a white or light, slightly tinted background, on a random canvas of 200-1200 pixels a side, at a
random scale (30-95% of the short side) and offset, half of them with sensor-like noise, saved
as a JPEG of random quality (70-95). The bytes then go through the same
`ml.preprocess.preprocess` as the worker's. Every image's randomness comes from
(seed, split, index), so a subset renders exactly the same images as the full run.

The renders also know the item's colour (`render_image_with_colour`: the colour painted where
the item's intensity is 255), so ml.colour_eval can check `preprocess_with_colours` against it.

    python -m ml.photos --examples docs/preprocess_examples.png   # the docs' before/after picture
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageChops

from ml import preprocess as pre

SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}


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


def photo_rng(seed: int, split: str, index: int) -> np.random.Generator:
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
    return [render_jpeg(images[i], photo_rng(seed, split, int(i)), style) for i in idx]


def examples_figure(images: np.ndarray, labels: Sequence[int], classes: Sequence[str], path: Path,
                    seed: int = 0) -> Path:
    """Before/after: photo-like inputs (two on a dark background, one a transparent cut-out),
    what `preprocess` makes of them, and the original Fashion-MNIST image."""
    import matplotlib.pyplot as plt

    from ml.plots import save

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
    return save(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", required=True, help="write the before/after picture to this PNG")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST root (default: $FASHION_MNIST_ROOT or data/)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from ml import data as data_mod
    from ml.constants import CLASSES

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
