"""Train a CNN on Fashion-MNIST, or on your own labelled photos, from in-memory tensors and write a
self-describing checkpoint.

    python -m ml.train --arch seed --epochs 1 --out models/seed
    python -m ml.train --image-folder DIR --init models/compact/model.pt --out runs/mine   # docs/catalogue.md

Writes into --out: model.pt (checkpoint), metrics.json, and the plots of ml.evaluate.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ml import checkpoint as ckpt_io
from ml import data as data_mod
from ml import finetune, folder
from ml.augment import augment_batch
from ml.constants import CLASSES
from ml.evaluate import format_tables, write_report
from ml.distill import kd_loss, load_teacher
from ml.model import ARCHS, build, count_macs, count_params

DRY_RUN_BATCHES = 3
LOG_EVERY = 20  # steps between points on the training curve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", default="seed", choices=sorted(ARCHS), help="architecture from ml.model")
    p.add_argument("--width", type=int, default=None,
                   help="channels of the first stage, for archs that take it (compact: 24); unset: the arch's default")
    p.add_argument("--head", default=None, choices=["gap", "flat"],
                   help="classifier head, for archs that take it (compact: gap); unset: the arch's default")
    p.add_argument("--last-width", type=int, default=None,
                   help="channels of the 7x7 stage, for archs that take it (compact, residual: 4 x width); unset: the arch's default")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training split")
    p.add_argument("--batch-size", type=int, default=32, help="images per optimisation step")
    p.add_argument("--lr", type=float, default=0.05, help="peak learning rate")
    p.add_argument("--optimizer", default="sgd", choices=["adam", "adamw", "sgd"], help="optimiser (sgd: Nesterov momentum 0.9)")
    p.add_argument("--schedule", default="onecycle", choices=["constant", "onecycle", "cosine"],
                   help="learning-rate schedule, stepped per batch")
    p.add_argument("--weight-decay", type=float, default=0.0, help="weight decay")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing of the cross-entropy loss")
    p.add_argument("--ema", type=float, default=0.0,
                   help="decay per step of an exponential moving average of the weights (and BatchNorm buffers); "
                        "validated, selected and saved instead of the raw weights; 0: off")
    kd = p.add_argument_group("distillation (off by default)")
    kd.add_argument("--distill-from", default=None, nargs="+", metavar="CHECKPOINT",
                    help="teacher checkpoint (model.pt); several: their ensemble (mean logits); unset: no distillation")
    kd.add_argument("--distill-alpha", type=float, default=0.5,
                    help="weight of the teacher's loss; the label loss gets 1 - alpha")
    kd.add_argument("--distill-temperature", type=float, default=4.0, help="softmax temperature of the teacher's loss")
    aug = p.add_argument_group("augmentation (on whole uint8 batches, see ml.augment; all off by default)")
    aug.add_argument("--crop-padding", type=int, default=0, help="random crop: pad by this many pixels, cut 28x28 back")
    aug.add_argument("--flip-prob", type=float, default=0.0, help="probability of a horizontal flip per image")
    aug.add_argument("--erase-prob", type=float, default=0.0, help="probability of random erasing per image")
    p.add_argument("--bf16", action="store_true",
                   help="forward passes in bfloat16 autocast (weights, gradients and the optimiser stay float32): "
                        "about 1.6x faster a step on CPUs with AMX or AVX-512 BF16, slower on others")
    p.add_argument("--seed", type=int, default=0, help="random seed (weights, data order)")
    p.add_argument("--data-dir", default=None, help=f"Fashion-MNIST root (default: ${data_mod.ENV_ROOT} or data/)")
    p.add_argument("--out", default="runs/latest", help="output folder for model.pt, metrics.json and plots")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    p.add_argument("--dry-run", action="store_true", help=f"{DRY_RUN_BATCHES} batches per epoch, small eval: a smoke check")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start from this model.pt's weights, with a new classifier head for the classes "
                        "(its arch and arch args replace --arch, --width and --head)")
    folder.add_arguments(p, training=True)
    return p.parse_args(argv)


def make_optimizer(model: nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    if args.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)


def make_schedule(opt: torch.optim.Optimizer, args: argparse.Namespace, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    if args.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total_steps, pct_start=0.25)
    if args.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


def train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    split: data_mod.Split,
    args: argparse.Namespace,
    epoch: int,
    gen: torch.Generator,
    aug_gen: torch.Generator,
    history: dict[str, Any],
    ema: AveragedModel | None = None,
    teacher: nn.Module | None = None,
) -> float:
    """One pass over the training split; returns the epoch's mean loss."""
    model.train()
    steps = (len(split) + args.batch_size - 1) // args.batch_size
    if args.dry_run:
        steps = DRY_RUN_BATCHES
    total_loss, total_correct, seen = 0.0, 0, 0
    bar = tqdm(data_mod.batches(split, args.batch_size, shuffle=True, generator=gen), total=steps,
               desc=f"epoch {epoch}/{args.epochs}", leave=False, dynamic_ncols=True,
               disable=None, mininterval=1.0)  # disable=None: no bar when the output is not a terminal
    for step, (images, labels) in enumerate(bar, start=1):
        images = augment_batch(images, aug_gen, args.crop_padding, args.flip_prob, args.erase_prob)
        x = data_mod.normalize(images)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x)
            if teacher is not None:
                with torch.no_grad():  # not inference_mode: its tensors cannot enter the autograd graph
                    soft = teacher(x)
        logits = logits.float()  # the losses in float32
        loss = F.cross_entropy(logits, labels, label_smoothing=args.label_smoothing)
        if teacher is not None:
            loss = (1 - args.distill_alpha) * loss + args.distill_alpha * kd_loss(logits, soft.float(), args.distill_temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(model)

        total_loss += loss.item() * len(labels)
        total_correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        if step % LOG_EVERY == 0 or step == steps:
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{100 * total_correct / seen:.1f}%")
            history["steps"]["epoch"].append(epoch - 1 + step / steps)
            history["steps"]["loss"].append(total_loss / seen)
            history["steps"]["accuracy"].append(total_correct / seen)
        if step >= steps:
            break
    return total_loss / max(seen, 1)


@torch.inference_mode()
def validate(model: nn.Module, split: data_mod.Split) -> tuple[float, float]:
    model.eval()
    logits = torch.cat([model(data_mod.normalize(x)) for x, _ in data_mod.batches(split, 1000, shuffle=False)])
    return float(F.cross_entropy(logits, split.labels)), float((logits.argmax(1) == split.labels).float().mean())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)

    if args.image_folder:  # your own classes, from labelled photos
        cat = folder.load_catalogue(args)
        ds, classes, taxonomy, provenance = cat.dataset, cat.classes, cat.taxonomy, cat.provenance
    else:
        ds, classes, taxonomy, provenance = data_mod.load(args.data_dir), CLASSES, None, {}
    val, test = ds.val, ds.test
    if args.dry_run:
        val = data_mod.Split(val.images[:500], val.labels[:500])
        test = data_mod.Split(test.images[:500], test.labels[:500])

    arch_args: dict[str, Any] = {k: v for k, v in (("width", args.width), ("head", args.head),
                                                   ("last_width", args.last_width)) if v is not None}
    if args.init:
        model, args.arch, arch_args, init = finetune.from_checkpoint(args.init, len(classes))
        provenance["init"] = {"checkpoint": ckpt_io.portable_path(args.init), "model_version": init.version}
        print(f"fine-tuning {init.name} ({args.init}): every layer but the head {finetune.head_name(model)!r}, "
              f"which is new, for {len(classes)} classes")
    else:
        if classes != CLASSES:
            arch_args["num_classes"] = len(classes)
        model = build(args.arch, **arch_args)
    opt = make_optimizer(model, args)
    steps_per_epoch = DRY_RUN_BATCHES if args.dry_run else -(-len(ds.train) // args.batch_size)
    sched = make_schedule(opt, args, steps_per_epoch * args.epochs)
    # the averaged copy also averages the BatchNorm statistics, so it is evaluated as it stands
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True) if args.ema > 0 else None
    teacher = load_teacher(args.distill_from) if args.distill_from else None
    gen = torch.Generator().manual_seed(args.seed)
    aug_gen = torch.Generator().manual_seed(args.seed + 1)  # its own stream: the data order stays as without augmentation
    print(f"{args.arch}: {count_params(model):,} parameters, {count_macs(model) / 1e6:.2f}M multiply-adds per image; train {len(ds.train):,} / val {len(val):,} "
          f"/ test {len(test):,} images; {args.threads} threads")

    history: dict[str, Any] = {"epoch": [], "train_loss": [], "val_loss": [], "val_accuracy": [], "seconds": [],
                               "steps": {"epoch": [], "loss": [], "accuracy": []}}
    best_acc, best_state, best_epoch = -1.0, None, 0
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        train_loss = train_epoch(model, opt, sched, ds.train, args, epoch, gen, aug_gen, history, ema, teacher)
        kept = ema.module if ema is not None else model  # the weights that are validated and saved
        val_loss, val_acc = validate(kept, val)
        secs = time.perf_counter() - t0
        for key, value in (("epoch", epoch), ("train_loss", train_loss), ("val_loss", val_loss),
                           ("val_accuracy", val_acc), ("seconds", secs)):
            history[key].append(value)
        print(f"epoch {epoch}/{args.epochs}  train loss {train_loss:.4f}  val loss {val_loss:.4f}  "
              f"val acc {100 * val_acc:.2f}%  {secs:.1f} s", flush=True)
        if val_acc > best_acc:  # model selection on validation, never on test
            best_acc, best_epoch, best_state = val_acc, epoch, copy.deepcopy(kept.state_dict())
    train_seconds = time.perf_counter() - start
    model.load_state_dict(best_state)

    # the data location is a fact of one machine, not of the model: not recorded (provenance names the folder)
    config = {k: v for k, v in vars(args).items() if k not in ("data_dir", "image_folder", "cache_dir", "taxonomy", "init")}
    info = {
        "arch": args.arch, "arch_args": arch_args, "params": count_params(model), "macs": count_macs(model),
        "model_version": ckpt_io.weights_hash(model.state_dict()),
        "epochs": args.epochs, "best_epoch": best_epoch, "train_seconds": round(train_seconds, 1),
        "val_accuracy": best_acc, "threads": args.threads, "config": config, **({"data": provenance} if provenance else {}),
    }
    metrics = write_report(out, model, test, classes, info, history, split=ds.test_name)
    ckpt_io.save(out / "model.pt", model, args.arch, arch_args, config=config, metrics=metrics, classes=classes,
                 taxonomy=taxonomy)
    print(f"\ntrained in {train_seconds:.1f} s; best validation accuracy {100 * best_acc:.2f}% (epoch {best_epoch})\n")
    print(format_tables(metrics))
    print(f"\nwrote {out / 'model.pt'} (version {info['model_version']}), metrics.json and plots")
    return metrics


if __name__ == "__main__":
    data_mod.run_cli(main)
