"""Shared fixtures. The service fixtures (Redis, workers) live in tests/service.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Fashion-MNIST on this machine; tests never download it."""
    root = Path(os.environ.get("FASHION_MNIST_ROOT") or ROOT.parent / "shared" / "data")
    if not (root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"Fashion-MNIST not found under {root}; set FASHION_MNIST_ROOT")
    return root


@pytest.fixture(scope="session")
def dataset(data_root: Path):
    from ml import data

    return data.load(data_root, download=False)
