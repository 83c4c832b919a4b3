"""ml.preprocess: product photos (any format, mode, size, orientation) -> 28 x 28 in Fashion-MNIST form."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from devtools.images import encode, png_claiming
from ml import photos
from ml.constants import CLASSES
from ml.preprocess import DEFAULT_LIMITS, ImageError, Limits, open_image, preprocess
from tests.unit.conftest import tags
from wire.errors import IMAGE_ERROR_CODES
from worker.settings import REPO_ROOT

SEED_MODEL = REPO_ROOT / "models" / "seed" / "model.pt"


# ---------------------------------------------------------------------------------------------
# helpers


def code_of(data, limits: Limits = DEFAULT_LIMITS) -> str:
    with pytest.raises(ImageError) as info:
        preprocess(data, limits)
    assert info.value.code in IMAGE_ERROR_CODES
    return info.value.code


@pytest.fixture(scope="module")
def item(dataset) -> np.ndarray:
    """An ankle boot (test image 0): asymmetric left/right and top/bottom."""
    assert int(dataset.test.labels[0]) == CLASSES.index("Ankle boot")
    return dataset.test.images[0].numpy()


@pytest.fixture(scope="module")
def photo(item) -> Image.Image:
    """The item x10 (nearest: exact pixels), dark on a white 400 x 360 canvas, off centre."""
    canvas = Image.new("L", (400, 360), 255)
    canvas.paste(Image.fromarray(255 - item).resize((280, 280), Image.Resampling.NEAREST), (70, 40))
    return canvas


@pytest.fixture(scope="module")
def reference(photo) -> np.ndarray:
    return preprocess(encode(photo))


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST form passes through


def test_fashion_mnist_images_pass_through_exactly(dataset, seed_model) -> None:
    x = dataset.test.images[:500].numpy()
    out = np.stack([preprocess(encode(Image.fromarray(a))) for a in x])
    assert out.dtype == np.uint8 and out.shape == (500, 28, 28)
    assert np.array_equal(out, x)
    # also as RGB PNG, as JPEG-free WebP, and negated (dark item on white): same pixels
    for i in range(0, 500, 50):
        a = x[i]
        assert np.array_equal(preprocess(encode(Image.fromarray(a).convert("RGB"))), a)
        assert np.array_equal(preprocess(encode(Image.fromarray(a), "WEBP", lossless=True)), a)
        assert np.array_equal(preprocess(encode(Image.fromarray(255 - a))), a)
    assert tags(seed_model, list(out)) == tags(seed_model, list(x))


def test_the_result_is_a_fresh_writable_array(dataset, photo) -> None:
    for data in (encode(Image.fromarray(dataset.test.images[1].numpy())), encode(photo)):
        a = preprocess(data)
        assert a.flags.writeable and a.flags.c_contiguous and a.shape == (28, 28)


def test_an_upscaled_fashion_mnist_image_keeps_its_tag(dataset, seed_model) -> None:
    x = dataset.test.images[:200].numpy()
    out = [preprocess(encode(Image.fromarray(a).resize((140, 140), Image.Resampling.NEAREST))) for a in x]
    agree = np.mean(np.array(tags(seed_model, out)) == np.array(tags(seed_model, list(x))))
    assert agree >= 0.9, agree


# ---------------------------------------------------------------------------------------------
# the photo pipeline


def test_a_photo_is_trimmed_resized_centred_and_negated(item, reference) -> None:
    # 10x nearest upscaling, then trim + area average: the original's geometry and levels, sharpened
    assert reference.shape == (28, 28) and reference.max() == 255
    rows, cols = np.flatnonzero(reference.max(1) > 20), np.flatnonzero(reference.max(0) > 20)
    want_rows, want_cols = np.flatnonzero(item.max(1) > 20), np.flatnonzero(item.max(0) > 20)
    assert abs(rows[0] - want_rows[0]) <= 1 and abs(rows[-1] - want_rows[-1]) <= 1
    assert abs(cols[0] - want_cols[0]) <= 1 and abs(cols[-1] - want_cols[-1]) <= 1
    assert np.corrcoef(reference.ravel(), item.ravel())[0, 1] > 0.95
    assert reference[:, 0].max() <= 20 or item[:, 0].max() > 0  # background stays dark


def test_aspect_ratio_is_kept_and_the_short_side_centred() -> None:
    bar = Image.new("L", (600, 300), 255)
    bar.paste(0, (100, 100, 500, 200))  # a 400 x 100 black bar: 28 x 7 after resizing
    out = preprocess(encode(bar))
    rows = np.flatnonzero(out.max(1) > 128)
    assert out[:, :].max() == 255 and len(rows) in (7, 8, 9)  # 7 rows, +-1 for the sharpening halo
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1  # centred vertically
    assert out[13].min() >= 200  # spans the full width


def test_light_and_dark_backgrounds_give_the_same_image_and_tag(dataset, seed_model) -> None:
    """The same item on a light and on a dark background (colours mirrored), rendered as JPEG photos."""
    light, dark, clean = [], [], []
    for i in range(60):
        a = dataset.test.images[i].numpy()
        for kind, out in (("light", light), ("dark", dark)):
            rng = np.random.default_rng([5, i])  # same canvas, scale, offset, colour
            img = photos.render_image(a, rng, background=kind)
            out.append(preprocess(encode(img, "JPEG", quality=92)))
        clean.append(a)
    light_tags, dark_tags = tags(seed_model, light), tags(seed_model, dark)
    assert np.mean(np.array(light_tags) == np.array(dark_tags)) >= 0.95
    assert np.abs(np.stack(light).astype(int) - np.stack(dark)).mean() < 6
    # and on a plain white vs a plain black background: the same up to rounding
    a = dataset.test.images[7].numpy()
    on_black, on_white = Image.new("L", (300, 300), 0), Image.new("L", (300, 300), 255)
    big = Image.fromarray(a).resize((196, 196), Image.Resampling.BICUBIC)
    on_black.paste(big, (50, 60))
    on_white.paste(Image.fromarray(255 - np.asarray(big)), (50, 60))
    diff = np.abs(preprocess(encode(on_black)).astype(int) - preprocess(encode(on_white)))
    assert diff.mean() < 1 and diff.max() <= 8


def test_a_pale_item_is_stretched_to_full_contrast(dataset, seed_model) -> None:
    """Items only 60 grey levels darker than white come out like full-contrast ones."""
    full, pale = [], []
    for i in range(20):
        canvas = Image.new("L", (400, 360), 255)
        canvas.paste(Image.fromarray(255 - dataset.test.images[i].numpy()).resize((280, 280)), (70, 40))
        light = Image.fromarray((195 + np.asarray(canvas, dtype=np.uint16) * 60 // 255).astype(np.uint8))
        full.append(preprocess(encode(canvas)))
        pale.append(preprocess(encode(light, "JPEG", quality=90)))
        assert pale[-1].max() == 255
    diff = np.abs(np.stack(full).astype(int) - np.stack(pale)).mean(axis=(1, 2))
    assert np.median(diff) < 8, diff  # a pale item loses some of its faint fringe to the trim
    assert np.mean(np.array(tags(seed_model, full)) == np.array(tags(seed_model, pale))) >= 0.9


def test_a_blank_picture_is_an_empty_image_error() -> None:
    assert code_of(encode(Image.new("RGB", (300, 200), (240, 240, 240)))) == "empty_image"
    noise = np.clip(np.random.default_rng(0).normal(240, 2, (200, 300)), 0, 255).astype(np.uint8)
    assert code_of(encode(Image.fromarray(noise), "JPEG", quality=80)) == "empty_image"


# ---------------------------------------------------------------------------------------------
# modes, orientation, transparency


def _modes(photo: Image.Image) -> dict[str, bytes]:
    rgb = photo.convert("RGB")
    tinted = Image.merge("RGB", [photo, photo.point(lambda v: v * 0.9), photo])  # a coloured item
    return {
        "L": encode(photo),
        "LA": encode(photo.convert("LA")),
        "RGB": encode(rgb),
        "RGB (tinted)": encode(tinted),
        "RGBA": encode(rgb.convert("RGBA")),
        "P": encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)),
        "I;16": encode(Image.fromarray(np.asarray(photo).astype(np.uint16) * 257)),
        "1": encode(photo.point(lambda v: 255 if v > 127 else 0).convert("1")),
        "JPEG L": encode(photo, "JPEG", quality=95),
        "JPEG RGB": encode(rgb, "JPEG", quality=95),
        "JPEG CMYK": encode(rgb.convert("CMYK"), "JPEG", quality=95),
        "WEBP RGB": encode(rgb, "WEBP", lossless=True),
        "WEBP lossy": encode(rgb, "WEBP", quality=90),
    }


def test_every_mode_gives_the_same_result(photo, reference, seed_model) -> None:
    results = {}
    for name, data in _modes(photo).items():
        mode = Image.open(io.BytesIO(data)).mode
        out = preprocess(data)
        assert out.shape == (28, 28) and out.dtype == np.uint8, name
        if name == "1":  # a black and white silhouette: the same place and size, not the same shading
            got, want = np.flatnonzero(out.max(0) > 64), np.flatnonzero(reference.max(0) > 64)
            assert abs(got[0] - want[0]) <= 1 and abs(got[-1] - want[-1]) <= 1
            continue
        err = np.abs(out.astype(int) - reference).mean()
        assert err < 3, (name, mode, err)
        results[name] = out
    assert {Image.open(io.BytesIO(d)).mode for d in _modes(photo).values()} >= {
        "L", "LA", "RGB", "RGBA", "P", "I;16", "1", "CMYK"}
    want = tags(seed_model, [reference])[0]
    assert want == CLASSES.index("Ankle boot")
    assert tags(seed_model, list(results.values())) == [want] * len(results)


def test_sixteen_bit_grey_is_scaled_not_clipped(photo, reference) -> None:
    data = encode(Image.fromarray(np.asarray(photo).astype(np.uint16) * 257))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    assert np.array_equal(preprocess(data), reference)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_is_applied(photo, fmt: str, orientation: int) -> None:
    """Stored rotated/flipped with the EXIF tag that undoes it: the same as the upright image."""
    undo = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_270}[orientation]
    stored = photo.convert("RGB").transpose(undo)  # orientation o displays `stored` upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    kw = {"JPEG": {"quality": 95}, "PNG": {}, "WEBP": {"lossless": True}}[fmt]
    data = encode(stored, fmt, exif=exif.tobytes(), **kw)
    assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == orientation
    out = preprocess(data)
    upright = preprocess(encode(photo.convert("RGB"), fmt, **kw))
    if fmt == "JPEG":  # lossy: the rotated pixels compress a little differently
        assert np.abs(out.astype(int) - upright).mean() < 1.5, orientation
    else:
        assert np.array_equal(out, upright), orientation
    # without the tag it would not match (the boot is asymmetric)
    plain = preprocess(encode(stored, fmt, **kw))
    assert np.abs(plain.astype(int) - upright).mean() > 10


def _cutout(item: np.ndarray) -> Image.Image:
    """A black item whose opacity is its Fashion-MNIST intensity, like `photo` on a transparent canvas."""
    alpha = Image.new("L", (400, 360), 0)
    alpha.paste(Image.fromarray(item).resize((280, 280), Image.Resampling.NEAREST), (70, 40))
    rgba = Image.new("RGBA", alpha.size, (0, 0, 0, 0))
    rgba.putalpha(alpha)
    return rgba


def test_transparent_areas_count_as_background(item, reference) -> None:
    data = np.asarray(_cutout(item)).copy()
    data[..., :3][data[..., 3] == 0] = (255, 0, 255)  # fully transparent pixels may hold any colour
    cut = Image.fromarray(data, "RGBA")
    for name, blob in {
        "RGBA PNG": encode(cut),
        "LA PNG": encode(cut.convert("LA")),
        "RGBA WebP": encode(cut, "WEBP", lossless=True),
        "P PNG with transparency": encode(cut.convert("P")),
    }.items():
        img = Image.open(io.BytesIO(blob))
        assert img.mode in ("RGBA", "LA", "P") and (img.mode != "P" or "transparency" in img.info), name
        out = preprocess(blob)
        assert np.abs(out.astype(int) - reference).mean() < (5 if name.startswith("P") else 1.5), name  # P: 256 colours


def test_transparency_key_colour_counts_as_background(photo, reference) -> None:
    """RGB and L PNGs with a tRNS key colour: the keyed pixels are background, whatever their value."""
    keyed = Image.fromarray(np.where(np.asarray(photo) == 255, 7, np.asarray(photo)).astype(np.uint8))
    assert np.array_equal(preprocess(encode(keyed, transparency=7)), reference)
    assert np.array_equal(preprocess(encode(keyed.convert("RGB"), transparency=(7, 7, 7))), reference)


# ---------------------------------------------------------------------------------------------
# limits and errors


def test_limits_on_bytes_pixels_and_format(photo) -> None:
    assert code_of(b"") == "empty_image"
    assert code_of(None) == "empty_image"
    assert code_of("a string") == "unsupported_format"
    small = encode(photo)
    assert code_of(small, Limits(max_bytes=len(small) - 1)) == "image_too_large"
    assert preprocess(small, Limits(max_bytes=len(small))).shape == (28, 28)
    assert code_of(small, Limits(max_pixels=400 * 360 - 1)) == "too_many_pixels"
    assert code_of(encode(photo, "GIF")) == "unsupported_format"
    assert code_of(encode(photo, "BMP")) == "unsupported_format"
    assert code_of(encode(photo, "TIFF")) == "unsupported_format"
    assert code_of(encode(photo, "JPEG"), Limits(formats=frozenset({"PNG"}))) == "unsupported_format"
    assert code_of(b"not an image at all") == "unsupported_format"


@pytest.mark.parametrize("size", [(20_000, 20_000), (10_000, 10_000), (8_000, 6_000), (65_535, 1)])
def test_huge_headers_are_refused_before_decoding(size) -> None:
    """20,000 x 20,000 is Pillow's DecompressionBombError, 10,000 x 10,000 its warning (an error
    here), 8,000 x 6,000 our own 40 M limit; none allocates the pixels (checked by tracemalloc)."""
    import tracemalloc

    data = png_claiming(*size)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError) as info:
            preprocess(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = "too_many_pixels" if size[0] * size[1] > DEFAULT_LIMITS.max_pixels else "decode_error"
    assert info.value.code == expected
    assert peak < 5_000_000


def test_truncated_and_corrupt_images_are_decode_errors(photo) -> None:
    for fmt in ("PNG", "JPEG", "WEBP"):
        data = encode(photo.convert("RGB"), fmt)
        assert code_of(data[: len(data) // 2]) in ("decode_error", "unsupported_format"), fmt
    png = bytearray(encode(photo))
    idat = png.index(b"IDAT")
    png[idat + 10 : idat + 30] = b"\xff" * 20  # corrupt compressed data, CRC now wrong too
    assert code_of(bytes(png)) == "decode_error"


def test_no_other_exception_escapes_for_random_or_mutated_bytes(photo) -> None:
    """A small fuzz: random bytes, truncations and byte flips of valid PNG, JPEG and WebP files."""
    rng = np.random.default_rng(0)
    seeds = [encode(photo.convert("RGB"), "JPEG", quality=80), encode(photo.convert("RGBA")),
             encode(photo.convert("RGB"), "WEBP"), encode(photo.convert("RGB").resize((56, 50)), "JPEG")]
    cases = [rng.bytes(int(n)) for n in rng.integers(0, 3000, 40)]
    cases += [b"\x89PNG\r\n\x1a\n" + rng.bytes(200), b"\xff\xd8\xff" + rng.bytes(200), b"RIFF\0\0\0\0WEBPVP8 "]
    for data in seeds:
        cases += [data[: int(n)] for n in rng.integers(1, len(data), 25)]
        for _ in range(60):
            mutated = bytearray(data)
            for pos in rng.integers(0, len(data), int(rng.integers(1, 8))):
                mutated[pos] = int(rng.integers(0, 256))
            cases.append(bytes(mutated))
    codes = set()
    for data in cases:
        try:
            out = preprocess(data)
            assert out.shape == (28, 28) and out.dtype == np.uint8
        except ImageError as exc:
            assert exc.code in IMAGE_ERROR_CODES
            codes.add(exc.code)
    assert {"unsupported_format", "decode_error"} <= codes


def test_open_image_still_decodes_in_full(photo) -> None:
    img = open_image(encode(photo, "JPEG"))
    assert img.size == (400, 360) and img.mode == "L"


# ---------------------------------------------------------------------------------------------
# the fast decoders, per-format limits, shrink


def _fast_kinds(photo: Image.Image) -> dict[str, bytes]:
    rgb = Image.merge("RGB", [photo, photo.point(lambda v: v * 0.8), photo])
    rgba = rgb.convert("RGBA")
    rgba.putalpha(photo.point(lambda v: 255 - v // 2))
    return {
        "PNG RGB": encode(rgb), "PNG RGBA": encode(rgba), "PNG L": encode(photo),
        "PNG P": encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)),
        "JPEG RGB": encode(rgb, "JPEG", quality=90), "JPEG L": encode(photo, "JPEG", quality=90),
        "JPEG 1600 px": encode(rgb.resize((1600, 1440)), "JPEG", quality=85),
        "WEBP lossy": encode(rgb, "WEBP", quality=85), "WEBP lossless": encode(rgb, "WEBP", lossless=True),
        "WEBP alpha": encode(rgba, "WEBP", quality=85),
    }


def test_fast_decoders_give_pillows_result(photo, monkeypatch) -> None:
    """Each common kind goes through its fast decoder, bit-identical to the Pillow-only path."""
    from ml import preprocess as pre

    kinds = _fast_kinds(photo)
    want = {name: pre.preprocess_pillow(data) for name, data in kinds.items()}

    def no_pillow(img, colour):
        raise AssertionError(f"{img.format} {img.mode} went to Pillow")

    monkeypatch.setattr(pre, "_pillow_work", no_pillow)
    for name, data in kinds.items():
        assert np.array_equal(preprocess(data), want[name]), name


def test_rare_kinds_and_refusals_go_to_pillow(photo, monkeypatch) -> None:
    from ml import decode
    from ml import preprocess as pre

    rgb = photo.convert("RGB")
    rare = {
        "JPEG CMYK": encode(rgb.convert("CMYK"), "JPEG", quality=95),
        "PNG 16-bit": encode(Image.fromarray(np.asarray(photo).astype(np.uint16) * 257)),
        "PNG LA": encode(photo.convert("LA")),
        "PNG P with tRNS": encode(rgb.convert("P"), transparency=0),
        "PNG 1-bit": encode(photo.convert("1")),
    }
    seen = []
    real = pre._pillow_work
    monkeypatch.setattr(pre, "_pillow_work", lambda img, colour: (seen.append(img.format), real(img, colour))[1])
    for name, data in rare.items():
        assert preprocess(data).shape == (28, 28), name
    assert len(seen) == len(rare)
    # a fast decoder that fails, or a package that is missing: Pillow decides, with the same result
    kinds = _fast_kinds(photo)
    want = {name: pre.preprocess_pillow(data) for name, data in kinds.items()}

    def refuse(*args, **kwargs):
        raise ValueError("refused")

    for attr in ("jpeg", "png", "webp"):
        monkeypatch.setattr(decode, attr, refuse)
    for name, data in kinds.items():
        assert np.array_equal(preprocess(data), want[name]), name
    monkeypatch.undo()
    for attr in ("simplejpeg", "pyspng", "_webp_lib"):
        monkeypatch.setattr(decode, attr, None)
    for name, data in kinds.items():
        assert np.array_equal(preprocess(data), want[name]), name


def _move_chunk_after_idat(png: bytes, kind: bytes) -> bytes:
    """The same PNG with its `kind` chunk moved from before the pixel data to after it."""
    pos, chunks = 8, []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        chunks.append(png[pos : pos + 12 + length])
        pos += 12 + length
    moved = [c for c in chunks if c[4:8] == kind]
    rest = [c for c in chunks if c[4:8] != kind]
    last_idat = max(i for i, c in enumerate(rest) if c[4:8] == b"IDAT")
    return png[:8] + b"".join(rest[: last_idat + 1] + moved + rest[last_idat + 1 :])


def test_png_orientation_after_the_pixels_is_still_applied(photo) -> None:
    """pyspng does not read metadata and Pillow's header does not reach past IDAT: such a PNG
    goes to Pillow, whose decode reads it, instead of being left unrotated."""
    from ml import decode

    stored = photo.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    early = encode(stored, exif=exif.tobytes())
    late = _move_chunk_after_idat(early, b"eXIf")
    assert late != early and not decode.png_metadata_after_pixels(early) and decode.png_metadata_after_pixels(late)
    upright = preprocess(encode(photo.convert("RGB")))
    assert np.array_equal(preprocess(early), upright)
    assert np.array_equal(preprocess(late), upright)


def test_pixel_limits_are_per_format(photo) -> None:
    assert DEFAULT_LIMITS.pixel_limit("JPEG") == 40_000_000
    assert DEFAULT_LIMITS.pixel_limit("PNG") == DEFAULT_LIMITS.pixel_limit("WEBP") == 16_000_000
    assert Limits(max_pixels=1_000_000).pixel_limit("PNG") == 1_000_000  # the general cap still caps
    assert code_of(png_claiming(4001, 4000)) == "too_many_pixels"  # 16.004 M: over PNG's cap
    assert code_of(png_claiming(4001, 4000), Limits(max_pixels_png=20_000_000)) == "decode_error"
    rgb = photo.convert("RGB")  # 400 x 360 = 144,000 pixels
    small = Limits(max_pixels_png=100_000, max_pixels_webp=100_000)
    assert code_of(encode(rgb), small) == "too_many_pixels"
    assert code_of(encode(rgb, "WEBP", lossless=True), small) == "too_many_pixels"
    assert preprocess(encode(rgb, "JPEG"), small).shape == (28, 28)


def test_a_lossless_webp_bomb_is_refused_from_its_header() -> None:
    """A VP8L header claiming 16,383 x 2,442 (40 M pixels), as the 1.6 KB bomb of issue 11: read
    before Pillow opens it (Pillow's WebP open allocates the canvas), whatever the body holds."""
    import tracemalloc

    from ml import decode

    bits = (16383 - 1) | ((2442 - 1) << 14)  # 14-bit width - 1, 14-bit height - 1, no alpha, version 0
    vp8l = b"\x2f" + bits.to_bytes(4, "little") + bytes(200)
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    data = b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk
    assert decode.webp_size(data) == (16383, 2442)
    tracemalloc.start()
    try:
        assert code_of(data) == "too_many_pixels"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    # the header reader agrees with Pillow on real files of each kind (VP8, VP8L, VP8X)
    img = Image.new("RGB", (301, 157), (200, 30, 40))
    rgba = img.convert("RGBA")
    exif = Image.Exif()
    exif[0x0112] = 3
    for kw in ({"quality": 80}, {"lossless": True}, {"quality": 80, "exif": exif.tobytes()}):
        assert decode.webp_size(encode(img, "WEBP", **kw)) == (301, 157), kw
    assert decode.webp_size(encode(rgba, "WEBP", quality=80)) == (301, 157)
    assert decode.webp_size(encode(img, "PNG")) is None
