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


def test_a_custom_taxonomy_names_every_class_once_with_both_fields(tmp_path) -> None:
    classes = ("sneakers", "boots")
    good = {"sneakers": {"category": "shoes", "department": "footwear"},
            "boots": {"category": " shoes ", "department": "footwear"}}
    assert taxonomy.parse(good, classes)["boots"] == ("boots", "shoes", "footwear")
    assert taxonomy.parse(taxonomy.plain(taxonomy.parse(good, classes)), classes) == taxonomy.parse(good, classes)
    for bad, message in [
        ([], "expected an object"),
        ({"sneakers": good["sneakers"]}, "no entry for the classes 'boots'"),
        ({**good, "sandals": good["boots"]}, "entries for what is no class: 'sandals'"),
        ({**good, "boots": {"category": "shoes"}}, "'boots': expected"),
        ({**good, "boots": {"category": "shoes", "department": ""}}, "'boots': expected"),
        ({**good, "boots": {"category": "shoes", "department": "x", "colour": "red"}}, "nothing else"),
        ({**good, "boots": ["shoes", "footwear"]}, "'boots': expected"),
    ]:
        with pytest.raises(taxonomy.TaxonomyError, match=message):
            taxonomy.parse(bad, classes)
    path = tmp_path / "taxonomy.json"
    path.write_text("{not json")
    with pytest.raises(taxonomy.TaxonomyError, match=f"{path}: cannot read it as JSON"):
        taxonomy.read_file(path, classes)
    with pytest.raises(taxonomy.TaxonomyError, match="cannot read"):
        taxonomy.read_file(tmp_path / "missing.json", classes)
