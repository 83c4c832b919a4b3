"""CNN architectures, one class each, in a registry by name.

Every architecture takes 1 x 28 x 28 normalised images and returns 10 logits.
Constructor keyword arguments are the "model args" a checkpoint stores, so a
loader rebuilds the exact network from the checkpoint alone.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch
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


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """The serving form of a model: a copy with every BatchNorm that follows a conv folded into
    that conv's weights, and every conv weight in the channels-last layout.

    Same outputs up to float rounding (the tags of all 10,000 test images are unchanged).
    Folding removes a layer per block; channels-last is the layout oneDNN runs fast on the CPU:
    `compact` is trained in it, the `seed` is not (its full-resolution conv and pool ran at half
    speed). Measured gains of both: docs/model.md.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for seq in [m for m in fused.modules() if isinstance(m, nn.Sequential)]:
        layers = list(seq)
        out: list[nn.Module] = []
        for layer in layers:
            if isinstance(layer, nn.BatchNorm2d) and out and isinstance(out[-1], nn.Conv2d):
                out.append(fuse_conv_bn_eval(out.pop(), layer))
            else:
                out.append(layer)
        if len(out) != len(layers):
            for name in list(seq._modules):
                del seq._modules[name]
            for i, layer in enumerate(out):
                seq.add_module(str(i), layer)
    return fused.to(memory_format=torch.channels_last)  # converts 4-d weights only


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


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register("compact")
class CompactCNN(nn.Module):
    """A small BatchNorm CNN sized for a 2-core CPU: cheap at 28x28, the work at 14x14 and 7x7.

    conv(1->w) @28x28, pool; conv(w->2w), conv(2w->2w) @14x14, pool;
    conv(2w->4w), conv(4w->4w) @7x7; head: global average pool then linear(4w->10)
    ("gap"), or linear(4w*7*7->10) on the whole 7x7 map ("flat": keeps where things are,
    for the same multiply-adds). `last_width` replaces 4w in the 7x7 stage (default 4w).
    Every conv is 3x3 + BatchNorm + ReLU. Only the first conv runs at full resolution,
    and with one input channel it costs little, so the multiply-adds per image stay
    around 12M for w=24. Weights and activations use the channels-last layout, which
    oneDNN runs markedly faster on the CPU (training and inference alike).
    """

    def __init__(self, width: int = 24, head: str = "gap", last_width: int | None = None,
                 num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        w, c3 = width, last_width or 4 * width
        self.features = nn.Sequential(
            *_conv_bn_relu(1, w),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w, 2 * w),
            *_conv_bn_relu(2 * w, 2 * w),
            nn.MaxPool2d(2),
            *_conv_bn_relu(2 * w, c3),
            *_conv_bn_relu(c3, c3),
        )
        if head == "gap":
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c3, num_classes))
        elif head == "flat":
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 7 * 7, num_classes))
        else:
            raise ValueError(f"head must be 'gap' or 'flat', not {head!r}")
        self.to(memory_format=torch.channels_last)  # load_state_dict copies into these, keeping the layout

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.head(self.features(x.contiguous(memory_format=torch.channels_last)))


class _Residual(nn.Module):
    """relu(x + BN(conv3x3(x))): a conv that starts out close to the identity's neighbourhood.

    The skip costs one addition per activation, no multiply-adds. The conv and its BatchNorm
    sit in one nn.Sequential, so fuse_for_inference folds them like any other pair.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x):  # type: ignore[no-untyped-def]
        return torch.relu(x + self.body(x))


@register("residual")
class ResidualCNN(nn.Module):
    """`compact`'s layout with the second conv of each stage as a residual block.

    conv(1->w) @28x28, pool; conv(w->2w), residual(2w) @14x14, pool; conv(2w->c3),
    residual(c3) @7x7; flat head linear(c3*7*7->10). c3 ("last_width") defaults to 4w, which
    gives exactly compact's parameters and multiply-adds (12.4M for w=24); a wider last
    stage buys parameters where they cost least (7x7). The skips make the deeper stages
    easier to optimise at the same inference cost; folded, they serve at compact's speed.
    """

    def __init__(self, width: int = 24, last_width: int | None = None, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        w, c3 = width, last_width or 4 * width
        self.features = nn.Sequential(
            *_conv_bn_relu(1, w),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w, 2 * w),
            _Residual(2 * w),
            nn.MaxPool2d(2),
            *_conv_bn_relu(2 * w, c3),
            _Residual(c3),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 7 * 7, num_classes))
        self.to(memory_format=torch.channels_last)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.head(self.features(x.contiguous(memory_format=torch.channels_last)))


def count_macs(model: nn.Module, image_size: int = 28) -> int:
    """Multiply-adds of one forward pass on one 1 x image_size x image_size image (convs and linears)."""
    total = 0

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output[0].numel() * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, 1, image_size, image_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
