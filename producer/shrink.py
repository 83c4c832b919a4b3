"""Shrinking a large photo before it is sent: an optional client feature that needs Pillow only
(`pip install pillow`; no numpy, no torch).

The worker reduces every photo to a working image of 112-224 px on its short side
(`ml.preprocess.WORK_SIZE`), so the pixels beyond a few hundred on a side only cost bytes on the
wire, in Redis and in the worker's decoder. `shrink(image_bytes, max_side)` returns a JPEG (or a
PNG, for an image with transparency) no larger than max_side on its long side, upright (the EXIF
orientation applied), or the original bytes when they are already small enough or when shrinking
would not make them smaller. The default max_side, 512, keeps the tags (docs/decoders.md):

    python -m ml.shrink_eval --checkpoint models/compact/model.pt --subset 2000
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

MAX_SIDE = 512
JPEG_QUALITY = 90
FORMATS = ("JPEG", "PNG", "WEBP")


def shrink(image_bytes: bytes, max_side: int = MAX_SIDE, quality: int = JPEG_QUALITY) -> bytes:
    """`image_bytes` (JPEG, PNG or WebP) with its long side at most `max_side` pixels.

    Returns the input unchanged when it is not one of those formats or cannot be read (the
    service then gives its own error), when it is already small enough, or when the shrunk
    encoding would be larger. A JPEG is decoded with libjpeg's scaled decode (draft mode) first.
    """
    try:
        img = Image.open(io.BytesIO(image_bytes), formats=FORMATS)
        w, h = img.size
        if max(w, h) <= max_side:
            return image_bytes
        if img.format == "JPEG":  # decode at the smallest 1/2^k scale still >= max_side
            img.draft("RGB" if img.mode not in ("L", "CMYK") else img.mode, (max_side, max_side))
        img = ImageOps.exif_transpose(img)  # upright; the result carries no orientation tag
        alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
        if alpha:
            img = img.convert("LA" if img.mode in ("L", "LA", "La") else "RGBA")
        elif img.mode not in ("L", "RGB"):
            img = img.convert("L" if img.mode in ("1", "I", "I;16", "F") else "RGB")
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        out = io.BytesIO()
        if alpha:
            img.save(out, "PNG")
        else:
            img.save(out, "JPEG", quality=quality)
    except Exception:  # noqa: BLE001 - a client helper: the service reports bad images itself
        return image_bytes
    shrunk = out.getvalue()
    return shrunk if len(shrunk) < len(image_bytes) else image_bytes
