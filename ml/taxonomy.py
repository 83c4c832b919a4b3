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
"""

from __future__ import annotations

from typing import NamedTuple

from ml.constants import CLASSES


class Taxonomy(NamedTuple):
    label: str
    category: str
    department: str


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
