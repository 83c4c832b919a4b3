"""Fashion-MNIST as uint8 tensors held in memory, with a fixed validation split.

Training from in-memory tensors (not a PIL image per sample) is what makes CPU
training fast: a batch is one index operation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ml.constants import MEAN, STD

DEFAULT_ROOT = "data"
ENV_ROOT = "FASHION_MNIST_ROOT"
VAL_SIZE = 5_000
SPLIT_SEED = 0  # fixed: the validation split must not move with --seed


class DataError(RuntimeError):
    """Training or evaluation data that cannot be used; commands print it as one clear error."""


class DataNotFoundError(DataError):
    """The dataset files are missing and could not be downloaded."""


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, N x 28 x 28
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    test: Split
    root: Path
    test_name: str = "test set"  # what the final report is computed on (an image folder has no test set)


def resolve_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """--data-dir wins, then $FASHION_MNIST_ROOT, then ./data."""
    return Path(data_dir or os.environ.get(ENV_ROOT) or DEFAULT_ROOT)


def load_split(root: Path, train: bool, download: bool = True) -> Split:
    from torchvision.datasets import FashionMNIST

    try:
        ds = FashionMNIST(root=str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise _missing(root, "download disabled") from None
        try:
            ds = FashionMNIST(root=str(root), train=train, download=True)
        except Exception as exc:  # noqa: BLE001 - any network/disk failure means the same thing
            raise _missing(root, f"download failed: {type(exc).__name__}: {exc}") from None
    return Split(ds.data.clone(), ds.targets.clone().long())


def _missing(root: Path, why: str) -> DataNotFoundError:
    raw = (root / "FashionMNIST" / "raw").resolve()
    why = " ".join(why.split())  # one line, even when the cause spans several
    return DataNotFoundError(
        f"Fashion-MNIST not found in {raw} ({why}); put the four idx files there "
        f"or point --data-dir / ${ENV_ROOT} at a folder holding FashionMNIST/raw/"
    )


def load(
    data_dir: str | os.PathLike[str] | None = None,
    val_size: int = VAL_SIZE,
    download: bool = True,
) -> Dataset:
    """Train/validation/test splits. The validation images come out of the training set."""
    root = resolve_root(data_dir)
    full = load_split(root, train=True, download=download)
    test = load_split(root, train=False, download=download)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    return Dataset(
        train=Split(full.images[train_idx], full.labels[train_idx]),
        val=Split(full.images[val_idx], full.labels[val_idx]),
        test=test,
        root=root,
    )


def normalize(images: torch.Tensor, mean: float = MEAN, std: float = STD) -> torch.Tensor:
    """uint8 N x 28 x 28 (or N x 1 x 28 x 28) -> float N x 1 x 28 x 28, standardised.

    Training uses the constants; serving passes the checkpoint's own values.
    """
    x = images.float().div_(255.0)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x.sub_(mean).div_(std)


def batches(
    split: Split, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images, labels) batches straight from the in-memory tensors."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield split.images[idx], split.labels[idx]


def run_cli(main: Callable[[], Any]) -> None:
    """Run a command's main(); unusable data (e.g. a missing dataset) is a clear error and exit status 1,
    not a traceback."""
    try:
        main()
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
