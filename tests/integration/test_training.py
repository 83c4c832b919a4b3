"""The ml package: model, data, checkpoint, metrics, training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ml import checkpoint, data, evaluate, model, train
from ml.constants import CLASSES, MEAN, STD
from worker.settings import REPO_ROOT


def test_seed_model_shapes_and_parameter_count() -> None:
    net = model.build("seed")
    assert model.count_params(net) == 31_530
    assert net(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    layers = [type(m).__name__ for m in net.net]
    assert layers == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]


def test_unknown_arch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'nope'.*seed"):
        model.build("nope")


def test_data_sizes_labels_and_normalisation(dataset) -> None:
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (55_000, 5_000, 10_000)
    assert dataset.train.images.shape[1:] == (28, 28) and dataset.train.images.dtype == torch.uint8
    # every class has 6,000 training images (train + val) and 1,000 test images
    all_train = torch.cat([dataset.train.labels, dataset.val.labels])
    assert torch.bincount(all_train, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(dataset.test.labels, minlength=10).tolist() == [1000] * 10
    x = data.normalize(torch.cat([dataset.train.images, dataset.val.images]))
    assert x.shape == (60_000, 1, 28, 28)
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-3
    assert (MEAN, STD) == (0.2860, 0.3530)


def test_validation_split_is_fixed(data_root: Path) -> None:
    a = data.load(data_root, download=False)
    b = data.load(data_root, download=False)
    assert torch.equal(a.val.images, b.val.images)


def test_missing_data_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(data.DataNotFoundError) as info:
        data.load(tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "--data-dir" in message
    assert "\n" not in message


def test_checkpoint_round_trip_is_weights_only_and_identical(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = model.build("seed").eval()
    version = checkpoint.save(tmp_path / "m.pt", net, "seed", config={"out": tmp_path}, metrics={"accuracy": 0.5})
    raw = torch.load(tmp_path / "m.pt", weights_only=True)  # must not need pickle
    assert raw["arch"] == "seed" and raw["classes"] == list(CLASSES)
    loaded = checkpoint.load(tmp_path / "m.pt")
    x = torch.randn(7, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(net(x), loaded.model(x))
    assert loaded.version == version == checkpoint.weights_hash(net.state_dict())
    assert (loaded.mean, loaded.std, loaded.metrics["accuracy"]) == (MEAN, STD, 0.5)
    assert loaded.config["out"] == str(tmp_path)


def test_metrics_match_a_hand_computed_case() -> None:
    classes = ("a", "b", "c")
    # true:  a a a b b c ; pred: a a b b c c
    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 0, 1, 1, 2, 2])
    m = evaluate.compute_metrics(preds, targets, classes)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.5})
    assert m["recall"] == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 1.0})
    tables = evaluate.format_tables(m)
    assert "Test accuracy: 66.67%" in tables and "Precision per class:" in tables and "Recall per class:" in tables


def test_dry_run_writes_every_artefact(tmp_path: Path, data_root: Path) -> None:
    train.main(["--dry-run", "--data-dir", str(data_root), "--out", str(tmp_path), "--threads", "1"])
    for name in ("model.pt", "metrics.json", "confusion_matrix.png", "per_class.png",
                 "training_curves.png", "misclassified.png"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_one_epoch_of_seed_reproduces_the_published_figure(tmp_path: Path, data_root: Path, capsys) -> None:
    """docs/model.md's claim: one epoch of the seed model reaches at least 88.6% (chance is 10%)."""
    train.main(["--arch", "seed", "--epochs", "1", "--data-dir", str(data_root), "--out", str(tmp_path), "--threads", "2"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.886
    for key in ("precision", "recall", "confusion_matrix", "arch", "params", "epochs", "train_seconds", "model_version"):
        assert key in metrics, key
    assert set(metrics["precision"]) == set(CLASSES)
    assert sum(map(sum, metrics["confusion_matrix"])) == 10_000
    assert "Recall per class:" in capsys.readouterr().out
    # the evaluation command recomputes the same figures from the checkpoint alone
    again = evaluate.main(["--checkpoint", str(tmp_path / "model.pt"), "--data-dir", str(data_root),
                           "--out", str(tmp_path / "eval")])
    assert again["accuracy"] == metrics["accuracy"] and again["model_version"] == metrics["model_version"]


def test_committed_seed_model_matches_its_metrics() -> None:
    root = REPO_ROOT / "models" / "seed"
    ck = checkpoint.load(root / "model.pt")
    metrics = json.loads((root / "metrics.json").read_text())
    assert ck.version == metrics["model_version"] and ck.params == metrics["params"] == 31_530
    assert metrics["accuracy"] >= 0.886
