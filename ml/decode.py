"""The fastest decoder per format, behind `ml.preprocess`'s header checks. Pure functions.

`preprocess` opens every image with Pillow's lazy open first: format (allowlist), size (the
per-format pixel limit), mode and EXIF come from the header, no pixel is decoded. Then, when the
image is a common kind, one of these decodes it (measured on photo-like images, see
docs/decoders.md and `python -m devtools.bench.preprocess_speed`):

- JPEG (grey or YCbCr/RGB, not CMYK): `simplejpeg` (libjpeg-turbo's TurboJPEG API), scaled by the
  same 1/2^k as Pillow's draft mode, straight to grey (or to RGB when colours are asked for).
  Strict: a libjpeg warning (truncated or corrupt data) is an error here, and the image goes
  to Pillow, which decides as it always did. Its own header reader must agree with Pillow's.
- PNG (8-bit grey, RGB, RGBA, or palette without transparency): `pyspng` (libspng), in full.
  Other kinds (16-bit, 1-bit, grey+alpha, tRNS transparency) and PNGs with an eXIf or text chunk
  after the pixel data (where Pillow would have to decode to find the orientation) go to Pillow.
- WebP (still, lossy or lossless): libwebp's `WebPDecode` through the `webp` package's bindings,
  in full; its `WebPGetFeatures` header must agree with Pillow's. Animated WebP goes to Pillow.
  A WebP's size is read from its first chunk (`webp_size`) before Pillow opens it at all:
  Pillow's WebP open allocates the canvas.

Each function returns None when the image is not of its kind, and raises (anything) when the
decoder fails: the caller then decodes with Pillow. So every error code stays Pillow's.
A missing package (a machine without the worker extra) means Pillow for that format.
"""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image

try:
    import simplejpeg
except ImportError:  # pragma: no cover - the worker extra installs it
    simplejpeg = None
try:
    import pyspng
except ImportError:  # pragma: no cover
    pyspng = None
try:
    from webp import ffi as _webp_ffi
    from webp import lib as _webp_lib
except ImportError:  # pragma: no cover
    _webp_ffi = _webp_lib = None


def jpeg(img: Image.Image, data: bytes, scale: int, colour: bool) -> np.ndarray | None:
    """A JPEG at 1/scale: H x W grey, or H x W x 4 RGBX when `colour` (and the JPEG has colour):
    4 bytes a pixel, as Pillow keeps RGB, so that Pillow can use it without a copy."""
    if simplejpeg is None or img.mode not in ("L", "RGB"):
        return None
    w, h = img.size
    ow, oh = -(-w // scale), -(-h // scale)  # libjpeg's scaled size, as Pillow's draft
    hh, hw, space, _ = simplejpeg.decode_jpeg_header(data)
    if (hw, hh) != (w, h):
        raise ValueError(f"simplejpeg reads {hw}x{hh}, Pillow {w}x{h}")
    space = "RGBX" if colour and img.mode == "RGB" and space != "Gray" else "GRAY"
    out = simplejpeg.decode_jpeg(data, space, min_height=oh, min_width=ow, strict=True)
    if out.shape[:2] != (oh, ow):
        raise ValueError(f"simplejpeg decoded {out.shape}, expected {oh}x{ow}")
    return out[:, :, 0] if space == "GRAY" else out


_PNG_LATE_METADATA = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")


def png_metadata_after_pixels(data: bytes) -> bool:
    """True when an eXIf or text chunk follows the first IDAT: Pillow reads it only by decoding."""
    pos, n, pixels = 8, len(data), False
    while pos + 8 <= n:
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(data[pos + 4 : pos + 8])
        if kind == b"IDAT":
            pixels = True
        elif kind == b"IEND":
            return False
        elif pixels and kind in _PNG_LATE_METADATA:
            return True
        pos += 12 + length
    return False


def png(img: Image.Image, data: bytes) -> tuple[np.ndarray, str] | None:
    """An 8-bit grey, RGB, RGBA or palette (no tRNS) PNG in full: (H x W, "L"), or (H x W x 4,
    "RGBA" or "RGBX"): 4 bytes a pixel, as Pillow keeps colour, so that Pillow maps it uncopied."""
    if pyspng is None or len(data) < 29:
        return None
    depth, colour_type = data[24], data[25]
    if depth != 8 or colour_type not in (0, 2, 3, 6) or "transparency" in img.info:
        return None
    if png_metadata_after_pixels(data):
        return None
    w, h = img.size
    mode = {0: "L", 2: "RGBX", 3: "RGBX", 6: "RGBA"}[colour_type]
    out = pyspng.load(bytes(data), "L" if mode == "L" else "RGBA")  # RGB and palette: alpha 255
    want = (h, w) if mode == "L" else (h, w, 4)
    if out.shape != want or out.dtype != np.uint8:
        raise ValueError(f"pyspng decoded {out.shape} {out.dtype}, expected {want} uint8")
    return out, mode


def webp_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a WebP's first chunk header (VP8, VP8L or VP8X); None if not a WebP.

    Read before Pillow opens the file: Pillow's WebP open creates libwebp's animation decoder,
    which allocates the whole canvas (w x h x 4 bytes, twice) before a pixel limit can refuse it.
    """
    head = bytes(data[:30])
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    kind = head[12:16]
    if kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # key frame start code
        w, h = struct.unpack_from("<HH", head, 26)
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def webp(img: Image.Image, data: bytes) -> tuple[np.ndarray, str] | None:
    """A still WebP in full: (H x W x 4, "RGBA" when it has alpha, else "RGBX", alpha 255)."""
    if _webp_lib is None or getattr(img, "is_animated", False) or img.mode not in ("RGB", "RGBA"):
        return None
    ffi, lib = _webp_ffi, _webp_lib
    buf = bytes(data)
    config = ffi.new("WebPDecoderConfig*")
    if not lib.WebPInitDecoderConfig(config):
        raise RuntimeError("WebPInitDecoderConfig failed")
    if lib.WebPGetFeatures(buf, len(buf), ffi.addressof(config, "input")) != lib.VP8_STATUS_OK:
        raise ValueError("WebPGetFeatures failed")
    features = config.input
    w, h = features.width, features.height
    if (w, h) != img.size or features.has_animation:
        raise ValueError(f"libwebp reads {w}x{h} (animated: {features.has_animation}), Pillow {img.size}")
    channels = 4
    out = np.empty((h, w, channels), dtype=np.uint8)
    config.output.colorspace = lib.MODE_RGBA
    config.output.is_external_memory = 1
    config.output.u.RGBA.rgba = ffi.cast("uint8_t*", ffi.from_buffer(out))
    config.output.u.RGBA.stride = w * channels
    config.output.u.RGBA.size = out.size
    status = lib.WebPDecode(buf, len(buf), config)
    lib.WebPFreeDecBuffer(ffi.addressof(config, "output"))  # frees nothing of ours (external memory)
    if status != lib.VP8_STATUS_OK:
        raise ValueError(f"WebPDecode status {status}")
    return out, "RGBA" if features.has_alpha else "RGBX"
