"""Fixtures and helpers of the unit tests that need a trained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worker.settings import MODELS_DIR


@pytest.fixture(scope="session")
def seed_model():
    """The committed seed checkpoint: small and quick, for tests that compare tags."""
    from ml.checkpoint import load

    return load(MODELS_DIR / "seed" / "model.pt")


def tags(model, images: list[np.ndarray]) -> list[int]:
    """What a checkpoint says of uint8 28 x 28 images, in process."""
    from ml.evaluate import predict

    return predict(model.model, torch.from_numpy(np.stack(images)))[0].tolist()
