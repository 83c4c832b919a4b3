"""ml.taxonomy: department and category of each class, importable without torch or numpy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ml import taxonomy
from ml.constants import CLASSES
from worker.settings import REPO_ROOT as ROOT


def test_taxonomy_maps_every_class_once() -> None:
    assert set(taxonomy.TAXONOMY) == set(CLASSES)
    assert sorted(c for labels in taxonomy.CATEGORIES.values() for c in labels) == sorted(CLASSES)
    assert set(taxonomy.DEPARTMENTS) == set(taxonomy.CATEGORIES)
    assert taxonomy.lookup("Shirt") == ("Shirt", "tops", "clothing")
    assert taxonomy.lookup(CLASSES.index("Ankle boot")).category == "footwear"
    assert taxonomy.lookup(8) == taxonomy.Taxonomy("Bag", "bags", "accessories")
    assert {taxonomy.lookup(c).category for c in ("T-shirt/top", "Pullover", "Shirt")} == {"tops"}
    for bad in ("shirt", 10, -1, None, True):
        with pytest.raises(KeyError):
            taxonomy.lookup(bad)  # type: ignore[arg-type]


def test_taxonomy_imports_without_torch_or_numpy() -> None:
    code = "import sys, ml.taxonomy; bad = {'torch', 'numpy'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
