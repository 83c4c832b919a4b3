"""`python -m ml.photo_eval` on a small subset: accuracy on photo-like images and the review threshold."""

from __future__ import annotations

import json
from pathlib import Path

from ml import photo_eval
from worker.settings import REPO_ROOT

SEED_MODEL = REPO_ROOT / "models" / "seed" / "model.pt"


def test_small_photo_evaluation_run(tmp_path: Path, data_root: Path) -> None:
    metrics = photo_eval.main(["--checkpoint", str(SEED_MODEL), "--data-dir", str(data_root), "--out", str(tmp_path),
                               "--subset", "300", "--val-subset", "300", "--threads", "1"])
    saved = json.loads((tmp_path / "photo_metrics.json").read_text())
    assert saved["test_images"] == 300 and saved["val_images"] == 300
    assert saved["model_version"] == metrics["model_version"]
    assert saved["photo"]["accuracy"] > 0.7 and saved["clean"]["accuracy"] > 0.8  # chance is 0.1
    assert sum(map(sum, saved["photo"]["confusion_matrix"])) == 300
    review = saved["review"]
    assert 0 <= review["threshold"] <= 1
    for key in ("val_photo", "test_photo", "test_clean"):
        assert 0 <= review[key]["flagged_share"] <= 1 and 0 <= review[key]["unflagged_precision"] <= 1
    assert review["val_photo"]["unflagged_precision"] >= 0.97
    assert not (tmp_path / "metrics.json").exists()  # the clean report is ml.evaluate's
