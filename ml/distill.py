"""Knowledge distillation from committed checkpoints: the teacher's softened outputs as extra targets.

The teacher runs on the same augmented batch as the student, without gradients, with its
BatchNorm folded (as served: cheaper per step). Its training is not repeated here, so only
checkpoints already committed count as free teachers. Several checkpoints make one teacher
whose logits are their mean: an ensemble is a better teacher than any of its members.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ml import checkpoint as ckpt_io
from ml.constants import MEAN, STD
from ml.model import fuse_for_inference


class Ensemble(nn.Module):
    """The mean of its members' logits."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def load_teacher(paths: str | Path | list[str] | list[Path]) -> nn.Module:
    """The checkpoint's model (or the ensemble of several), folded and frozen in eval mode."""
    members = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        ck = ckpt_io.load(path)
        if (ck.mean, ck.std) != (MEAN, STD):  # it sees the student's normalised batches
            raise ValueError(f"{path}: teacher normalisation {(ck.mean, ck.std)} differs from training's {(MEAN, STD)}")
        members.append(fuse_for_inference(ck.model))
    teacher = members[0] if len(members) == 1 else Ensemble(members).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. 2015: KL(teacher || student) at temperature T, scaled by T^2 so its
    gradients keep the same size as the hard-label loss whatever T is."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
