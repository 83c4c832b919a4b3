"""The report's pictures (matplotlib, headless): curves, confusion matrix, per-class bars, mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no screen on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig: Any, path: Path, dpi: int = 120) -> Path:
    """Write a figure (creating its folder) and free it: every plot of the project goes through here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def training_curves(history: dict[str, Any], path: Path) -> Path:
    """Running train loss/accuracy per logged step, validation per epoch."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    steps = history.get("steps", {})
    if steps.get("epoch"):
        ax_loss.plot(steps["epoch"], steps["loss"], lw=1, alpha=0.8, label="train (running)")
        ax_acc.plot(steps["epoch"], [100 * a for a in steps["accuracy"]], lw=1, alpha=0.8, label="train (running)")
    epochs = history.get("epoch", [])
    if epochs:
        ax_loss.plot(epochs, history["val_loss"], "o-", label="validation")
        ax_acc.plot(epochs, [100 * a for a in history["val_accuracy"]], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return save(fig, path)


def confusion_matrix(cm: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str = "") -> Path:
    """Counts in each cell, colour by share of the true class so rows compare fairly."""
    m = np.asarray(cm, dtype=float)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8.5, 7.5))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    n = len(classes)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title or "Confusion matrix (test set)")
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    return save(fig, path)


def per_class(precision: dict[str, float], recall: dict[str, float], path: Path, title: str = "") -> Path:
    classes = list(precision)
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(11, 4))
    p = ax.bar(x - 0.2, [precision[c] for c in classes], 0.4, label="precision")
    r = ax.bar(x + 0.2, [recall[c] for c in classes], 0.4, label="recall")
    ax.bar_label(p, fmt="%.2f", fontsize=7)
    ax.bar_label(r, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, classes, rotation=30, ha="right")
    lo = min(min(precision.values()), min(recall.values()))
    ax.set_ylim(max(0.0, lo - 0.1), 1.02)
    ax.set(ylabel="score", title=title or "Per-class precision and recall (test set)")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def misclassified(
    images: np.ndarray,
    true: Sequence[int],
    pred: Sequence[int],
    confidence: Sequence[float],
    classes: Sequence[str],
    path: Path,
    cols: int = 8,
    title: str = "Most confident mistakes on the test set",
) -> Path:
    """A grid of wrong predictions: true label, predicted label and its confidence."""
    n = len(images)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.9))
    for k, ax in enumerate(np.asarray(axes).ravel()):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"true {classes[true[k]]}\npred {classes[pred[k]]} {confidence[k]:.0%}", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)
