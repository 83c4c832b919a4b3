"""Department and category of each Fashion-MNIST class: plain data and one lookup.

No torch and no numpy here: the producer (the backends' client) may import this module
to show or group tags without installing the model's dependencies.

| class       | category  | department  |
|-------------|-----------|-------------|
| T-shirt/top | tops      | clothing    |
| Pullover    | tops      | clothing    |
| Shirt       | tops      | clothing    |
| Trouser     | bottoms   | clothing    |
| Dress       | dresses   | clothing    |
| Coat        | outerwear | clothing    |
| Sandal      | footwear  | footwear    |
| Sneaker     | footwear  | footwear    |
| Ankle boot  | footwear  | footwear    |
| Bag         | bags      | accessories |

A model trained on your own classes (ml.train --image-folder) carries its own taxonomy, read
from a `taxonomy.json` next to the class folders by `read_file`: {"<class>": {"category": ...,
"department": ...}, ...}, one entry per class. The worker uses it in place of the table above.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

from ml.constants import CLASSES

TAXONOMY_FILE = "taxonomy.json"  # its name in an image folder, next to the class folders
FIELDS = ("category", "department")


class Taxonomy(NamedTuple):
    label: str
    category: str
    department: str


class TaxonomyError(ValueError):
    """A taxonomy that does not give every class exactly one category and department."""


# category -> its classes, in label order within each category
CATEGORIES: dict[str, tuple[str, ...]] = {
    "tops": ("T-shirt/top", "Pullover", "Shirt"),
    "bottoms": ("Trouser",),
    "dresses": ("Dress",),
    "outerwear": ("Coat",),
    "footwear": ("Sandal", "Sneaker", "Ankle boot"),
    "bags": ("Bag",),
}

# category -> department
DEPARTMENTS: dict[str, str] = {
    "tops": "clothing",
    "bottoms": "clothing",
    "dresses": "clothing",
    "outerwear": "clothing",
    "footwear": "footwear",
    "bags": "accessories",
}

TAXONOMY: dict[str, Taxonomy] = {
    label: Taxonomy(label, category, DEPARTMENTS[category])
    for category, labels in CATEGORIES.items()
    for label in labels
}


def lookup(label: str | int) -> Taxonomy:
    """A class name (as in ml.constants.CLASSES) or its index -> (label, category, department).

    Raises KeyError for anything else.
    """
    if isinstance(label, int) and not isinstance(label, bool):
        if not 0 <= label < len(CLASSES):
            raise KeyError(f"class index {label} is not in 0..{len(CLASSES) - 1}")
        label = CLASSES[label]
    try:
        return TAXONOMY[label]
    except (KeyError, TypeError):
        raise KeyError(f"unknown class {label!r}; known: {', '.join(CLASSES)}") from None


def parse(mapping: Any, classes: Sequence[str]) -> dict[str, Taxonomy]:
    """{class: {"category": str, "department": str}} naming exactly `classes` -> {class: Taxonomy}.

    Raises TaxonomyError saying what is wrong: a class missing, a name that is no class (a typo
    would otherwise leave a class without its category), an entry without both fields.
    """
    if not isinstance(mapping, dict):
        raise TaxonomyError(f"expected an object {{class: {{category, department}}}}, got {type(mapping).__name__}")
    missing = [c for c in classes if c not in mapping]
    unknown = sorted(str(k) for k in mapping if k not in classes)
    if missing or unknown:
        raise TaxonomyError("; ".join(filter(None, [
            missing and f"no entry for the classes {', '.join(map(repr, missing))}",
            unknown and f"entries for what is no class: {', '.join(map(repr, unknown))}",
        ])) + f" (the classes: {', '.join(map(repr, classes))})")
    out = {}
    for label in classes:
        entry = mapping[label]
        if not (isinstance(entry, dict) and set(entry) == set(FIELDS)
                and all(isinstance(entry[f], str) and entry[f].strip() for f in FIELDS)):
            raise TaxonomyError(f"{label!r}: expected {{\"category\": \"...\", \"department\": \"...\"}} "
                                f"(non-empty text, nothing else), got {json.dumps(entry)}")
        out[label] = Taxonomy(label, entry["category"].strip(), entry["department"].strip())
    return out


def read_file(path: str | Path, classes: Sequence[str]) -> dict[str, Taxonomy]:
    """A taxonomy.json for `classes`; TaxonomyError (naming the file) for anything unusable."""
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TaxonomyError(f"{path}: cannot read it as JSON: {exc}") from None
    try:
        return parse(mapping, classes)
    except TaxonomyError as exc:
        raise TaxonomyError(f"{path}: {exc}") from None


def plain(taxonomy: Mapping[str, Taxonomy]) -> dict[str, dict[str, str]]:
    """The form a checkpoint (and taxonomy.json) stores: plain dicts of text."""
    return {label: {"category": t.category, "department": t.department} for label, t in taxonomy.items()}
