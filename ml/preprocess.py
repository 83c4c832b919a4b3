"""Image bytes -> one 28 x 28 uint8 image in Fashion-MNIST form. Pure functions, shared by ml and worker.

Fashion-MNIST was made from Zalando product photos by: trimming the edges close to the
colour of the corner pixels, resizing the longest edge to 28, sharpening, extending the short
edge to 28 with the item centred, negating the intensities and converting to 8-bit grey
(Xiao et al. 2017). `preprocess` does the same to a product photo, so the model sees what it
was trained on:

1. Check the byte count, the format (allowlist) and the pixel count from the header (Pillow's
   lazy open), before a single pixel is decoded; the pixel limit is per format (`Limits`), as a
   PNG or WebP costs far more per pixel than a JPEG; Pillow's decompression-bomb warning is an
   error.
2. Decode small, with the fastest decoder for the format (`ml.decode`; Pillow for the rare
   kinds and whenever a fast decoder refuses, so every error code is still Pillow's): a JPEG
   with libjpeg's scaled IDCT at 1/2, 1/4 or 1/8, straight to grey, so its short side stays
   >= WORK_SIZE (112); PNG and WebP have no such mode, so they are decoded in full, converted
   to grey and box-reduced (`Image.reduce`) by the same 2^k.
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

`preprocess_with_colours` also names the item's dominant colours (`ml.colour`) from the same
working image, in colour: a JPEG is then decoded to RGB at the same reduced size; a PNG or WebP,
decoded in full, is seen through a numpy view of the reduced grid's block centres (turned as the
EXIF asks, also by views), so that only the few hundred pixels ml.colour reads are ever touched
(transparent ones flattened onto white as they are read).

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

from ml import decode as fast
from ml.colour import NO_COLOUR, Colour, ColourResult, Geometry, dominant_colours
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
    """What a job may send. Checked before any pixel is decoded.

    `max_pixels` caps every format. A JPEG is decoded at 1/2^k scale: at 40 Mpx it costs ~10 ms
    of CPU and ~1 MB, and its worst case is bounded by its bytes (a 10 MiB noisy JPEG: ~65 ms).
    PNG and WebP have no reduced decode: every pixel is decoded (per Mpx, ~12 ms and 5.7 MB for
    an RGBA PNG, 5-11 ms and 5 MB for a WebP), and a 1.6 KB lossless WebP can claim 40 Mpx
    (0.55 s and +613 MB with Pillow's decoder). Their own caps, 16 Mpx (4,000 x 4,000), hold the
    worst case to ~0.2 s and ~90 MB (docs/decoders.md).
    """

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000  # width x height; a 20,000 x 20,000 bomb is 400 M
    formats: frozenset[str] = IMAGE_FORMATS
    max_pixels_png: int = 16_000_000
    max_pixels_webp: int = 16_000_000

    def pixel_limit(self, fmt: str | None) -> int:
        """The pixel cap for one format: `max_pixels`, or the format's own cap if lower."""
        own = {"PNG": self.max_pixels_png, "WEBP": self.max_pixels_webp}.get(fmt or "", self.max_pixels)
        return min(self.max_pixels, own)


@dataclass(frozen=True, eq=False)
class Preprocessed:
    """`preprocess_with_colours`'s result: the model input and the item's colours as plain data."""

    image: np.ndarray  # uint8 28 x 28, as `preprocess` returns
    colours: tuple[Colour, ...]  # up to 3, largest share first; empty for a greyscale image
    low_contrast: bool = False  # the top colour is close to the background's (white on white)


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
    size = fast.webp_size(data)  # before Pillow's open, which allocates a WebP's canvas
    if size is not None and "WEBP" in limits.formats and size[0] * size[1] > limits.pixel_limit("WEBP"):
        raise ImageError("too_many_pixels", f"image is {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels; "
                                            f"the limit for WEBP is {limits.pixel_limit('WEBP'):,}")
    try:
        img = Image.open(io.BytesIO(data), formats=_formats(limits.formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("too_many_pixels", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for unreadable input
        raise ImageError("unsupported_format",
                         f"not a {'/'.join(sorted(limits.formats))} image ({type(exc).__name__})") from None
    w, h = img.size
    limit = limits.pixel_limit(img.format)
    if w * h > limit:
        raise ImageError("too_many_pixels", f"image is {w}x{h} = {w * h:,} pixels; the limit for "
                                            f"{img.format} is {limit:,}")
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


def _jpeg_scale(size: tuple[int, int], work: int | None = None) -> int:
    """The smallest 1/2^k JPEG scale (k <= 3) whose short side stays >= `work`."""
    work = work or WORK_SIZE
    return next(s for s in (8, 4, 2, 1) if s == 1 or min(size) // s >= work)


def _draft(img: Image.Image, work: int | None = None, mode: str = "L") -> None:
    """Ask a JPEG decoder for grey (or `mode`) at the smallest 1/2^k scale whose short side stays >= `work`."""
    if img.format != "JPEG":
        return
    w, h = img.size
    scale = _jpeg_scale(img.size, work)
    img.draft(mode, (max(1, w // scale), max(1, h // scale)))


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
        if img.mode in ("LA", "RGBA"):  # no copy: a 40 Mpx RGBA copy is 160 MB
            rgba = img
        else:
            rgba = img.convert("LA") if img.mode == "L" else img.convert("RGBA")
        alpha = rgba.getchannel("A")
        gray = rgba.convert("L")
        if alpha.getextrema()[0] < 255:
            white = Image.new("L", gray.size, 255)
            white.paste(gray, mask=alpha)  # white * (1 - a) + grey * a
            gray = white
        return gray
    return img.convert("L")


_GREY_MODES = {"1", "L", "LA", "La", "I", "F"} | _SIXTEEN_BIT


def to_rgb(img: Image.Image) -> Image.Image | None:
    """Any decoded colour mode -> RGB, transparent areas flattened onto white; None for a grey mode."""
    if img.mode in _GREY_MODES:
        return None
    if img.mode in _ALPHA or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return img if img.mode == "RGB" else img.convert("RGB")


def _factor(size: tuple[int, int], work: int | None = None) -> int:
    """The largest power of two that keeps the short side >= work when reducing by it."""
    factor = 1
    while min(size) // (factor * 2) >= (work or WORK_SIZE):
        factor *= 2
    return factor


def _reduce(gray: Image.Image, work: int | None = None) -> Image.Image:
    """Box-filter a large image by the largest power of two that keeps its short side >= work.

    Powers of two, as JPEG draft mode: a PNG and a JPEG of the same picture end up the same size.
    """
    factor = _factor(gray.size, work)
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


def _fashion_mnist(gray: Image.Image) -> tuple[np.ndarray, Geometry, np.ndarray]:
    """An 8-bit grey image (any size) -> (uint8 28 x 28 in Fashion-MNIST form, what was found,
    the grey image as an array)."""
    w, h = gray.size
    a = np.asarray(gray)
    if (w, h) == (IMAGE_SIZE, IMAGE_SIZE):
        c = sorted((int(a[0, 0]), int(a[0, -1]), int(a[-1, 0]), int(a[-1, -1])))
        light = c[1] + c[2] > 2 * 127  # negate when the corners' median is light
        geometry = Geometry(round((c[1] + c[2]) / 2), MIN_TOLERANCE, (0, 0, w, h), darker=light)
        return (255 - a if light else a.copy()), geometry, a
    bg = _background(a)
    darkest, lightest = bg - int(a.min()), int(a.max()) - bg
    peak = max(darkest, lightest)  # the largest distance from the background level
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
    geometry = Geometry(bg, tol, box, peak, darker=darkest >= lightest)
    return np.array(Image.fromarray(out).filter(SHARPEN), dtype=np.uint8), geometry, a


def fashion_mnist_from_gray(gray: Image.Image) -> np.ndarray:
    """An 8-bit grey image (any size) -> uint8 28 x 28 in Fashion-MNIST form."""
    return _fashion_mnist(gray)[0]


def to_fashion_mnist(img: Image.Image) -> np.ndarray:
    """A decoded image (any mode, any size) -> uint8 28 x 28 in Fashion-MNIST form."""
    method = orientation(img)
    gray = to_gray(img)
    if method is not None:  # before reducing, so that the reduction grid is the upright image's
        gray = gray.transpose(method)
    return fashion_mnist_from_gray(_reduce(gray))


# ---------------------------------------------------------------------------------------------
# the working image: grey (and colour samples) at WORK_SIZE or a little more, upright


@dataclass(frozen=True)
class _Work:
    gray: Image.Image  # "L", the working size, upright
    # the colour pixels as a numpy view, upright, at the working size: H x W x 3 or 4 (RGBX; or
    # RGBA when `alpha`, flattened onto white where ml.colour reads it); None: a grey source
    rgb: np.ndarray | None
    alpha: bool = False


# Image.Transpose as numpy views: ml.colour reads a few hundred of the colour pixels, so they are
# never copied; turning or sampling a full-size decode would touch every pixel, or thousands.
_VIEW = {
    Image.Transpose.FLIP_LEFT_RIGHT: lambda a: a[:, ::-1],
    Image.Transpose.FLIP_TOP_BOTTOM: lambda a: a[::-1],
    Image.Transpose.ROTATE_90: lambda a: a.swapaxes(0, 1)[::-1],  # counter-clockwise
    Image.Transpose.ROTATE_180: lambda a: a[::-1, ::-1],
    Image.Transpose.ROTATE_270: lambda a: a.swapaxes(0, 1)[:, ::-1],
    Image.Transpose.TRANSPOSE: lambda a: a.swapaxes(0, 1),
    Image.Transpose.TRANSVERSE: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
}


def upright_view(rgb: np.ndarray, method: Image.Transpose | None, factor: int) -> np.ndarray:
    """`rgb` (H x W x C) transposed as Pillow's `method`, then the centre pixel of each factor x
    factor block: the colour pixels on the grid of the reduced grey image, without averaging the
    item into its background at the edges. A view: no pixel is read or copied here. (A partial
    last block has no centre and no pixel; ml.colour takes the common size.)"""
    if method is not None:
        rgb = _VIEW[method](rgb)
    if factor >= 2:
        o = factor // 2
        rgb = rgb[o::factor, o::factor]
    return rgb


def _upright(gray: Image.Image, rgb: np.ndarray | None, method: Image.Transpose | None, factor: int,
             alpha: bool = False) -> _Work:
    """Transpose (before reducing, so that the reduction grid is the upright image's), then reduce."""
    if method is not None:
        gray = gray.transpose(method)
    if factor >= 2:
        gray = gray.reduce(factor)
    return _Work(gray, None if rgb is None else upright_view(rgb, method, factor), alpha)


def rgbx_to_gray(arr: np.ndarray) -> Image.Image:
    """H x W x 4 RGBX (a colour JPEG's decode) -> the grey working image, without copying the input."""
    return Image.frombuffer("RGBX", (arr.shape[1], arr.shape[0]), arr, "raw", "RGBX", 0, 1).convert("L")


def _fast_work(img: Image.Image, data: bytes, colour: bool) -> _Work | None:
    """The working image from the format's fast decoder (`ml.decode`); None: use Pillow."""
    if img.format == "JPEG":
        arr = fast.jpeg(img, data, _jpeg_scale(img.size), colour)
        if arr is None:
            return None
        if arr.ndim == 3:  # RGBX
            rgb = arr
            gray = rgbx_to_gray(arr)
        else:
            rgb, gray = None, Image.fromarray(arr, "L")
        return _upright(gray, rgb, orientation(img), _factor(gray.size))
    if img.format == "PNG":
        decoded = fast.png(img, data)
        method = None
        if decoded is not None:  # no EXIF or XMP after the pixels: the header's metadata is all there is
            method = _transpose_for(Image.Image.getexif(img))
    elif img.format == "WEBP":
        decoded = fast.webp(img, data)
        method = orientation(img) if decoded is not None else None
    else:
        return None
    if decoded is None:
        return None
    arr, mode = decoded
    h, w = arr.shape[:2]
    gray = to_gray(Image.frombuffer(mode, (w, h), arr, "raw", mode, 0, 1))  # no copy
    rgb = arr if colour and mode != "L" else None
    return _upright(gray, rgb, method, _factor((w, h)), alpha=mode == "RGBA")


def _transpose_for(exif: Image.Exif) -> Image.Transpose | None:
    try:
        return _ORIENTATION.get(exif.get(0x0112, 1))
    except Exception:  # noqa: BLE001 - the pixels are fine even when the metadata is not
        return None


def _pillow_work(img: Image.Image, colour: bool) -> _Work:
    """The working image decoded by Pillow (JPEG in draft mode): every kind of image."""
    try:
        _draft(img, mode="RGB" if colour and img.mode == "RGB" else "L")
    except Exception:  # noqa: BLE001 - draft is an optimisation; decode at full size instead
        pass
    _load(img)
    method = orientation(img)
    gray = to_gray(img)
    rgb = to_rgb(img) if colour else None
    return _upright(gray, np.asarray(rgb) if rgb is not None else None, method, _factor(gray.size))


def _run(data: bytes, limits: Limits, colour: bool, use_fast: bool = True) -> tuple[np.ndarray, ColourResult]:
    img = _open_header(data, limits)
    if img.size == (IMAGE_SIZE, IMAGE_SIZE) and img.mode == "L" and "transparency" not in img.info:
        # Already Fashion-MNIST's size and mode (the bulk of 28 x 28 traffic): Pillow decodes it in
        # a few microseconds, and the fast decoders' and colours' set-up would cost more than that.
        _load(img)
        gray = img.transpose(method) if (method := orientation(img)) is not None else img
        return _fashion_mnist(gray)[0], NO_COLOUR
    work = None
    if use_fast:
        try:
            work = _fast_work(img, data, colour)
        except Exception:  # noqa: BLE001 - the fast decoder refused: Pillow decides, as it always did
            work = None
    try:
        if work is None:
            work = _pillow_work(img, colour)
        image, geometry, gray = _fashion_mnist(work.gray)
        colours = dominant_colours(gray, work.rgb, geometry, alpha=work.alpha) if colour else NO_COLOUR
        return image, colours
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder error surfacing late, an odd mode, memory
        raise ImageError("decode_error", f"could not process the {img.format} {img.mode} image: "
                                         f"{type(exc).__name__}: {exc}") from None


def preprocess(data: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Image bytes -> uint8 28 x 28 array, ready for `ml.data.normalize` after stacking.

    Raises only `ImageError`; its `code` is one of `wire.errors.IMAGE_ERROR_CODES`.
    """
    return _run(data, limits, colour=False)[0]


def preprocess_with_colours(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Preprocessed:
    """Image bytes -> the model input and the item's dominant colours (`ml.colour`).

    The image is `preprocess`'s but for a colour JPEG, whose grey then comes from the RGB
    decode (the same to +-1 grey level, the same tags on photo-like images: docs/colour.md).
    Raises only `ImageError`; its `code` is one of `wire.errors.IMAGE_ERROR_CODES`.
    """
    image, colours = _run(data, limits, colour=True)
    return Preprocessed(image, colours.colours, colours.low_contrast)


def preprocess_pillow(data: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """`preprocess` with Pillow's decoders only (the path before ml.decode): for comparisons."""
    return _run(data, limits, colour=False, use_fast=False)[0]
