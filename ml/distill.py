"""Knowledge distillation from a committed checkpoint: the teacher's softened outputs as extra targets.

The teacher runs on the same augmented batch as the student, under inference_mode, with its
BatchNorm folded (as served: cheaper per step). Its training is not repeated here, so only
checkpoints already committed count as free teachers.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ml import checkpoint as ckpt_io
from ml.constants import MEAN, STD
from ml.model import fuse_for_inference


def load_teacher(path: str | Path) -> nn.Module:
    """The checkpoint's model, folded and frozen in eval mode."""
    ck = ckpt_io.load(path)
    if (ck.mean, ck.std) != (MEAN, STD):  # it sees the student's normalised batches
        raise ValueError(f"{path}: teacher normalisation {(ck.mean, ck.std)} differs from training's {(MEAN, STD)}")
    teacher = fuse_for_inference(ck.model)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. 2015: KL(teacher || student) at temperature T, scaled by T^2 so its
    gradients keep the same size as the hard-label loss whatever T is."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
