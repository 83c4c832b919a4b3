"""ml.colour through ml.preprocess.preprocess_with_colours: names, backgrounds, grey inputs, renders."""

from __future__ import annotations

import io
import re
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image

from ml import colour, colour_eval, photos
from ml.preprocess import _ORIENTATION as ORIENTATION
from ml.preprocess import ImageError, preprocess, preprocess_with_colours, upright_view
from wire.errors import IMAGE_ERROR_CODES


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def silhouette(size: tuple[int, int] = (400, 360)) -> Image.Image:
    """A solid boot-like shape (255 inside, 0 outside) at 280 x 280, off centre."""
    yy, xx = np.mgrid[0:28, 0:28]
    shape = ((yy > 4) & (yy < 24) & (xx > 5) & (xx < 14)) | ((yy > 16) & (yy < 24) & (xx > 5) & (xx < 25))
    mask = Image.fromarray(np.where(shape, 255, 0).astype(np.uint8)).resize((280, 280), Image.Resampling.BICUBIC)
    out = Image.new("L", size, 0)
    out.paste(mask, (70, 40))
    return out


def item_on(colour_rgb, background=(255, 255, 255), mode: str = "RGB") -> Image.Image:
    mask = silhouette()
    img = Image.new("RGB", mask.size, background)
    img.paste(tuple(colour_rgb), (0, 0), mask)
    return img.convert(mode)


def names(data: bytes) -> list[str]:
    return [c.name for c in preprocess_with_colours(data).colours]


# ---------------------------------------------------------------------------------------------
# the palette


