"""Fine-tuning: start from a trained checkpoint, keep every layer but the classifier head.

    python -m ml.train --image-folder DIR --init models/compact/model.pt ...

The new model has the checkpoint's architecture and arguments, its weights (and BatchNorm
statistics) in every layer, and a freshly initialised head sized for the new classes. Every
layer is then trained; the features the checkpoint learnt on 55,000 images are the start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ml import checkpoint as ckpt_io
from ml.model import build


def head_name(model: nn.Module) -> str:
    """The classifier head: the last Linear layer (every architecture in ml.model ends in one)."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layer to replace")
    return linears[-1]


def from_checkpoint(path: str | Path, num_classes: int) -> tuple[nn.Module, str, dict[str, Any], ckpt_io.Checkpoint]:
    """(model, arch, arch args, the checkpoint): the checkpoint's network with a new head of `num_classes`.

    The head is initialised as `build` initialises it, so from the torch seed the caller set.
    """
    init = ckpt_io.load(path)
    arch_args = {**init.arch_args, "num_classes": num_classes}
    model = build(init.arch, **arch_args)
    head = head_name(model)
    kept = {k: v for k, v in init.model.state_dict().items() if not k.startswith(f"{head}.")}
    result = model.load_state_dict(kept, strict=False)
    replaced = {k for k in model.state_dict() if k.startswith(f"{head}.")}
    if set(result.missing_keys) != replaced or result.unexpected_keys:  # the rest must match one to one
        raise ValueError(f"{path}: only the head {head!r} may differ, but missing {result.missing_keys}, "
                         f"unexpected {result.unexpected_keys}")
    return model, init.arch, arch_args, init
