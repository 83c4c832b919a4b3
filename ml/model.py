"""CNN architectures, one class each, in a registry by name.

Every architecture takes 1 x 28 x 28 normalised images and returns 10 logits.
Constructor keyword arguments are the "model args" a checkpoint stores, so a
loader rebuilds the exact network from the checkpoint alone.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from torch import nn

from ml.constants import NUM_CLASSES

ARCHS: dict[str, type[nn.Module]] = {}
M = TypeVar("M", bound=type[nn.Module])


def register(name: str) -> Callable[[M], M]:
    def add(cls: M) -> M:
        if name in ARCHS:
            raise ValueError(f"architecture {name!r} registered twice")
        ARCHS[name] = cls
        return cls

    return add


def build(arch: str, **args: Any) -> nn.Module:
    try:
        cls = ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHS))}") from None
    return cls(**args)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@register("seed")
class SeedCNN(nn.Module):
    """The original model: one 3x3 conv, one pool, one linear layer (31,530 parameters)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 14 * 14, num_classes),
        )

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.net(x)
