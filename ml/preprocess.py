"""Image bytes -> one 28 x 28 uint8 image in Fashion-MNIST form. Pure functions, shared by ml and worker.

Every failure is an `ImageError` with a stable `code`, so one bad image becomes one
clear per-job error and never fails its batch.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ml.constants import IMAGE_SIZE


class ImageError(ValueError):
    """A job's image cannot be used. `code` is one of the result message's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    """What a job may send. Checked before any pixel is decoded."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000  # width x height; a 20,000 x 20,000 bomb is 400 M
    formats: frozenset[str] = field(default_factory=lambda: frozenset({"PNG", "JPEG", "WEBP"}))


DEFAULT_LIMITS = Limits()


def open_image(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Image.Image:
    """Check size, format and pixel count from the header, then decode fully."""
    if not data:
        raise ImageError("empty_image", "the image payload is empty")
    if len(data) > limits.max_bytes:
        raise ImageError("image_too_large", f"image is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=sorted(limits.formats))
    except Image.DecompressionBombError as exc:
        raise ImageError("too_many_pixels", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for unreadable input
        raise ImageError("unsupported_format",
                         f"not a {'/'.join(sorted(limits.formats))} image ({type(exc).__name__})") from None
    w, h = img.size
    if w * h > limits.max_pixels:
        raise ImageError("too_many_pixels", f"image is {w}x{h} = {w * h:,} pixels; the limit is {limits.max_pixels:,}")
    try:
        img.load()
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise ImageError("decode_error", f"could not decode the {img.format} image: {exc}") from None
    return img


def to_fashion_mnist(img: Image.Image) -> np.ndarray:
    """A decoded image -> uint8 28 x 28, grayscale."""
    gray = img.convert("L")
    if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
        gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8)


def preprocess(data: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Image bytes -> uint8 28 x 28 array, ready for `ml.data.normalize` after stacking."""
    return to_fashion_mnist(open_image(data, limits))
