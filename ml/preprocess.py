"""Image bytes -> one 28 x 28 uint8 image in Fashion-MNIST form. Pure functions, shared by ml and worker.

Fashion-MNIST was made from Zalando product photos by: trimming the edges close to the
colour of the corner pixels, resizing the longest edge to 28, sharpening, extending the short
edge to 28 with the item centred, negating the intensities and converting to 8-bit grey
(Xiao et al. 2017). `preprocess` does the same to a product photo, so the model sees what it
was trained on:

1. Check the byte count, the format (allowlist) and the pixel count from the header, before
   a single pixel is decoded; Pillow's decompression-bomb warning is an error.
2. Decode small: a JPEG in draft mode (libjpeg's scaled IDCT at 1/2, 1/4 or 1/8, straight to
   grey) so its short side stays >= WORK_SIZE (112); PNG and WebP have no such mode, so they
   are decoded in full, converted to grey and box-reduced (`Image.reduce`) by the same 2^k.
3. Apply the EXIF (or XMP) orientation; flatten transparency onto white (a cut-out shown on a
   web page), so transparent areas are background; convert every mode (1, L, LA, P, PA, RGB,
   RGBA, CMYK, I;16, ...) to 8-bit grey.
4. The background level is the median of the four corner patches (one corner may be covered
   by the item). Trim the rows and columns whose pixels all lie within max(8, 10% of the
   item's contrast) of it (judged on a 3 x 3 box blur, so that noise does not count), area-
   average the rest so its longest side is 28, and centre it on 28 x 28 as in Fashion-MNIST
   (an odd margin puts the extra pixel on the left/top).
5. Intensity is the distance from the background level: on a light background that is the
   negative, on a dark one the image itself. Stretch it so the brightest pixel is 255: every
   Fashion-MNIST image peaks at 254 or 255, while a pale item on white would otherwise come
   out faint (and an item on a light or a dark background would come out differently).
6. Sharpen with an unsharp mask of radius 1, as Zalando did after resizing.

The choices in 4-6 (area average vs subsampling, tolerance, sharpening, WORK_SIZE) were made
by accuracy on photo-like renders of the validation split (ml.photo_eval); see docs/photos.md.

An image that is already 28 x 28 is model-ready: it is only converted to grey and, when its
corners are light, negated. A Fashion-MNIST image therefore passes through exactly unchanged.

Every failure is an `ImageError` with a stable `code` (`wire.errors.IMAGE_ERROR_CODES`), so one bad image
becomes one clear per-job error and never fails its batch. No other exception type escapes
`preprocess`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from ml.constants import IMAGE_SIZE
from wire.errors import ErrorCode
from wire.formats import IMAGE_FORMATS

# Trimming: rows and columns whose pixels all lie within max(MIN_TOLERANCE, TRIM_FRACTION x the
# item's peak distance) of the background go, judged on a 3 x 3 box blur of the working image so
# that sensor/JPEG noise (sigma ~3 grey levels, ~1 after the blur) does not count as item while a
# pale item's faint edge does. Zalando used a fixed 5% of full scale (13 levels), which crops a
# pale item's edges; the fraction keeps a strong item's faint fringe out, as the 5% did.
MIN_TOLERANCE = 8
TRIM_FRACTION = 0.10
# Zalando sharpened with a Gaussian of radius and sigma 1 after resizing; so do we.
SHARPEN = ImageFilter.UnsharpMask(radius=1, percent=100, threshold=0)
WORK_SIZE = 112  # decode/reduce by 2^k while the short side stays >= WORK_SIZE
_CORNER = 3  # corner patch side (pixels of the reduced image) used to estimate the background

_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA = {"LA", "La", "PA", "RGBA", "RGBa"}


class ImageError(ValueError):
    """A job's image cannot be used. `code` is one of `wire.errors.IMAGE_ERROR_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)  # a code the result message does not know fails here, not in the worker


