"""Fuzz ml.preprocess with image bytes: its public promise is that only ImageError escapes, with a
code from wire.errors.IMAGE_ERROR_CODES, and that a header claiming more pixels than any limit is
refused before decoding, whatever the decoder.

Inputs: valid PNG, JPEG and WebP files of many modes, then truncated, with bytes flipped,
inserted or deleted, and with the width and height in their headers rewritten (PNG with its CRC
fixed, so the decoder believes it). The seed corpus holds a bomb per format. Budget:
tests.fuzzing (TAGGER_FUZZ_SECONDS, TAGGER_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from devtools.images import encode, png_claiming
from ml.preprocess import ImageError, preprocess
from tests.fuzzing import fuzz
from wire.errors import IMAGE_ERROR_CODES, ErrorCode

BOMB_PIXELS = 250_000_000  # more than any format's pixel limit may ever be


def _picture(mode: str, size: tuple[int, int]) -> Image.Image:
    """A dark noisy item on white, in `mode`."""
    w, h = size
    grey = np.full((h, w), 255, np.uint8)
    inner = grey[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    inner[:] = np.random.default_rng(w * h).integers(0, 120, inner.shape)
    return Image.fromarray(grey).convert(mode)


SEEDS = [encode(_picture("L", (40, 30))), encode(_picture("RGBA", (33, 47))), encode(_picture("P", (28, 28))),
         encode(_picture("RGB", (64, 48)), "JPEG", quality=70), encode(_picture("L", (50, 50)), "JPEG"),
         encode(_picture("CMYK", (20, 36)), "JPEG"), encode(_picture("RGB", (48, 40)), "WEBP"),
         encode(_picture("RGBA", (30, 30)), "WEBP", lossless=True), encode(_picture("I;16", (24, 40)))]


def _webp(kind: bytes, data: bytes) -> bytes:
    body = b"WEBP" + kind + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)
    return b"RIFF" + struct.pack("<I", len(body)) + body


BOMBS = [
    png_claiming(60_000, 60_000),
    png_claiming(2**31 - 1, 2),
    b"\xff\xd8\xff\xc0\x00\x0b\x08" + struct.pack(">HH", 65_500, 65_500) + b"\x01\x01\x11\x00" + b"\0" * 64,  # JPEG SOF0
    _webp(b"VP8L", b"\x2f" + struct.pack("<I", 16_383 | (16_383 << 14)) + b"\0" * 20),
    _webp(b"VP8X", b"\0\0\0\0" + (2**24 - 1).to_bytes(3, "little") * 2),
    _webp(b"VP8 ", b"\x50\x02\x00\x9d\x01\x2a" + struct.pack("<HH", 16_383, 16_383) + b"\0" * 30),
]


def with_size(data: bytes, width: int, height: int) -> bytes:
    """The same file claiming another width and height in its header (where the header says so)."""
    out = bytearray(data)
    if data.startswith(b"\x89PNG") and len(data) >= 33:
        out[16:24] = struct.pack(">II", width, height)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))  # the decoder checks the IHDR's CRC
    elif data.startswith(b"\xff\xd8"):
        for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
            if (at := data.find(marker)) > 0 and at + 9 <= len(data):
                out[at + 5: at + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
                break
    elif data[8:12] == b"WEBP" and data[12:16] == b"VP8L" and len(data) >= 25:
        out[21:25] = struct.pack("<I", ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14))
    elif data[8:12] == b"WEBP" and data[12:16] == b"VP8 " and len(data) >= 30:
        out[26:30] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    return bytes(out)


@st.composite
def images(draw: Any) -> bytes:
    data = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "size", "size"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            data = data[:at]
        elif op == "flip":
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
        elif op == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 16)):]
        else:  # up to 16,000 x 16,000: over any pixel limit, or small enough to decode (fast: the data is tiny)
            data = with_size(data, draw(st.integers(1, 16_000)), draw(st.integers(1, 16_000)))
    return data


def _outcome(data: bytes) -> np.ndarray | ErrorCode:
    try:
        out = preprocess(data)
    except ImageError as exc:  # the only exception allowed out, with a code the result message knows
        assert exc.code in IMAGE_ERROR_CODES, exc.code
        return exc.code
    assert out.shape == (28, 28) and out.dtype == np.uint8
    return out


def test_fuzz_image_bytes_give_an_image_or_an_image_error() -> None:
    def one(data: bytes) -> None:
        _outcome(data)

    assert fuzz(one, images(), SEEDS + BOMBS, default_seconds=15) > 0


def test_a_bomb_of_each_format_is_refused_before_decoding() -> None:
    for bomb in BOMBS:
        started = time.perf_counter()
        assert _outcome(bomb) is ErrorCode.TOO_MANY_PIXELS, bomb[:16]
        assert time.perf_counter() - started < 2.0  # the header is read, no pixel is
