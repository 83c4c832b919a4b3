"""Self-describing checkpoints: weights + arch + args + classes + normalisation + config + metrics,
and, for a model of your own classes, their taxonomy.

A checkpoint holds only tensors and plain Python values, so it loads with
`torch.load(..., weights_only=True)` and the model is rebuilt from it alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ml.constants import CLASSES, MEAN, STD
from ml.model import build, count_params
from ml.taxonomy import Taxonomy, parse, plain

FORMAT_VERSION = 1


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """Content hash of the weights: the model version the service reports."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:12]


@dataclass
class Checkpoint:
    """A model ready for inference plus everything known about it."""

    model: nn.Module
    arch: str
    arch_args: dict[str, Any]
    version: str
    classes: tuple[str, ...]
    mean: float
    std: float
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    # class -> category and department, when the model was trained on classes of its own; None: the
    # classes are Fashion-MNIST's, whose taxonomy is ml.taxonomy.TAXONOMY
    taxonomy: dict[str, Taxonomy] | None = None

    @property
    def params(self) -> int:
        return count_params(self.model)

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.version}"


def save(
    path: str | Path,
    model: nn.Module,
    arch: str,
    arch_args: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    classes: tuple[str, ...] = CLASSES,
    mean: float = MEAN,
    std: float = STD,
    taxonomy: Mapping[str, Taxonomy] | None = None,
) -> str:
    """Write the checkpoint; returns the model version (weights hash)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    version = weights_hash(state)
    payload = {
        "format_version": FORMAT_VERSION,
        "state_dict": state,
        "arch": arch,
        "arch_args": dict(arch_args or {}),
        "model_version": version,
        "classes": list(classes),
        "normalization": {"mean": float(mean), "std": float(std)},
        "config": _plain(config or {}),
        "metrics": _plain(metrics or {}),
    }
    if taxonomy is not None:  # an optional key: older checkpoints have none, older loaders ignore it
        payload["taxonomy"] = plain(taxonomy)
        parse(payload["taxonomy"], classes)  # one entry per class, or an error before anything is written
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{path}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a worker never loads a half-written file
    return version


def load(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from the checkpoint alone; safe to call on untrusted files."""
    payload = torch.load(path, map_location=device, weights_only=True)
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {payload.get('format_version')!r}")
    model = build(payload["arch"], **payload["arch_args"])
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    norm = payload["normalization"]
    classes = tuple(payload["classes"])
    return Checkpoint(
        model=model,
        arch=payload["arch"],
        arch_args=payload["arch_args"],
        version=payload["model_version"],
        classes=classes,
        mean=norm["mean"],
        std=norm["std"],
        config=payload["config"],
        metrics=payload["metrics"],
        path=str(path),
        taxonomy=parse(payload["taxonomy"], classes) if "taxonomy" in payload else None,
    )


def portable_path(path: str | Path) -> str:
    """How recorded figures name a file: relative to the current folder when inside it, else by
    its name alone, never by a path that exists on one machine only."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return p.name


def _plain(obj: Any) -> Any:
    """Only plain values survive weights_only loading; turn paths and tuples into str/list."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)