@dataclass(frozen=True)
class Limits:
    """What a job may send. Checked before any pixel is decoded."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000  # width x height; a 20,000 x 20,000 bomb is 400 M
    formats: frozenset[str] = IMAGE_FORMATS


DEFAULT_LIMITS = Limits()


# Pillow's decompression-bomb warning is an error in any process that preprocesses images. Set
# once, process-wide: a per-call warnings.catch_warnings() cost ~6 us of the ~80 us a 28 x 28
# PNG takes, and is not thread-safe. Our own pixel limit (below, from the header) is stricter.
warnings.simplefilter("error", Image.DecompressionBombWarning)


@lru_cache(maxsize=8)
def _formats(allowed: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(allowed))


def _open_header(data: bytes, limits: Limits) -> Image.Image:
    """Check size, format and pixel count from the header; no pixel is decoded yet."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError("empty_image" if data is None else "unsupported_format",
                         f"expected image bytes, got {type(data).__name__}")
    if not data:
        raise ImageError("empty_image", "the image payload is empty")
    if len(data) > limits.max_bytes:
        raise ImageError("image_too_large", f"image is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    try:
        img = Image.open(io.BytesIO(data), formats=_formats(limits.formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("too_many_pixels", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for unreadable input
        raise ImageError("unsupported_format",
                         f"not a {'/'.join(sorted(limits.formats))} image ({type(exc).__name__})") from None
    w, h = img.size
    if w * h > limits.max_pixels:
        raise ImageError("too_many_pixels", f"image is {w}x{h} = {w * h:,} pixels; the limit is {limits.max_pixels:,}")
    if w < 1 or h < 1:
        raise ImageError("decode_error", f"image has no pixels ({w}x{h})")
    return img


def _load(img: Image.Image) -> None:
    try:
        img.load()
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise ImageError("decode_error", f"could not decode the {img.format} image: {exc}") from None


def open_image(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Image.Image:
    """Check size, format and pixel count from the header, then decode fully (at full size)."""
    img = _open_header(data, limits)
    _load(img)
    return img


def _draft(img: Image.Image, work: int | None = None) -> None:
    """Ask a JPEG decoder for grey at the smallest 1/2^k scale whose short side stays >= `work`."""
    if img.format != "JPEG":
        return
    work = work or WORK_SIZE
    w, h = img.size
    scale = next(s for s in (8, 4, 2, 1) if s == 1 or min(w, h) // s >= work)
    img.draft("L", (max(1, w // scale), max(1, h // scale)))


def orientation(img: Image.Image) -> Image.Transpose | None:
    """The transpose that the EXIF (or XMP) Orientation tag asks for; None for none or corrupt EXIF."""
    try:
        return _ORIENTATION.get(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - the pixels are fine even when the metadata is not
        return None


def to_gray(img: Image.Image) -> Image.Image:
    """Any decoded mode -> 8-bit grey ("L"), transparent areas flattened onto white."""
    mode = img.mode
    if mode == "L" and "transparency" not in img.info:
        return img
    if mode in _SIXTEEN_BIT:
        a = np.asarray(img)
        # 16-bit grey (PNG) -> its top 8 bits; Pillow's own conversion clips at 255 instead
        return Image.fromarray((np.clip(a, 0, 65535) >> 8).astype(np.uint8), "L")
    if mode in _ALPHA or "transparency" in img.info:
        if mode == "La":
            img = img.convert("LA")
        rgba = img.convert("LA") if img.mode in ("L", "LA") else img.convert("RGBA")
        alpha = rgba.getchannel("A")
        gray = rgba.convert("L")
        if alpha.getextrema()[0] < 255:
            white = Image.new("L", gray.size, 255)
            white.paste(gray, mask=alpha)  # white * (1 - a) + grey * a
            gray = white
        return gray
    return img.convert("L")


def _reduce(gray: Image.Image, work: int | None = None) -> Image.Image:
    """Box-filter a large image by the largest power of two that keeps its short side >= work.

    Powers of two, as JPEG draft mode: a PNG and a JPEG of the same picture end up the same size.
    """
    factor = 1
    while min(gray.size) // (factor * 2) >= (work or WORK_SIZE):
        factor *= 2
    return gray.reduce(factor) if factor >= 2 else gray


def _background(a: np.ndarray) -> int:
    """Median of the four corner patches' means: robust to an item covering one corner."""
    h, w = a.shape
    k = max(1, min(_CORNER, w // 4, h // 4))
    means = sorted(int(p.sum()) / p.size for p in (a[:k, :k], a[:k, -k:], a[-k:, :k], a[-k:, -k:]))
    return round((means[1] + means[2]) / 2)


def _trim_box(a: np.ndarray, bg: int, tol: int) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the pixels whose 3 x 3 mean is further than `tol` from `bg`.

    The 3 x 3 mean takes sensor/JPEG noise down ~3x, so that it does not count as item. Pixels on
    the image border count when their inner neighbour does (edge extension, as a blur filter).
    """
    h, w = a.shape
    if h < 3 or w < 3:
        s, n, off = a.astype(np.int32), 1, 0
    else:
        b = a.astype(np.int16)
        cols3 = b[:, :-2] + b[:, 1:-1] + b[:, 2:]
        s, n, off = cols3[:-2] + cols3[1:-1] + cols3[2:], 9, 1
    m = (s < n * (bg - tol)) | (s > n * (bg + tol))
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    top = int(rows[0]) + off if rows[0] > 0 else 0
    left = int(cols[0]) + off if cols[0] > 0 else 0
    bottom = int(rows[-1]) + off + 1 if rows[-1] < m.shape[0] - 1 else h
    right = int(cols[-1]) + off + 1 if cols[-1] < m.shape[1] - 1 else w
    return left, top, right, bottom


_LEVELS = np.arange(256)
_DISTANCE = np.abs(_LEVELS[:, None] - _LEVELS[None, :]).astype(np.uint8)  # [bg, level] -> |level - bg|
# [top, d] -> d stretched so that top becomes 255, rounded (row 0 unused)
_STRETCH = np.minimum(255, (_LEVELS[None, :] * 255 + _LEVELS[:, None] // 2) // np.maximum(_LEVELS[:, None], 1)
                      ).astype(np.uint8)


def fashion_mnist_from_gray(gray: Image.Image) -> np.ndarray:
    """An 8-bit grey image (any size) -> uint8 28 x 28 in Fashion-MNIST form."""
    w, h = gray.size
    a = np.asarray(gray)
    if (w, h) == (IMAGE_SIZE, IMAGE_SIZE):
        c = sorted((int(a[0, 0]), int(a[0, -1]), int(a[-1, 0]), int(a[-1, -1])))
        return 255 - a if c[1] + c[2] > 2 * 127 else a.copy()  # negate when the corners' median is light
    bg = _background(a)
    peak = max(bg - int(a.min()), int(a.max()) - bg)  # the largest distance from the background level
    tol = max(MIN_TOLERANCE, int(TRIM_FRACTION * peak))
    box = _trim_box(a, bg, tol)
    if box is None:
        raise ImageError("empty_image", f"the image is blank: no pixel differs from the background "
                                        f"level {bg} by more than {tol} grey levels")
    bw, bh = box[2] - box[0], box[3] - box[1]
    long_side = max(bw, bh)
    size = (max(1, round(bw * IMAGE_SIZE / long_side)), max(1, round(bh * IMAGE_SIZE / long_side)))
    # area-average down to 28 (a thumbnail smaller than that is interpolated up), then take the
    # distance from the background: the negative on a light background, the image on a dark one
    resample = Image.Resampling.BOX if long_side >= IMAGE_SIZE else Image.Resampling.BILINEAR
    dist = _DISTANCE[bg][np.asarray(gray.resize(size, resample, box=box))]
    top = int(dist.max())
    if top == 0:  # averaging blurred a tiny, faint item away
        raise ImageError("empty_image", f"the image is blank: the item is too small or faint to see "
                                        f"against the background level {bg}")
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    y, x = (IMAGE_SIZE - size[1] + 1) // 2, (IMAGE_SIZE - size[0] + 1) // 2  # as Fashion-MNIST centres
    out[y : y + size[1], x : x + size[0]] = _STRETCH[top][dist]
    return np.array(Image.fromarray(out).filter(SHARPEN), dtype=np.uint8)


def to_fashion_mnist(img: Image.Image) -> np.ndarray:
    """A decoded image (any mode, any size) -> uint8 28 x 28 in Fashion-MNIST form."""
    method = orientation(img)
    gray = to_gray(img)
    if method is not None:  # before reducing, so that the reduction grid is the upright image's
        gray = gray.transpose(method)
    return fashion_mnist_from_gray(_reduce(gray))


def preprocess(data: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Image bytes -> uint8 28 x 28 array, ready for `ml.data.normalize` after stacking.

    Raises only `ImageError`; its `code` is one of `wire.errors.IMAGE_ERROR_CODES`.
    """
    img = _open_header(data, limits)
    try:
        _draft(img)
    except Exception:  # noqa: BLE001 - draft is an optimisation; decode at full size instead
        pass
    _load(img)
    try:
        return to_fashion_mnist(img)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder error surfacing late, an odd mode, memory
        raise ImageError("decode_error", f"could not process the {img.format} {img.mode} image: "
                                         f"{type(exc).__name__}: {exc}") from None
