"""ml.checkpoint: a model of its own classes carries their taxonomy, weights_only-loadable; the
committed checkpoints, which have none, load as before."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ml import checkpoint, model
from ml.constants import CLASSES
from ml.taxonomy import Taxonomy, TaxonomyError
from worker.settings import REPO_ROOT

CLASSES_3 = ("boots", "sandals", "sneakers")
TAX_3 = {c: Taxonomy(c, "shoes", "footwear") for c in CLASSES_3}


def test_classes_and_taxonomy_round_trip_as_plain_data(tmp_path: Path) -> None:
    net = model.build("seed", num_classes=3).eval()
    checkpoint.save(tmp_path / "m.pt", net, "seed", {"num_classes": 3}, classes=CLASSES_3, taxonomy=TAX_3)
    raw = torch.load(tmp_path / "m.pt", weights_only=True)  # no pickle needed
    assert raw["taxonomy"]["sandals"] == {"category": "shoes", "department": "footwear"}
    loaded = checkpoint.load(tmp_path / "m.pt")
    assert loaded.classes == CLASSES_3 and loaded.taxonomy == TAX_3
    assert loaded.model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


def test_a_taxonomy_that_misses_a_class_is_not_written(tmp_path: Path) -> None:
    net = model.build("seed", num_classes=3)
    with pytest.raises(TaxonomyError, match="no entry for the classes 'sneakers'"):
        checkpoint.save(tmp_path / "m.pt", net, "seed", {"num_classes": 3}, classes=CLASSES_3,
                        taxonomy={c: TAX_3[c] for c in CLASSES_3[:2]})
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("name", ["seed", "compact"])
def test_the_committed_checkpoints_load_unchanged_without_a_taxonomy(name: str) -> None:
    ck = checkpoint.load(REPO_ROOT / "models" / name / "model.pt")
    assert ck.taxonomy is None and ck.classes == CLASSES
    assert "taxonomy" not in torch.load(REPO_ROOT / "models" / name / "model.pt", weights_only=True)
