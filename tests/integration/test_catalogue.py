"""Train on your own catalogue, end to end: an image folder of photo-like renders grouped into a
shop's classes with its taxonomy, trained from scratch and by fine-tuning, evaluated on held-out
photos, then served by a real worker (TAGGER_CHECKPOINT, then `control reload_model`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from devtools import catalogue
from devtools.local import Fleet, celery_json
from ml import checkpoint, evaluate, train
from ml.taxonomy import Taxonomy
from wire.messages import Status
from worker.settings import DEFAULT_CHECKPOINT, REPO_ROOT

GROUPS = tuple(sorted(catalogue.GROUPS))  # class names are the folder names, sorted
PER_CLASS, EVAL_PER_CLASS = 40, 20


@pytest.fixture(scope="module")
def shop(data_root: Path, tmp_path_factory) -> tuple[Path, Path]:
    """train/ (40 photos per group + taxonomy.json) and eval/ (20 other items per group)."""
    from ml import data

    test = data.load_split(data_root, train=False, download=False)
    return catalogue.write_catalogue(tmp_path_factory.mktemp("shop"), test.images.numpy(), test.labels.numpy(),
                                     PER_CLASS, EVAL_PER_CLASS)


def served_accuracy(client, folder: Path) -> tuple[float, list]:
    """Submit every photo of `folder` (product id = its path in the folder); accuracy and results."""
    photos = sorted(folder.glob("*/*.jpg"))
    handles = client.submit_many([(p, p.relative_to(folder).as_posix()) for p in photos])
    results = list(client.wait([h.job_id for h in handles], timeout=120).values())
    assert len(results) == len(photos) and all(r.status is Status.TAGGED for r in results), results[:3]
    correct = sum(r.label == r.product_id.split("/")[0] for r in results)
    return correct / len(results), results


def test_train_on_a_catalogue_from_scratch_and_fine_tuned_then_serve_it(shop, tmp_path: Path, logs: Path,
                                                                        capsys) -> None:
    train_dir, eval_dir = shop
    cache = tmp_path / "cache"
    expected_tax = {g: Taxonomy(g, **catalogue.TAXONOMY[g]) for g in GROUPS}

    # from scratch, in this process
    scratch = train.main(["--image-folder", str(train_dir), "--cache-dir", str(cache), "--arch", "seed",
                          "--epochs", "4", "--out", str(tmp_path / "scratch"), "--threads", "1"])
    out = capsys.readouterr().out
    assert "5 classes; taxonomy from" in out and "(preprocessed before: cached)" not in out
    assert [line.split()[1:] for line in out.splitlines() if line.strip().startswith("total")] == \
        [[str(5 * PER_CLASS), "0", str(4 * PER_CLASS), str(PER_CLASS)]]  # photos, unreadable, train, validation
    assert scratch["evaluated_on"] == "validation split" and list(scratch["precision"]) == list(GROUPS)
    assert sum(map(sum, scratch["confusion_matrix"])) == PER_CLASS  # 20% of each of the 5 groups

    # fine-tuned from the default model, by the real command line: the photos come from the cache
    cli = subprocess.run([sys.executable, "-m", "ml.train", "--image-folder", str(train_dir), "--cache-dir", str(cache),
                          "--init", str(DEFAULT_CHECKPOINT), "--lr", "0.01", "--epochs", "3",
                          "--out", str(tmp_path / "tuned"), "--threads", "1"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "(preprocessed before: cached)" in cli.stdout and "fine-tuning compact-" in cli.stdout
    tuned = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert tuned["arch"] == "compact" and tuned["data"]["init"] == {
        "checkpoint": "models/compact/model.pt", "model_version": checkpoint.load(DEFAULT_CHECKPOINT).version}
    # where the data lives is not recorded: a folder's name and content key, no path of this machine
    assert tuned["data"]["image_folder"] == "train" and len(tuned["data"]["content_key"]) == 24
    assert not {"image_folder", "cache_dir", "taxonomy", "init", "data_dir"} & set(tuned["config"])

    for name in ("scratch", "tuned"):
        ck = checkpoint.load(tmp_path / name / "model.pt")
        assert ck.classes == GROUPS and ck.taxonomy == expected_tax
        assert torch.load(tmp_path / name / "model.pt", weights_only=True)["taxonomy"] == {
            g: catalogue.TAXONOMY[g] for g in GROUPS}

    # evaluated on the held-out photos
    held_out = {name: evaluate.main(["--checkpoint", str(tmp_path / name / "model.pt"), "--image-folder",
                                     str(eval_dir), "--cache-dir", str(cache), "--out", str(tmp_path / name / "eval")])
                for name in ("scratch", "tuned")}
    for name, m in held_out.items():
        assert m["evaluated_on"] == "image folder eval" and m["test_images"] == 5 * EVAL_PER_CLASS
        assert sum(map(sum, m["confusion_matrix"])) == 5 * EVAL_PER_CLASS and set(m["recall"]) == set(GROUPS)
        for plot in ("confusion_matrix.png", "per_class.png", "misclassified.png"):
            assert (tmp_path / name / "eval" / plot).stat().st_size > 0
    assert "Accuracy (image folder eval)" in capsys.readouterr().out
    assert held_out["scratch"]["accuracy"] >= 0.6  # chance is 0.2
    assert held_out["tuned"]["accuracy"] >= 0.85

    # served by a real worker: TAGGER_CHECKPOINT, then `control reload_model` to the fine-tuned one
    with Fleet(logs) as fleet:
        w = fleet.worker("catalogue", concurrency=1, models_dir=tmp_path,
                         checkpoint=tmp_path / "scratch" / "model.pt").wait_ready()
        client = fleet.client()
        for name in ("scratch", "tuned"):
            ck = checkpoint.load(tmp_path / name / "model.pt")
            if name == "tuned":
                assert "ok" in w.control("reload_model", checkpoint=f"{name}/model.pt")  # under the models dir
                deadline = time.monotonic() + 60
                while w.control("model").get("model_version") != ck.version and time.monotonic() < deadline:
                    time.sleep(0.2)
            model = celery_json(fleet.url, "inspect", "model", "-t", "5")[w.node]  # Celery's own CLI
            assert (model["classes"], model["taxonomy"], model["model_version"]) == (list(GROUPS), "checkpoint",
                                                                                      ck.version)
            accuracy, results = served_accuracy(client, eval_dir)
            for r in results:
                assert r.label in GROUPS and r.model_version == ck.version
                assert (r.category, r.department) == tuple(catalogue.TAXONOMY[r.label].values())
                assert {s.label for s in r.top3} <= set(GROUPS) and len(r.top3) == 3
            # the worker tags what ml.evaluate measured (same preprocess, same weights)
            assert abs(accuracy - held_out[name]["accuracy"]) <= 0.011, (name, accuracy)
