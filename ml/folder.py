"""A labelled image folder as training and evaluation data: your own classes from your own photos.

    DIR/<class name>/*.jpg|jpeg|png|webp      (torchvision's ImageFolder layout; sub-folders too)
    DIR/taxonomy.json                         (optional: class -> category, department)

Class names are the folder names, in sorted order. Every photo goes through the same
`ml.preprocess.preprocess` as the worker's, once: the uint8 28 x 28 results are cached in one
file keyed by the folder's content (each file's class, path and bytes) and the preprocessing
code, so a rerun on an unchanged folder decodes nothing. The cache lives outside DIR (DIR stays
a clean ImageFolder for other tools): --cache-dir, default $XDG_CACHE_HOME or ~/.cache, then
fashion-tagger/image-folders/. A photo that `preprocess` rejects (and the worker would reject)
is listed with its reason; then it is skipped (--skip-unreadable) or the command stops.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import PIL
import torch
from tqdm import tqdm

from ml import checkpoint as ckpt_io
from ml import preprocess as pre
from ml.data import DataError, Dataset, Split
from ml.taxonomy import TAXONOMY_FILE, Taxonomy, TaxonomyError, read_file
from wire.formats import IMAGE_SUFFIXES

CACHE_FORMAT = 1
VAL_FRACTION = 0.2
SHOWN_ERRORS = 50  # unreadable files listed one per line; the rest are counted


class FolderError(DataError):
    """An image folder that cannot be trained or evaluated on, and why."""


@dataclass(frozen=True)
class Photos:
    """Every image file of a folder, preprocessed: what the cache file holds."""

    classes: tuple[str, ...]
    files: tuple[str, ...]  # paths relative to the folder, by class then path
    labels: torch.Tensor  # int64, one per file: index into classes
    images: torch.Tensor  # uint8, files x 28 x 28 (zeros where the file was unreadable)
    unreadable: dict[str, str]  # relative path -> why preprocess rejected it
    key: str  # the content key (the cache file's name)
    cached: bool = False  # read from the cache (nothing decoded)

    def usable(self) -> torch.Tensor:
        """True for each file that preprocessed."""
        return torch.tensor([f not in self.unreadable for f in self.files], dtype=torch.bool)

    def counts(self) -> dict[str, list[int]]:
        """Photos and unreadable photos per class."""
        k = len(self.classes)
        return {"photos": torch.bincount(self.labels, minlength=k).tolist(),
                "unreadable": torch.bincount(self.labels[~self.usable()], minlength=k).tolist()}


@dataclass(frozen=True)
class Catalogue:
    """What training on a folder needs: the stratified split, the classes, their taxonomy, provenance."""

    dataset: Dataset
    classes: tuple[str, ...]
    taxonomy: dict[str, Taxonomy] | None
    provenance: dict[str, Any]  # recorded in metrics.json and the checkpoint


def add_arguments(p: argparse.ArgumentParser, training: bool) -> None:
    """The image-folder flags of ml.train (training=True) and ml.evaluate."""
    g = p.add_argument_group("image folder: DIR/<class name>/*.jpg|png|webp, your own classes (docs/catalogue.md)")
    g.add_argument("--image-folder", default=None, metavar="DIR",
                   help="train on this folder instead of Fashion-MNIST" if training else
                   "evaluate on every photo of this folder (its class names must be the checkpoint's)")
    if training:
        g.add_argument("--taxonomy", default=None, metavar="FILE",
                       help=f"class -> category, department; unset: DIR/{TAXONOMY_FILE} when there is one")
        g.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                       help="share of each class held out for validation (stratified)")
        g.add_argument("--split-seed", type=int, default=0,
                       help="seed of the validation split (apart from --seed: the split stays while runs vary)")
    g.add_argument("--skip-unreadable", action="store_true",
                   help="skip the photos preprocess rejects instead of stopping (they are listed either way)")
    g.add_argument("--cache-dir", default=None, help="where preprocessed folders are cached; unset: "
                   "$XDG_CACHE_HOME or ~/.cache, then fashion-tagger/image-folders/")


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fashion-tagger" / "image-folders"


# --- scanning and preprocessing --------------------------------------------------------------


def scan(root: Path) -> tuple[tuple[str, ...], list[tuple[str, int]]]:
    """(classes, [(relative path, class index)]): the image files under each class folder, sorted.

    A clear FolderError for no class folder, an empty class or a single class. Hidden files and
    folders (a leading dot) and files of other types are not looked at.
    """
    if not root.is_dir():
        raise FolderError(f"{root}: not a folder")
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")))
    if not classes:
        raise FolderError(f"{root}: no class folders; expected {root}/<class name>/*.jpg|png|webp")
    files: list[tuple[str, int]] = []
    empty = []
    for label, name in enumerate(classes):
        found = sorted(
            (Path(top) / f).relative_to(root).as_posix()
            for top, dirs, names in os.walk(root / name)  # symlinked sub-folders are not followed: no loops
            for f in names
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in Path(top).relative_to(root).parts)
        )
        if not found:
            empty.append(name)
        files += [(f, label) for f in found]
    if empty:
        raise FolderError(f"{root}: no images ({'/'.join(sorted(IMAGE_SUFFIXES))}) in the class folders "
                          f"{', '.join(map(repr, empty))}; add photos or remove the folders")
    if len(classes) < 2:
        raise FolderError(f"{root}: one class ({classes[0]!r}); a classifier needs at least two class folders")
    return classes, files


def _fingerprint() -> bytes:
    """What else decides the cached pixels: the preprocessing code, its limits, the libraries."""
    lim = pre.DEFAULT_LIMITS  # its formats sorted: a set's order changes from one process to the next
    h = hashlib.sha256(f"{CACHE_FORMAT} {lim.max_bytes} {lim.max_pixels} {sorted(lim.formats)} "
                       f"{PIL.__version__} {np.__version__}".encode())
    h.update(Path(pre.__file__).read_bytes())
    return h.digest()


def content_key(root: Path, classes: Sequence[str], files: Sequence[tuple[str, int]]) -> str:
    """A hash of every file's class, relative path and bytes (reads the files, decodes none)."""
    h = hashlib.sha256(_fingerprint())
    for rel, label in files:
        h.update(f"{classes[label]}\0{rel}\0".encode())
        h.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()[:24]


