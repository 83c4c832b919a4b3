"""ml.photos (photo-like renders of Fashion-MNIST) and ml.photo_eval's review threshold."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml import photo_eval, photos


def test_photo_renders_are_reproducible_and_photo_like(dataset) -> None:
    images = dataset.test.images.numpy()
    a = photos.render_split(images, "test", seed=0, indices=[3, 9])
    b = photos.render_split(images, "test", seed=0, indices=[9])
    assert a[1] == b[0]  # an image's render does not depend on which others are rendered
    assert photos.render_split(images, "test", seed=1, indices=[9])[0] != b[0]
    for blob in a:
        img = Image.open(io.BytesIO(blob))
        assert img.format == "JPEG" and img.mode == "RGB"
        assert all(200 <= s <= 1200 for s in img.size)
        corners = [img.getpixel(p) for p in ((0, 0), (img.width - 1, img.height - 1))]
        assert all(min(c) >= 190 for c in corners)  # light background


def test_review_threshold_choice() -> None:
    conf = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0], dtype=bool)
    t = photo_eval.choose_threshold(correct, conf, target=0.97)
    assert t == pytest.approx(0.71)  # the lowest 0.01 step that flags the 0.7 mistake
    r = photo_eval.review_figures(correct, conf, t)
    assert r["unflagged_precision"] == 1.0 and r["flagged_share"] == pytest.approx(4 / 8)
    assert photo_eval.choose_threshold(np.zeros(3, bool), np.array([0.9, 0.8, 0.7])) == 1.0
