"""The model of this worker process: loaded once per process, swapped when an operator asks.

Only pool processes import this module's torch-using parts; the worker's main
(consumer) process never loads torch.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ml.taxonomy import TAXONOMY, Taxonomy
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)
DEFAULT_REVIEW_THRESHOLD = 0.5


@dataclass
class Prediction:
    top_ids: np.ndarray  # N x k class ids, best first
    top_scores: np.ndarray  # N x k softmax probabilities


class Classifier:
    """A checkpoint ready for batched inference."""

    def __init__(self, path: Path, device: str = "cpu", threads: int = 1,
                 review_threshold: float | None = None) -> None:
        """`review_threshold`: the operator's (TAGGER_REVIEW_THRESHOLD); by default the one
        `ml.photo_eval` chose for this checkpoint (photo_metrics.json beside it): a threshold
        belongs to its model, so a reload brings its own."""
        import torch

        from ml.checkpoint import load
        from ml.model import fuse_for_inference

        torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.checkpoint = load(path, device=device)
        self.model = fuse_for_inference(self.checkpoint.model)  # BatchNorm folded: faster, same tags
        self.mean = self.checkpoint.mean
        self.std = self.checkpoint.std
        self.review_threshold = review_threshold if review_threshold is not None else chosen_threshold(path)
        # a model of its own classes carries their taxonomy; Fashion-MNIST's classes use the built-in one
        self.taxonomy: Mapping[str, Taxonomy] = self.checkpoint.taxonomy or TAXONOMY
        self._info = self._describe()

    @property
    def classes(self) -> tuple[str, ...]:
        return self.checkpoint.classes

    def info(self) -> dict[str, Any]:
        """What `inspect model` shows (computed once: every batch report carries it)."""
        return self._info

    def _describe(self) -> dict[str, Any]:
        ck = self.checkpoint
        return {
            "arch": ck.arch,
            "model_version": ck.version,
            "checkpoint": str(Path(ck.path or "").resolve()),
            "test_accuracy": ck.metrics.get("accuracy"),
            "classes": list(ck.classes),
            "taxonomy": "checkpoint" if ck.taxonomy else "built-in",
            "device": self.device,
            "params": ck.params,
            "review_threshold": self.review_threshold,
            "torch_threads": _torch().get_num_threads(),
            "pid": os.getpid(),
        }

    def predict(self, images: np.ndarray, k: int = 3) -> Prediction:
        """uint8 N x 28 x 28 -> top-k classes and probabilities, in one forward pass (k at most the classes)."""
        torch = _torch()
        from ml.data import normalize

        with torch.inference_mode():
            x = normalize(torch.from_numpy(images).to(self.device), self.mean, self.std)
            probs = self.model(x).softmax(dim=1)
            scores, ids = probs.topk(min(k, probs.shape[1]), dim=1)
        return Prediction(ids.cpu().numpy(), scores.cpu().numpy())


def chosen_threshold(checkpoint: Path) -> float:
    """The review threshold ml.photo_eval chose for a checkpoint (photo_metrics.json beside it), else
    DEFAULT_REVIEW_THRESHOLD: a model nobody evaluated on photos flags its less confident half."""
    try:
        return float(json.loads((Path(checkpoint).parent / "photo_metrics.json").read_text())["review"]["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_REVIEW_THRESHOLD


def _torch() -> Any:
    import torch

    return torch


_current: Classifier | None = None
_current_key: tuple[str, int] | None = None


def get(path: Path | str, generation: int, settings: WorkerSettings) -> Classifier:
    """This process's classifier for (checkpoint, generation), loading or swapping it if needed.

    On a failed swap the old model stays in service and the error propagates to the
    caller that asked for the new one.
    """
    global _current, _current_key
    key = (str(path), generation)
    if _current is None or _current_key != key:
        fresh = Classifier(Path(path), device=settings.device, threads=settings.torch_threads,
                           review_threshold=settings.review_threshold)
        if _current is not None:
            logger.info("model swapped: %s -> %s", _current.checkpoint.name, fresh.checkpoint.name)
        _current, _current_key = fresh, key
    return _current