def _preprocess_file(path: Path) -> np.ndarray | str:
    """The model input of one photo, or why it has none."""
    try:
        with path.open("rb") as f:
            data = f.read(pre.DEFAULT_LIMITS.max_bytes + 1)  # enough for preprocess to say "too large"
        return pre.preprocess(data)
    except pre.ImageError as exc:
        return f"{exc.code.value}: {exc}"
    except OSError as exc:
        return f"cannot read the file: {exc.strerror or exc}"


def load_photos(root: str | Path, cache_dir: str | Path | None = None) -> Photos:
    """Scan the folder and preprocess every photo, or read the result from the cache."""
    root = Path(root)
    classes, files = scan(root)
    key = content_key(root, classes, files)
    cache = Path(cache_dir or default_cache_dir()) / f"{key}.pt"
    if cache.is_file():
        try:
            c = torch.load(cache, weights_only=True)
            if c["format"] == CACHE_FORMAT and c["key"] == key:
                return Photos(tuple(c["classes"]), tuple(c["files"]), c["labels"], c["images"],
                              dict(c["unreadable"]), key, cached=True)
        except Exception as exc:  # noqa: BLE001 - a damaged cache file is rebuilt, not fatal
            print(f"cache {cache} unusable ({type(exc).__name__}); preprocessing again", file=sys.stderr)
    images = np.zeros((len(files), 28, 28), dtype=np.uint8)
    unreadable: dict[str, str] = {}
    for i, (rel, _) in enumerate(tqdm(files, desc="preprocessing photos", disable=None, leave=False,
                                      mininterval=1.0)):
        out = _preprocess_file(root / rel)
        if isinstance(out, str):
            unreadable[rel] = out
        else:
            images[i] = out
    photos = Photos(classes, tuple(f for f, _ in files), torch.tensor([y for _, y in files], dtype=torch.long),
                    torch.from_numpy(images), unreadable, key)
    _write_cache(cache, photos)
    return photos


def _write_cache(path: Path, photos: Photos) -> None:
    payload = {"format": CACHE_FORMAT, "key": photos.key, "classes": list(photos.classes), "files": list(photos.files),
               "labels": photos.labels, "images": photos.images, "unreadable": photos.unreadable}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save(payload, tmp)
        tmp.replace(path)  # atomic: a concurrent run reads the old file or the new, never half of one
    except OSError as exc:  # a read-only cache folder costs the next run time, not this one its result
        print(f"could not write the cache {path}: {exc}", file=sys.stderr)


def check_unreadable(photos: Photos, root: Path, skip: bool) -> None:
    """List the files preprocess rejected; stop unless told to skip them, or if a class has none left."""
    if not photos.unreadable:
        return
    lines = [f"  {rel}: {why}" for rel, why in sorted(photos.unreadable.items())]
    if len(lines) > SHOWN_ERRORS:
        lines = lines[:SHOWN_ERRORS] + [f"  ... and {len(lines) - SHOWN_ERRORS} more"]
    listing = f"{len(photos.unreadable)} of {len(photos.files)} photos in {root} cannot be used:\n" + "\n".join(lines)
    if not skip:
        raise FolderError(f"{listing}\nfix or remove them, or pass --skip-unreadable to go on without them")
    print(listing + "\nskipped (--skip-unreadable)", file=sys.stderr)
    left = torch.bincount(photos.labels[photos.usable()], minlength=len(photos.classes))
    gone = [c for c, n in zip(photos.classes, left.tolist()) if n == 0]
    if gone:
        raise FolderError(f"{root}: no usable photo left in the classes {', '.join(map(repr, gone))}")


