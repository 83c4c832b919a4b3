"""Evaluate a checkpoint on the 10,000 test images: tables, metrics.json and plots.

    python -m ml.evaluate --checkpoint models/seed/model.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassPrecision,
    MulticlassRecall,
)

from ml import checkpoint as ckpt_io
from ml import data as data_mod
from ml import plots


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images -> (predicted class, softmax confidence of that class)."""
    model.eval()
    preds, confs = [], []
    for start in range(0, len(images), batch_size):
        probs = model(data_mod.normalize(images[start : start + batch_size])).softmax(dim=1)
        conf, pred = probs.max(dim=1)
        preds.append(pred)
        confs.append(conf)
    return torch.cat(preds), torch.cat(confs)


def compute_metrics(preds: torch.Tensor, targets: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision and recall and the confusion matrix, by torchmetrics."""
    k = len(classes)
    precision = MulticlassPrecision(num_classes=k, average=None, zero_division=0)(preds, targets)
    recall = MulticlassRecall(num_classes=k, average=None, zero_division=0)(preds, targets)
    return {
        "accuracy": float(MulticlassAccuracy(num_classes=k, average="micro")(preds, targets)),
        "precision": {c: float(v) for c, v in zip(classes, precision)},
        "recall": {c: float(v) for c, v in zip(classes, recall)},
        "confusion_matrix": MulticlassConfusionMatrix(num_classes=k)(preds, targets).tolist(),
    }


def format_tables(metrics: dict[str, Any]) -> str:
    """The three tables the seed model was reported with."""
    lines = [f"Test accuracy: {100 * metrics['accuracy']:.2f}%", "", "Precision per class:"]
    width = max(len(c) for c in metrics["precision"])
    for name in ("precision", "recall"):
        if name == "recall":
            lines += ["", "Recall per class:"]
        lines += [f"  {c:<{width}}  {v:.4f}" for c, v in metrics[name].items()]
    return "\n".join(lines)


def write_report(
    out: Path,
    model: nn.Module,
    test: data_mod.Split,
    classes: Sequence[str],
    info: dict[str, Any],
    history: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate on the test split; write metrics.json and the plots into `out`; return the metrics."""
    preds, conf = predict(model, test.images)
    metrics = {**info, **compute_metrics(preds, test.labels, classes), "test_images": len(test)}
    if history:
        metrics["history"] = history
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = f"{info.get('arch', '?')} {info.get('model_version', '')}: test accuracy {100 * metrics['accuracy']:.2f}%"
    plots.confusion_matrix(metrics["confusion_matrix"], classes, out / "confusion_matrix.png", title=title)
    plots.per_class(metrics["precision"], metrics["recall"], out / "per_class.png")
    if history:
        plots.training_curves(history, out / "training_curves.png")
    wrong = torch.nonzero(preds != test.labels).flatten()
    # the most confident mistakes first: they say the most about the model
    wrong = wrong[conf[wrong].argsort(descending=True)][:32]
    plots.misclassified(
        test.images[wrong].numpy(), test.labels[wrong].tolist(), preds[wrong].tolist(),
        conf[wrong].tolist(), classes, out / "misclassified.png",
    )
    return metrics


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="path to a model.pt written by ml.train")
    p.add_argument("--data-dir", default=None, help=f"Fashion-MNIST root (default: ${data_mod.ENV_ROOT} or data/)")
    p.add_argument("--out", default=None, help="folder for metrics.json and plots (default: the checkpoint's folder)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    p.add_argument("--photos", action="store_true",
                   help="instead: render val/test as product-photo-like JPEGs, run them through ml.preprocess, "
                        "compare with clean accuracy, pick the review threshold; writes photo_metrics.json (ml.photos)")
    p.add_argument("--subset", type=int, default=None, help="--photos: only this many test images (default: all)")
    p.add_argument("--val-subset", type=int, default=None, help="--photos: only this many validation images")
    p.add_argument("--seed", type=int, default=0, help="--photos: rendering seed")
    p.add_argument("--path", choices=["fast", "pillow", "colours"], default="fast",
                   help="--photos: preprocess with the fastest decoder per format (the service's), with "
                        "Pillow only (the path before ml.decode), or as preprocess_with_colours does")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.photos:
        from ml import photos

        return photos.run(args.checkpoint, args.data_dir, args.out, args.subset, args.val_subset, args.seed,
                          path=args.path)

    ck = ckpt_io.load(args.checkpoint)
    test = data_mod.load_split(data_mod.resolve_root(args.data_dir), train=False)
    info = {k: v for k, v in ck.metrics.items() if k not in {"accuracy", "precision", "recall", "confusion_matrix", "history"}}
    info.update(arch=ck.arch, params=ck.params, model_version=ck.version)
    info.setdefault("epochs", ck.config.get("epochs"))
    info.setdefault("train_seconds", None)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    metrics = write_report(out, ck.model, test, ck.classes, info, ck.metrics.get("history"))
    print(format_tables(metrics))
    print(f"\nwrote {out / 'metrics.json'} and plots")
    return metrics


if __name__ == "__main__":
    data_mod.run_cli(main)
