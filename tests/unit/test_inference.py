"""worker.pool.inference and results: a checkpoint is served with its own classes, taxonomy and
review threshold."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ml import checkpoint, model
from ml.preprocess import Preprocessed
from ml.taxonomy import TAXONOMY, Taxonomy
from wire.messages import Job, Score, Status
from worker.pool.inference import DEFAULT_REVIEW_THRESHOLD, Classifier, chosen_threshold
from worker.pool.results import tagged
from worker.settings import DEFAULT_CHECKPOINT, MODELS_DIR


def test_a_two_class_checkpoint_serves_its_classes_and_taxonomy(tmp_path: Path) -> None:
    classes = ("wallets", "belts")
    tax = {"wallets": Taxonomy("wallets", "small leather goods", "accessories"),
           "belts": Taxonomy("belts", "belts", "accessories")}
    torch.manual_seed(0)
    checkpoint.save(tmp_path / "m.pt", model.build("seed", num_classes=2), "seed", {"num_classes": 2},
                    classes=classes, taxonomy=tax)
    clf = Classifier(tmp_path / "m.pt")
    assert clf.info()["classes"] == list(classes) and clf.info()["taxonomy"] == "checkpoint"
    pred = clf.predict(np.zeros((5, 28, 28), dtype=np.uint8))  # top 3 of two classes: both
    assert pred.top_ids.shape == (5, 2) and np.allclose(pred.top_scores.sum(axis=1), 1, atol=1e-5)

    top = [Score(label=classes[i], label_id=i, score=s) for i, s in zip(pred.top_ids[0], pred.top_scores[0])]
    job = Job.from_bytes(b"\x89PNG", "sku-1")
    now = time.time()
    result = tagged(job, top, Preprocessed(np.zeros((28, 28), np.uint8), ()), clf.taxonomy, "seed", "v", 0.5, now,
                    now, 5, 1, "w")
    assert result.status is Status.TAGGED and result.label == top[0].label
    assert (result.category, result.department) == tax[top[0].label][1:]
    assert clf.review_threshold == DEFAULT_REVIEW_THRESHOLD  # never evaluated on photos


def test_the_default_model_keeps_the_built_in_taxonomy() -> None:
    clf = Classifier(DEFAULT_CHECKPOINT)
    assert clf.taxonomy is TAXONOMY and clf.info()["taxonomy"] == "built-in"


def test_each_model_brings_the_review_threshold_photo_eval_chose_for_it(tmp_path) -> None:
    for name in ("seed", "compact"):
        chosen = json.loads((MODELS_DIR / name / "photo_metrics.json").read_text())["review"]["threshold"]
        assert chosen_threshold(MODELS_DIR / name / "model.pt") == chosen
    assert chosen_threshold(tmp_path / "model.pt") == DEFAULT_REVIEW_THRESHOLD
    clf = Classifier(MODELS_DIR / "seed" / "model.pt")
    assert clf.review_threshold == clf.info()["review_threshold"] == chosen_threshold(MODELS_DIR / "seed" / "model.pt")
    assert Classifier(MODELS_DIR / "seed" / "model.pt", review_threshold=0.3).review_threshold == 0.3  # the operator's
