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
