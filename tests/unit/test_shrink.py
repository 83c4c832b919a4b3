"""producer.shrink: large photos made small before they are sent, keeping their tags."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from devtools.images import encode
from ml import photos
from ml.preprocess import preprocess
from producer.shrink import shrink
from tests.unit.conftest import tags


def test_shrink_makes_large_photos_small_upright_and_keeps_the_tag(dataset, seed_model) -> None:
    images = dataset.test.images[:40].numpy()
    sent, shrunk = [], []
    for i, a in enumerate(images):
        big = photos.render_jpeg(a, np.random.default_rng([3, i]), photos.PhotoStyle(min_side=1500, max_side=2500))
        small = shrink(big, 512)
        assert len(small) < len(big) and max(Image.open(io.BytesIO(small)).size) <= 512
        sent.append(preprocess(big))
        shrunk.append(preprocess(small))
    agree = np.mean(np.array(tags(seed_model, sent)) == np.array(tags(seed_model, shrunk)))
    assert agree >= 0.9, agree
    # EXIF orientation is applied; transparency is kept (as a PNG); small or unreadable input is left alone
    photo = Image.new("RGB", (1200, 600), (255, 255, 255))
    photo.paste((20, 20, 20), (100, 100, 400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = Image.open(io.BytesIO(shrink(encode(photo, "JPEG", quality=95, exif=exif.tobytes()), 300)))
    assert out.size == (150, 300) and out.getexif().get(0x0112) in (None, 1)
    cut = photo.convert("RGBA")
    cut.putalpha(Image.new("L", cut.size, 0).point(lambda v: 0))
    out = Image.open(io.BytesIO(shrink(encode(cut, "PNG", compress_level=0), 300)))
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (300, 150)
    small = encode(photo.resize((300, 150)), "JPEG")
    assert shrink(small, 512) is small and shrink(b"junk", 512) == b"junk"