def print_counts(root: Path, photos: Photos, columns: dict[str, Sequence[int]], note: str = "") -> None:
    """The per-class table of counts (photos, unreadable, train, validation) with a total row."""
    classes = photos.classes
    width = max(len("class"), *(len(c) for c in classes))
    head = f"  {'class':<{width}}" + "".join(f"  {name:>10}" for name in columns)
    rows = [f"  {c:<{width}}" + "".join(f"  {col[i]:>10,}" for col in columns.values()) for i, c in enumerate(classes)]
    total = f"  {'total':<{width}}" + "".join(f"  {sum(col):>10,}" for col in columns.values())
    print(f"{root}: {len(classes)} classes{' (preprocessed before: cached)' if photos.cached else ''}{note}",
          head, *rows, total, sep="\n", flush=True)


# --- training and evaluation data ------------------------------------------------------------


def stratified_split(labels: torch.Tensor, num_classes: int, val_fraction: float,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices): `val_fraction` of each class, at least one photo of
    each class that has two, chosen by a generator per (seed, class), so one class's photos do not
    move another's split."""
    if not 0 < val_fraction < 1:
        raise FolderError(f"--val-fraction must lie between 0 and 1, not {val_fraction}")
    train, val = [], []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        n = len(idx)
        n_val = min(max(round(val_fraction * n), 1 if n >= 2 else 0), n - 1)
        order = idx[torch.from_numpy(np.random.default_rng([seed, c]).permutation(n))]
        val.append(order[:n_val])
        train.append(order[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def load_catalogue(args: argparse.Namespace) -> Catalogue:
    """The folder of `--image-folder` as ml.train's data (validation split as the report's split), with the
    per-class counts printed."""
    root = Path(args.image_folder)
    photos = load_photos(root, args.cache_dir)
    check_unreadable(photos, root, args.skip_unreadable)
    taxonomy, taxonomy_file = _taxonomy(root, args.taxonomy, photos.classes)
    usable = photos.usable()
    images, labels = photos.images[usable], photos.labels[usable]
    k = len(photos.classes)
    train_idx, val_idx = stratified_split(labels, k, args.val_fraction, args.split_seed)
    train, val = Split(images[train_idx], labels[train_idx]), Split(images[val_idx], labels[val_idx])
    counts = {**photos.counts(), "train": torch.bincount(train.labels, minlength=k).tolist(),
              "validation": torch.bincount(val.labels, minlength=k).tolist()}
    print_counts(root, photos, counts, f"; taxonomy from {taxonomy_file}" if taxonomy_file else "; no taxonomy")
    provenance = {"image_folder": ckpt_io.portable_path(root), "content_key": photos.key, "per_class": counts,
                  "unreadable": photos.unreadable, "val_fraction": args.val_fraction, "split_seed": args.split_seed}
    dataset = Dataset(train=train, val=val, test=val, root=root, test_name="validation split")
    return Catalogue(dataset, photos.classes, taxonomy, provenance)


def _taxonomy(root: Path, given: str | None, classes: Sequence[str]) -> tuple[dict[str, Taxonomy] | None, Path | None]:
    """(taxonomy, its file): --taxonomy, else DIR/taxonomy.json if there is one, else none."""
    path = Path(given) if given else root / TAXONOMY_FILE
    if not given and not path.is_file():
        return None, None
    try:
        return read_file(path, classes), path
    except TaxonomyError as exc:
        raise FolderError(str(exc)) from None


def evaluation_split(args: argparse.Namespace, classes: Sequence[str]) -> tuple[Split, str]:
    """Every usable photo of `--image-folder`, labelled by the index of its class among `classes`
    (a checkpoint's); and the name the report gives it."""
    root = Path(args.image_folder)
    photos = load_photos(root, args.cache_dir)
    check_unreadable(photos, root, args.skip_unreadable)
    unknown = [c for c in photos.classes if c not in classes]
    if unknown:
        raise FolderError(f"{root}: the classes {', '.join(map(repr, unknown))} are not the checkpoint's "
                          f"({', '.join(map(repr, classes))})")
    usable = photos.usable()
    to_model = torch.tensor([list(classes).index(c) for c in photos.classes], dtype=torch.long)
    print_counts(root, photos, photos.counts())
    return Split(photos.images[usable], to_model[photos.labels[usable]]), f"image folder {root.name}"
