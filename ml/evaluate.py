"""Evaluate a checkpoint on the 10,000 test images, or on a labelled image folder: tables, metrics.json and plots.

    python -m ml.evaluate --checkpoint models/seed/model.pt
    python -m ml.evaluate --checkpoint runs/mine/model.pt --image-folder DIR --out runs/mine/heldout
    python -m ml.photo_eval --checkpoint models/seed/model.pt   # on product-photo-like images instead
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
from ml import folder, plots


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
    split = metrics.get("evaluated_on", "test set")
    name = "Test accuracy" if split == "test set" else f"Accuracy ({split})"
    lines = [f"{name}: {100 * metrics['accuracy']:.2f}%", "", "Precision per class:"]
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
    split: str = "test set",
) -> dict[str, Any]:
    """Evaluate on `test` (what `split` names); write metrics.json and the plots into `out`; return the metrics."""
    preds, conf = predict(model, test.images)
    metrics = {**info, **compute_metrics(preds, test.labels, classes), "test_images": len(test), "evaluated_on": split}
    if history:
        metrics["history"] = history
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = f"{info.get('arch', '?')} {info.get('model_version', '')}: accuracy {100 * metrics['accuracy']:.2f}% ({split})"
    plots.confusion_matrix(metrics["confusion_matrix"], classes, out / "confusion_matrix.png", title=title)
    plots.per_class(metrics["precision"], metrics["recall"], out / "per_class.png",
                    title=f"Per-class precision and recall ({split})")
    if history:
        plots.training_curves(history, out / "training_curves.png")
    wrong = torch.nonzero(preds != test.labels).flatten()
    # the most confident mistakes first: they say the most about the model
    wrong = wrong[conf[wrong].argsort(descending=True)][:32]
    plots.misclassified(
        test.images[wrong].numpy(), test.labels[wrong].tolist(), preds[wrong].tolist(),
        conf[wrong].tolist(), classes, out / "misclassified.png", title=f"Most confident mistakes ({split})",
    )
    return metrics


def evaluation_parser(description: str | None, writes: str) -> argparse.ArgumentParser:
    """The arguments every evaluation command takes: a checkpoint, the data, where to write `writes`."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="path to a model.pt written by ml.train")
    p.add_argument("--data-dir", default=None, help=f"Fashion-MNIST root (default: ${data_mod.ENV_ROOT} or data/)")
    p.add_argument("--out", default=None, help=f"folder for {writes} (default: the checkpoint's folder)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = evaluation_parser(__doc__, "metrics.json and plots")
    folder.add_arguments(p, training=False)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    ck = ckpt_io.load(args.checkpoint)
    if args.image_folder:
        test, split = folder.evaluation_split(args, ck.classes)
    else:
        test, split = data_mod.load_split(data_mod.resolve_root(args.data_dir), train=False), "test set"
    info = {k: v for k, v in ck.metrics.items() if k not in {"accuracy", "precision", "recall", "confusion_matrix", "history"}}
    info.update(arch=ck.arch, params=ck.params, model_version=ck.version)
    info.setdefault("epochs", ck.config.get("epochs"))
    info.setdefault("train_seconds", None)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    metrics = write_report(out, ck.model, test, ck.classes, info, ck.metrics.get("history"), split)
    print(format_tables(metrics))
    print(f"\nwrote {out / 'metrics.json'} and plots")
    return metrics


if __name__ == "__main__":
    data_mod.run_cli(main)
