"""ml.finetune: a checkpoint's network with every layer kept but a new classifier head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ml import checkpoint, finetune, model
from worker.settings import DEFAULT_CHECKPOINT


@pytest.mark.parametrize("source", ["committed default", "seed"])
def test_every_layer_but_the_head_is_the_checkpoints(source: str, tmp_path: Path) -> None:
    if source == "seed":
        torch.manual_seed(0)
        path = tmp_path / "seed.pt"
        checkpoint.save(path, model.build("seed"), "seed")
    else:
        path = DEFAULT_CHECKPOINT
    init = checkpoint.load(path)
    torch.manual_seed(1)
    net, arch, arch_args, ck = finetune.from_checkpoint(path, num_classes=4)
    assert (arch, ck.version) == (init.arch, init.version)
    assert arch_args == {**init.arch_args, "num_classes": 4}
    head = finetune.head_name(net)
    old, new = init.model.state_dict(), net.state_dict()
    assert set(old) == set(new)
    kept = [k for k in new if not k.startswith(head + ".")]
    assert kept and all(torch.equal(new[k], old[k]) for k in kept)  # weights and BatchNorm statistics
    assert new[f"{head}.weight"].shape[0] == 4 and old[f"{head}.weight"].shape[0] == 10
    net.eval()
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 4)
    # the new head is initialised from the caller's seed: the same seed, the same head
    torch.manual_seed(1)
    again = finetune.from_checkpoint(path, num_classes=4)[0]
    assert torch.equal(again.state_dict()[f"{head}.weight"], new[f"{head}.weight"])


def test_the_head_is_the_last_linear_layer() -> None:
    assert finetune.head_name(model.build("seed")) == "net.4"
    assert finetune.head_name(model.build("compact", head="gap")) == "head.2"
    with pytest.raises(ValueError, match="no Linear"):
        finetune.head_name(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3)))
