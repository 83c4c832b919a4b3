"""Images for the demo, the benchmarks and the tests, as the files a backend would send."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np


def encode(image: np.ndarray | Any, fmt: str = "PNG", **options: Any) -> bytes:
    """An array (or PIL image) as the bytes of an image file in `fmt` (Pillow's save options)."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def png_bytes(image: np.ndarray | Any) -> bytes:
    return encode(image, "PNG")


def fashion_pngs(n: int, data_dir: str | None = None) -> tuple[list[bytes], list[int]]:
    """The first `n` Fashion-MNIST test images (cycled) as PNG files, and their labels."""
    from ml import data

    split = data.load_split(data.resolve_root(data_dir), train=False)
    pngs, labels = [], []
    for i in range(n):
        pngs.append(png_bytes(split.images[i % len(split)].numpy()))
        labels.append(int(split.labels[i % len(split)]))
    return pngs, labels


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height grey pixels, with a tiny body: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def slow_png(side: int = 3000) -> bytes:
    """A valid product-like PNG that is small on the wire (~40 KB) but slow to decode (~0.1 s): a
    blue item on white, side x side pixels. For tests of batches that run long."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (side, side), (245, 245, 245))
    ImageDraw.Draw(img).ellipse((side // 5, side // 6, 4 * side // 5, 5 * side // 6), fill=(40, 60, 150))
    return encode(img, "PNG")


# The photo mix of catalogue-scale product photos (issue 14): JPEG 80%, transparent PNG 10%, WebP 10%.
PHOTO_FORMATS = ("JPEG",) * 8 + ("PNG", "WEBP")


def photo_mix(items: np.ndarray, n: int, seed: int = 0) -> list[tuple[bytes, str]]:
    """`n` photo-like product images (file bytes, format), deterministic per (seed, index).

    Fashion-MNIST items (`items`, N x 28 x 28, cycled) rendered as product photos by
    ml.photos (200-1,200 px a side, random colour, scale, offset and background, half with
    sensor noise); every tenth is a transparent PNG cut-out (the item on alpha 0) and every
    tenth a WebP, the rest JPEGs at quality 70-95.
    """
    return [_photo(items[i % len(items)], PHOTO_FORMATS[i % len(PHOTO_FORMATS)], np.random.default_rng([seed, 14, i]))
            for i in range(n)]


def jpeg_photos(items: np.ndarray, n: int, side: int = 1000, seed: int = 0) -> list[bytes]:
    """`n` product-photo JPEGs of `side` x `side` pixels at quality 85-90, deterministic per (seed, index)."""
    from ml.photos import PhotoStyle

    style = PhotoStyle(min_side=side, max_side=side, min_quality=85, max_quality=90)
    return [_photo(items[i % len(items)], "JPEG", np.random.default_rng([seed, 15, i]), style)[0] for i in range(n)]


def _photo(item: np.ndarray, fmt: str, rng: np.random.Generator, style: Any = None) -> tuple[bytes, str]:
    from PIL import Image

    from ml.photos import DEFAULT_STYLE, render_image

    style = style or DEFAULT_STYLE
    photo = render_image(item, rng, style)
    if fmt == "PNG":  # a cut-out: the item in a dark colour on a fully transparent canvas, shown on white
        w, h = photo.size
        side = max(8, round(rng.uniform(style.min_scale, style.max_scale) * min(w, h)))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        cutout = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        colour = tuple(int(c) for c in rng.integers(0, 150, 3)) + (255,)
        mask = Image.fromarray(np.ascontiguousarray(item, dtype=np.uint8), "L")
        cutout.paste(colour, (x, y, x + side, y + side), mask.resize((side, side), Image.Resampling.BICUBIC))
        return encode(cutout, "PNG"), fmt
    quality = int(rng.integers(style.min_quality, style.max_quality + 1))
    return encode(photo, fmt, quality=quality), fmt