def test_every_palette_colour_is_named_as_itself() -> None:
    """Each name's reference colours, as a solid item, PNG and JPEG: 100% (the neutral ones on a
    warm off-white studio background, white on a grey one: an all-grey picture has no colour)."""
    misses = []
    for name, refs in colour.PALETTE.items():
        for ref in refs:
            rgb = colour.hex_to_rgb(ref)
            assert colour.nearest_name(rgb) == name
            bg = (128, 128, 140) if name == "white" else (250, 247, 240)
            img = item_on(rgb, bg)
            for fmt, kw in (("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {"quality": 90})):
                got = names(encode(img, fmt, **kw))
                if not got or got[0] != name:
                    misses.append((name, ref, fmt, got))
    assert not misses, misses


def test_the_reported_colour_is_plain_data() -> None:
    result = preprocess_with_colours(encode(item_on((200, 30, 40))))
    assert result.image.shape == (28, 28) and result.image.dtype == np.uint8
    (top,) = result.colours
    assert asdict(top) == {"name": "red", "hex": top.hex, "share": 1.0}
    assert re.fullmatch(r"#[0-9a-f]{6}", top.hex)
    assert np.abs(np.array(colour.hex_to_rgb(top.hex)) - (200, 30, 40)).max() <= 3
    assert not result.low_contrast


def test_palette_names_are_unique_and_references_well_apart() -> None:
    assert len(colour.NAMES) == len(set(colour.NAMES)) == 16
    lab = colour.REFERENCE_LAB
    d = np.sqrt(((lab[:, None] - lab[None]) ** 2).sum(axis=2))
    other = colour.REFERENCE_NAME[:, None] != colour.REFERENCE_NAME[None, :]
    assert d[other].min() > 12  # different names: far beyond the lookup table's error (< 3)


def test_two_colours_get_both_names_and_shares() -> None:
    img = item_on((25, 35, 95))  # navy
    a = np.asarray(img).copy()
    lower = np.asarray(silhouette())[:, :] > 0
    lower[:200] = False
    a[lower] = (200, 30, 40)  # the lower part red
    result = preprocess_with_colours(encode(Image.fromarray(a)))
    got = {c.name: c.share for c in result.colours}
    assert set(got) == {"navy", "red"}, result.colours
    assert 0.25 < got["red"] < 0.75 and abs(sum(got.values()) - 1) < 0.05
    # each at its own strength: the red, weaker than the navy, is not made darker
    hexes = {c.name: colour.hex_to_rgb(c.hex) for c in result.colours}
    assert np.abs(np.array(hexes["red"]) - (200, 30, 40)).max() <= 12, hexes
    assert np.abs(np.array(hexes["navy"]) - (25, 35, 95)).max() <= 12, hexes


_INVERSE = {Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90}


@pytest.mark.parametrize("tag", range(2, 9))
def test_exif_rotation_keeps_colours_in_place(tag) -> None:
    """A two-colour item stored turned or mirrored, with the Orientation tag that undoes it: the
    same colours and shares as the upright image, in every format (each turns its colour pixels
    as numpy views, not as Pillow images)."""
    a = np.asarray(item_on((25, 35, 95))).copy()
    lower = np.asarray(silhouette()) > 0
    lower[:200] = False
    a[lower] = (200, 30, 40)
    upright = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = tag
    method = ORIENTATION[tag]
    stored = upright.transpose(_INVERSE.get(method, method))
    for fmt, kw in (("PNG", {}), ("WEBP", {"lossless": True}), ("JPEG", {"quality": 95})):
        want = preprocess_with_colours(encode(upright, fmt, **kw)).colours
        got = preprocess_with_colours(encode(stored, fmt, exif=exif.tobytes(), **kw)).colours
        assert [c.name for c in got] == [c.name for c in want] and {c.name for c in got} == {"navy", "red"}, (fmt, got, want)
        assert all(abs(g.share - w.share) < 0.05 for g, w in zip(got, want)), (fmt, got, want)


@pytest.mark.parametrize("method", list(Image.Transpose))
def test_upright_view_turns_as_pillow_does(method) -> None:
    a = np.random.default_rng(0).integers(0, 256, (37, 53, 4), dtype=np.uint8)
    want = np.asarray(Image.fromarray(a, "RGBA").transpose(method))
    assert np.array_equal(upright_view(a, method, 1), want)
    # reduced by 4: the pixel at the centre of each 4 x 4 block of the turned image
    assert np.array_equal(upright_view(a, method, 4), want[2::4, 2::4])


def test_picking_pixels_as_words_gives_the_pixels() -> None:
    """ml.colour reads four-channel pixels as one 32-bit word each: the same bytes as numpy's own
    indexing, on every view the preprocessing hands it (turned, sampled, three channels)."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (41, 29, 4), dtype=np.uint8)
    for method in [None, *Image.Transpose]:
        for factor in (1, 2, 4):
            view = upright_view(a, method, factor)
            mask = rng.random(view.shape[:2]) < 0.3
            assert np.array_equal(colour._pick(view, mask), view[mask])
    three = a[..., :3]
    mask = rng.random(three.shape[:2]) < 0.3
    assert np.array_equal(colour._pick(three, mask), three[mask])


# ---------------------------------------------------------------------------------------------
# backgrounds


@pytest.mark.parametrize("background", [(255, 255, 255), (246, 244, 238), (225, 228, 232)])
def test_light_backgrounds_never_count(background) -> None:
    # (a photo's black is never exactly grey; an all-grey picture has no colour, see below)
    for rgb, name in (((24, 21, 20), "black"), ((200, 30, 40), "red"), ((45, 110, 210), "blue")):
        got = names(encode(item_on(rgb, background), "JPEG", quality=85))
        assert got == [name], (background, rgb, got)


def test_transparent_backgrounds_never_count() -> None:
    """A red cut-out whose transparent pixels hold magenta, as PNG, WebP and palette PNG."""
    mask = silhouette()
    rgba = Image.new("RGBA", mask.size, (255, 0, 255, 0))
    rgba.paste((200, 30, 40, 255), (0, 0), mask)
    for label, data in {"RGBA PNG": encode(rgba), "RGBA WebP": encode(rgba, "WEBP", lossless=True),
                        "P PNG with tRNS": encode(rgba.convert("P"))}.items():
        assert names(data) == ["red"], label


def test_white_on_white_is_white_and_flagged_never_the_background() -> None:
    # an off-white item on pure white: white, and flagged; a white item on a light grey background
    for rgb, bg, flagged in (((238, 238, 236), (255, 255, 255), True), ((255, 255, 255), (218, 220, 216), False)):
        result = preprocess_with_colours(encode(item_on(rgb, bg), "JPEG", quality=90))
        assert [c.name for c in result.colours] == ["white"], (rgb, bg, result.colours)
        assert result.low_contrast == flagged
    # a pale beige item on white: named, not the background's white
    result = preprocess_with_colours(encode(item_on((222, 204, 170)), "JPEG", quality=90))
    assert [c.name for c in result.colours] == ["beige"]


def test_a_dark_background_works_too() -> None:
    for rgb, name in (((240, 240, 240), "white"), ((240, 200, 40), "yellow"), ((200, 30, 40), "red")):
        assert names(encode(item_on(rgb, (12, 14, 18)), "JPEG", quality=90)) == [name], rgb


# ---------------------------------------------------------------------------------------------
# grey inputs have no colour


def test_greyscale_inputs_have_no_colour(dataset) -> None:
    fm = dataset.test.images[0].numpy()
    grey_item = item_on((90, 90, 90), (255, 255, 255))
    cases = {
        "Fashion-MNIST 28 x 28": encode(Image.fromarray(fm)),
        "L PNG": encode(grey_item.convert("L")),
        "LA PNG": encode(grey_item.convert("LA")),
        "I;16 PNG": encode(Image.fromarray(np.asarray(grey_item.convert("L")).astype(np.uint16) * 257)),
        "1-bit PNG": encode(grey_item.convert("L").point(lambda v: 255 if v > 127 else 0).convert("1")),
        "grey JPEG": encode(grey_item.convert("L"), "JPEG", quality=90),
        "grey picture saved as RGB PNG": encode(grey_item),
        "grey picture saved as colour JPEG": encode(grey_item, "JPEG", quality=90),
        "grey picture saved as WebP": encode(grey_item, "WEBP", lossless=True),
        "grey palette PNG": encode(grey_item.convert("P")),
    }
    for label, data in cases.items():
        result = preprocess_with_colours(data)
        assert result.colours == (), (label, result.colours)
        assert np.array_equal(result.image, preprocess(data)), label


# ---------------------------------------------------------------------------------------------
# the same image, the same errors


def test_with_colours_gives_the_same_image_and_errors() -> None:
    img = item_on((40, 120, 60))
    for fmt, kw in (("PNG", {}), ("WEBP", {"quality": 85}), ("WEBP", {"lossless": True})):
        data = encode(img, fmt, **kw)
        assert np.array_equal(preprocess_with_colours(data).image, preprocess(data)), fmt
    data = encode(img, "JPEG", quality=85)  # grey from the RGB decode: the same to a level or two
    assert np.abs(preprocess_with_colours(data).image.astype(int) - preprocess(data)).mean() < 0.5
    for bad in (b"", b"not an image", encode(img, "JPEG")[:500], encode(img, "GIF")):
        with pytest.raises(ImageError) as a:
            preprocess(bad)
        with pytest.raises(ImageError) as b:
            preprocess_with_colours(bad)
        assert a.value.code == b.value.code and a.value.code in IMAGE_ERROR_CODES


# ---------------------------------------------------------------------------------------------
# photo-like renders with a known colour


def test_render_image_records_the_colour_it_paints_without_changing_the_render(dataset) -> None:
    a = dataset.test.images[3].numpy()
    img, painted = photos.render_image_with_colour(a, np.random.default_rng([0, 7]))
    assert np.array_equal(np.asarray(img), np.asarray(photos.render_image(a, np.random.default_rng([0, 7]))))
    px = np.asarray(img)[np.asarray(img.convert("L")) == np.asarray(img.convert("L")).min()]
    assert np.abs(px.astype(int) - painted).max() <= 12  # the darkest pixels are the paint (+ noise)
    blob, painted2 = photos.render_jpeg_with_colour(a, np.random.default_rng([0, 7]))
    assert blob == photos.render_jpeg(a, np.random.default_rng([0, 7])) and painted2 == painted


def test_top_colour_of_photo_like_renders(dataset) -> None:
    """>= 90% right on 300 validation renders (97-98% on 2,000: docs/colour.md)."""
    images = dataset.val.images.numpy()
    m = colour_eval.colour_accuracy(images, "val", seed=0, indices=range(300))
    assert m["errors"] == 0 and m["no_colour"] == 0
    assert m["top_colour_right"] >= 0.9, m["confusions"]
