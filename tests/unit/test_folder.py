"""ml.folder: an ImageFolder of labelled photos -> cached uint8 28 x 28 tensors, a stratified split,
clear errors. Synthetic photos (shapes drawn on a light background), no dataset needed."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from devtools.images import encode
from ml import data, folder
from ml.preprocess import preprocess


def photo(kind: str, i: int, fmt: str = "JPEG") -> bytes:
    """A product-photo-like picture: a dark shape (box or disc) on an off-white canvas."""
    rng = np.random.default_rng([i, len(kind)])
    w, h = (int(v) for v in rng.integers(150, 400, 2))
    img = Image.new("RGB", (w, h), (250, 248, 245))
    s = int(min(w, h) * rng.uniform(0.4, 0.9))
    x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
    colour = tuple(int(c) for c in rng.integers(0, 120, 3))
    (ImageDraw.Draw(img).rectangle if kind == "box" else ImageDraw.Draw(img).ellipse)((x, y, x + s, y + s / 2),
                                                                                       fill=colour)
    return encode(img, fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def make_folder(root: Path, counts: dict[str, int]) -> Path:
    """root/<class>/NNN.jpg, every third a PNG or WebP, one in a sub-folder."""
    for name, n in counts.items():
        (root / name / "more").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            fmt, suffix = [("JPEG", ".jpg"), ("PNG", ".PNG"), ("WEBP", ".webp")][i % 3]
            sub = "more/" if i == 0 else ""
            (root / name / f"{sub}{i:03d}{suffix}").write_bytes(photo("box" if name < "m" else "disc", i, fmt))
    return root


def args(root: Path, cache: Path, **overrides) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    folder.add_arguments(p, training=True)
    ns = p.parse_args(["--image-folder", str(root), "--cache-dir", str(cache)])
    for k, v in overrides.items():
        setattr(ns, k, v)
    return ns


def test_scan_takes_the_imagefolder_layout_as_torchvision_does(tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    root = make_folder(tmp_path / "shop", {"boxes": 4, "discs": 5})
    (root / "boxes" / "notes.txt").write_text("not a photo")
    (root / "discs" / ".hidden.jpg").write_bytes(photo("disc", 99))
    (root / "README.md").write_text("files beside the class folders are no class")
    classes, files = folder.scan(root)
    assert classes == ("boxes", "discs")
    assert [label for _, label in files] == [0] * 4 + [1] * 5
    assert "boxes/more/000.jpg" in dict(files) and "discs/002.webp" in dict(files)
    theirs = ImageFolder(str(root), is_valid_file=lambda p: not Path(p).name.startswith(".")
                         and Path(p).suffix.lower() in {".jpg", ".png", ".webp"})
    assert tuple(theirs.classes) == classes
    assert sorted((Path(p).relative_to(root).as_posix(), y) for p, y in theirs.samples) == sorted(files)


@pytest.mark.parametrize("layout, message", [
    ({}, "no class folders"),
    ({"boxes": 3, "discs": 0}, "no images .* 'discs'"),
    ({"boxes": 3}, "one class .*'boxes'.* at least two"),
])
def test_a_folder_that_cannot_train_is_one_clear_error(tmp_path: Path, layout: dict[str, int], message: str) -> None:
    root = make_folder(tmp_path / "shop", layout)
    root.mkdir(exist_ok=True)
    for name, n in layout.items():
        if n == 0:
            shutil.rmtree(root / name / "more")
            (root / name / "readme.txt").write_text("no photos here")
    with pytest.raises(folder.FolderError, match=message):
        folder.scan(root)
    with pytest.raises(folder.FolderError, match="not a folder"):
        folder.scan(tmp_path / "missing")


def test_every_photo_goes_through_preprocess_once_and_is_cached_by_content(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "shop", {"boxes": 6, "discs": 6})
    cache = tmp_path / "cache"
    first = folder.load_photos(root, cache)
    assert not first.cached and first.images.dtype == torch.uint8 and first.images.shape == (12, 28, 28)
    for i, rel in enumerate(first.files):  # the worker's own function, byte for byte
        assert np.array_equal(first.images[i].numpy(), preprocess((root / rel).read_bytes()))
    assert first.labels.tolist() == [0] * 6 + [1] * 6 and first.unreadable == {}
    assert [p.name for p in cache.iterdir()] == [f"{first.key}.pt"]
    assert not any(p.suffix == ".pt" for p in root.rglob("*"))  # the folder stays a clean ImageFolder

    again = folder.load_photos(root, cache)
    assert again.cached and again.key == first.key and torch.equal(again.images, first.images)
    moved = shutil.copytree(root, tmp_path / "elsewhere")  # the key is the content, not the path
    assert folder.load_photos(moved, cache).cached

    (moved / "discs" / "001.PNG").write_bytes(photo("disc", 77, "PNG"))  # one photo changed
    changed = folder.load_photos(moved, cache)
    assert not changed.cached and changed.key != first.key
    (cache / f"{first.key}.pt").write_bytes(b"not a cache file")  # a damaged cache is rebuilt
    rebuilt = folder.load_photos(root, cache)
    assert not rebuilt.cached and torch.equal(rebuilt.images, first.images)
    assert folder.load_photos(root, cache).cached


def test_unreadable_photos_are_listed_then_fatal_or_skipped(tmp_path: Path, capsys) -> None:
    root = make_folder(tmp_path / "shop", {"boxes": 5, "discs": 5})
    (root / "boxes" / "truncated.jpg").write_bytes(photo("box", 1)[:1500])  # cut in the pixel data
    (root / "discs" / "text.png").write_text("a text file with an image's name")
    (root / "discs" / "empty.webp").write_bytes(b"")
    blank = Image.new("RGB", (200, 200), (255, 255, 255))
    (root / "discs" / "blank.jpg").write_bytes(encode(blank, "JPEG"))
    photos = folder.load_photos(root, tmp_path / "cache")
    assert set(photos.unreadable) == {"boxes/truncated.jpg", "discs/text.png", "discs/empty.webp", "discs/blank.jpg"}
    assert photos.unreadable["discs/text.png"].startswith("unsupported_format")
    assert photos.unreadable["discs/empty.webp"].startswith("empty_image")
    assert photos.counts() == {"photos": [6, 8], "unreadable": [1, 3]}

    with pytest.raises(folder.FolderError) as info:
        folder.check_unreadable(photos, root, skip=False)
    message = str(info.value)
    assert "4 of 14 photos" in message and "discs/text.png: unsupported_format" in message
    assert "--skip-unreadable" in message

    cat = folder.load_catalogue(args(root, tmp_path / "cache", skip_unreadable=True))
    out = capsys.readouterr()
    assert "boxes/truncated.jpg: decode_error" in out.err and "skipped" in out.err
    assert len(cat.dataset.train) + len(cat.dataset.val) == 10  # the 4 left out, the rest kept
    assert cat.provenance["unreadable"] == photos.unreadable

    for f in (root / "boxes").rglob("*.*"):  # a class left with nothing usable: an error even when skipping
        if f.name != "truncated.jpg":
            f.unlink()
    with pytest.raises(folder.FolderError, match="no usable photo left in the classes 'boxes'"):
        folder.load_catalogue(args(root, tmp_path / "cache", skip_unreadable=True))


def test_the_validation_split_is_stratified_seeded_and_stable() -> None:
    labels = torch.tensor([0] * 50 + [1] * 10 + [2] * 2 + [3] * 1)
    train, val = folder.stratified_split(labels, 4, 0.2, seed=0)
    assert torch.bincount(labels[val], minlength=4).tolist() == [10, 2, 1, 0]  # a lone photo trains
    assert sorted(train.tolist() + val.tolist()) == list(range(len(labels)))
    again = folder.stratified_split(labels, 4, 0.2, seed=0)
    assert torch.equal(again[1], val)
    assert not torch.equal(folder.stratified_split(labels, 4, 0.2, seed=1)[1], val)
    more = torch.cat([labels, torch.tensor([1] * 20)])  # photos added to one class move only its split
    val_more = folder.stratified_split(more, 4, 0.2, seed=0)[1]
    assert [i for i in val_more.tolist() if i < 50] == [i for i in val.tolist() if i < 50]  # class 0: indices 0-49
    with pytest.raises(folder.FolderError, match="between 0 and 1"):
        folder.stratified_split(labels, 4, 1.0, seed=0)


def test_the_catalogue_reads_its_taxonomy_and_prints_the_counts(tmp_path: Path, capsys) -> None:
    root = make_folder(tmp_path / "shop", {"boxes": 10, "discs": 5})
    (root / "taxonomy.json").write_text('{"boxes": {"category": "cartons", "department": "home"},'
                                        ' "discs": {"category": "plates", "department": "home"}}')
    cat = folder.load_catalogue(args(root, tmp_path / "cache"))
    assert cat.classes == ("boxes", "discs") and cat.taxonomy["discs"].category == "plates"
    assert isinstance(cat.dataset, data.Dataset) and cat.dataset.test is cat.dataset.val
    assert cat.dataset.test_name == "validation split"
    assert torch.bincount(cat.dataset.val.labels).tolist() == [2, 1]
    table = capsys.readouterr().out
    assert "taxonomy from" in table and "boxes" in table
    assert [line.split()[1:] for line in table.splitlines() if line.strip().startswith("total")] == \
        [["15", "0", "12", "3"]]
    (root / "taxonomy.json").write_text('{"boxes": {"category": "cartons", "department": "home"}}')
    with pytest.raises(folder.FolderError, match="taxonomy.json: no entry for the classes 'discs'"):
        folder.load_catalogue(args(root, tmp_path / "cache"))
    (root / "taxonomy.json").unlink()
    assert folder.load_catalogue(args(root, tmp_path / "cache")).taxonomy is None


def test_command_line_errors_are_one_message_not_a_traceback(tmp_path: Path) -> None:
    from ml import evaluate, train
    from worker.settings import REPO_ROOT

    root = make_folder(tmp_path / "shop", {"boxes": 3})
    with pytest.raises(SystemExit, match="^error: .*one class"):
        data.run_cli(lambda: train.main(["--image-folder", str(root), "--cache-dir", str(tmp_path / "c")]))
    make_folder(root, {"discs": 3})
    with pytest.raises(SystemExit, match="^error: .*'boxes', 'discs' are not the checkpoint's"):
        data.run_cli(lambda: evaluate.main(["--checkpoint", str(REPO_ROOT / "models" / "seed" / "model.pt"),
                                            "--image-folder", str(root), "--cache-dir", str(tmp_path / "c")]))
