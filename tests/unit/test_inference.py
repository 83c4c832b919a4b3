"""worker.pool.inference: a checkpoint served as the worker serves it, with its own review threshold."""

from __future__ import annotations

import json

from worker.pool.inference import DEFAULT_REVIEW_THRESHOLD, Classifier, chosen_threshold
from worker.settings import MODELS_DIR


def test_each_model_brings_the_review_threshold_photo_eval_chose_for_it(tmp_path) -> None:
    for name in ("seed", "compact"):
        chosen = json.loads((MODELS_DIR / name / "photo_metrics.json").read_text())["review"]["threshold"]
        assert chosen_threshold(MODELS_DIR / name / "model.pt") == chosen
    assert chosen_threshold(tmp_path / "model.pt") == DEFAULT_REVIEW_THRESHOLD  # never evaluated on photos
    clf = Classifier(MODELS_DIR / "seed" / "model.pt")
    assert clf.review_threshold == clf.info()["review_threshold"] == chosen_threshold(MODELS_DIR / "seed" / "model.pt")
    assert Classifier(MODELS_DIR / "seed" / "model.pt", review_threshold=0.3).review_threshold == 0.3  # the operator's
