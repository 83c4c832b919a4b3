"""The model zoo beyond the seed: the compact CNN, batch augmentation, the committed default model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from devtools.bench import model_speed as speed
from ml import augment, checkpoint, data, distill, model, train
from worker.settings import REPO_ROOT

COMPACT = REPO_ROOT / "models" / "compact"


# --- the compact architecture ---------------------------------------------------------------


@pytest.mark.parametrize("width, head, params, macs", [
    (24, "gap", 157_330, 12_363_072),
    (24, "flat", 203_410, 12_409_152),  # 96 x 7 x 7 -> 10: 46k more weights, 46k more multiply-adds
    (16, "gap", 70_330, 5_532_544),
])
def test_compact_shapes_parameters_and_multiply_adds(width: int, head: str, params: int, macs: int) -> None:
    net = model.build("compact", width=width, head=head)
    assert model.count_params(net) == params
    assert model.count_macs(net) == macs
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert net.training  # count_macs leaves the mode as it found it


def test_compact_defaults_and_it_keeps_channels_last_through_a_checkpoint(tmp_path: Path) -> None:
    assert model.count_params(model.build("compact")) == 157_330  # width 24, head "gap"
    with pytest.raises(ValueError, match="head"):
        model.build("compact", head="nope")
    torch.manual_seed(0)
    net = model.build("compact", width=8).eval()
    checkpoint.save(tmp_path / "m.pt", net, "compact", {"width": 8})
    loaded = checkpoint.load(tmp_path / "m.pt")
    conv = loaded.model.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(net(x), loaded.model(x))


def test_compact_last_width_widens_only_the_7x7_stage() -> None:
    net = model.build("compact", width=24, head="flat", last_width=112)
    assert (model.count_params(net), model.count_macs(net)) == (248_178, 14_223_328)
    assert net.features[-3].out_channels == 112 and net.head[-1].in_features == 112 * 7 * 7
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    default = model.build("compact", width=24, head="flat")  # unset: 4 x width, as committed
    assert model.count_params(default) == 203_410


def test_seed_is_unchanged_by_the_zoo() -> None:
    assert model.count_params(model.build("seed")) == 31_530
    assert model.count_macs(model.build("seed")) == 16 * 28 * 28 * 9 + 3136 * 10


# --- the residual architecture ----------------------------------------------------------------


@pytest.mark.parametrize("args, params, macs", [
    ({}, 203_410, 12_409_152),  # width 24, last stage 96: compact's flat layout, numbers and all
    ({"last_width": 112}, 248_178, 14_223_328),
    ({"width": 8}, 33_250, 1_426_880),
])
def test_residual_shapes_parameters_and_multiply_adds(args: dict, params: int, macs: int) -> None:
    net = model.build("residual", **args)
    assert model.count_params(net) == params
    assert model.count_macs(net) == macs
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_residual_folds_for_serving_and_round_trips_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = model.build("residual", width=8, last_width=40)
    net.train()
    with torch.no_grad():  # a few training batches, so BatchNorm's statistics are not the identity
        for _ in range(3):
            net(torch.randn(32, 1, 28, 28))
    net.eval()
    checkpoint.save(tmp_path / "m.pt", net, "residual", {"width": 8, "last_width": 40})
    loaded = checkpoint.load(tmp_path / "m.pt")
    assert loaded.arch_args == {"width": 8, "last_width": 40}
    served = model.fuse_for_inference(loaded.model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in served.modules())  # the skips' BN too
    x = torch.randn(16, 1, 28, 28)
    with torch.inference_mode():
        a, b, c = net(x), loaded.model(x), served(x)
    assert torch.equal(a, b)
    assert torch.allclose(a, c, atol=1e-4) and torch.equal(a.argmax(1), c.argmax(1))


# --- distillation and weight averaging ----------------------------------------------------------


def test_kd_loss_is_zero_for_the_teachers_own_logits_and_scaled_by_t_squared() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(8, 10), torch.randn(8, 10)
    assert float(distill.kd_loss(t, t, 4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill.kd_loss(s, t, 1.0)) > 0
    kl = torch.nn.functional.kl_div(s.div(3).log_softmax(1), t.div(3).softmax(1), reduction="batchmean")
    assert float(distill.kd_loss(s, t, 3.0)) == pytest.approx(9 * float(kl), rel=1e-5)


def test_ema_and_distillation_flags_are_deterministic_and_change_the_result(tmp_path: Path, data_root: Path) -> None:
    base = ["--arch", "residual", "--width", "8", "--dry-run", "--batch-size", "64", "--lr", "0.1",
            "--crop-padding", "2", "--flip-prob", "0.5", "--threads", "1", "--data-dir", str(data_root)]
    torch.manual_seed(1)
    teacher = model.build("compact", width=8).eval()
    checkpoint.save(tmp_path / "teacher.pt", teacher, "compact", {"width": 8})
    plain = train.main(base + ["--out", str(tmp_path / "plain")])
    extra = ["--ema", "0.9", "--distill-from", str(tmp_path / "teacher.pt")]
    a = train.main(base + extra + ["--out", str(tmp_path / "a")])
    b = train.main(base + extra + ["--out", str(tmp_path / "b")])
    assert a["model_version"] == b["model_version"] != plain["model_version"]
    assert a["config"]["ema"] == 0.9 and a["config"]["distill_alpha"] == 0.5
    assert plain["config"]["ema"] == 0.0 and plain["config"]["distill_from"] is None  # off by default
    # the saved weights are the average's, and load as a plain residual model
    assert checkpoint.load(tmp_path / "a" / "model.pt").arch_args == {"width": 8}


def test_several_teachers_make_one_whose_logits_are_their_mean(tmp_path: Path) -> None:
    torch.manual_seed(2)
    paths = []
    for i in range(2):
        m = model.build("compact", width=8).eval()
        paths.append(tmp_path / f"t{i}.pt")
        checkpoint.save(paths[-1], m, "compact", {"width": 8})
    x = torch.randn(4, 1, 28, 28)
    one, two = (distill.load_teacher(p) for p in paths)
    both = distill.load_teacher([str(p) for p in paths])
    with torch.no_grad():
        assert torch.allclose(both(x), (one(x) + two(x)) / 2, atol=1e-5)
        assert not torch.allclose(one(x), two(x))  # two different teachers: the mean is neither
    assert not any(p.requires_grad for p in both.parameters()) and not both.training


# --- augmentation ------------------------------------------------------------------------------

IMG = torch.arange(1, 17, dtype=torch.uint8).view(1, 4, 4)  # 1..16, row by row


def test_hflip_mirrors_with_p1_and_keeps_with_p0() -> None:
    assert torch.equal(augment.hflip(IMG, p=1.0), IMG.flip(-1))
    assert torch.equal(augment.hflip(IMG, p=0.0), IMG)


def test_random_crop_is_a_shift_with_zero_fill() -> None:
    batch = IMG.repeat(64, 1, 1)
    out = augment.random_crop(batch, padding=1, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(IMG, (1, 1, 1, 1))
    windows = {padded[0, dy : dy + 4, dx : dx + 4].numpy().tobytes(): (dy, dx) for dy in range(3) for dx in range(3)}
    seen = {windows[o.numpy().tobytes()] for o in out}  # KeyError if an output is not a shifted window
    assert len(seen) == 9  # 64 draws reach all nine offsets
    assert torch.equal(augment.random_crop(batch, padding=0), batch)


def test_random_erase_fills_one_rectangle_of_the_requested_area() -> None:
    x = torch.full((32, 8, 8), 200, dtype=torch.uint8)
    out = augment.random_erase(x, p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=torch.Generator().manual_seed(1))
    for img in out:
        rows, cols = torch.nonzero(img == 0, as_tuple=True)
        assert len(rows) == 16  # a 4x4 square: a quarter of 8x8
        assert rows.max() - rows.min() == 3 and cols.max() - cols.min() == 3
    assert torch.equal(augment.random_erase(x, p=0.0), x)
    assert torch.equal(x, torch.full((32, 8, 8), 200, dtype=torch.uint8))  # input untouched


def test_augment_batch_shapes_dtypes_and_determinism() -> None:
    images = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)

    def run(seed: int) -> torch.Tensor:
        return augment.augment_batch(images, torch.Generator().manual_seed(seed), crop_padding=2, flip_p=0.5, erase_p=0.5)

    a, b, c = run(0), run(0), run(1)
    assert a.shape == images.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    four_d = augment.augment_batch(images.unsqueeze(1), torch.Generator().manual_seed(0), 2, 0.5, 0.5)
    assert torch.equal(four_d.squeeze(1), a)  # N x 1 x H x W gets the same draws as N x H x W
    # all off: the images come back as they were and the generator is not used
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert torch.equal(augment.augment_batch(images, g), images)
    assert torch.equal(g.get_state(), state)


def test_training_with_the_recipe_runs_and_is_deterministic(tmp_path: Path, data_root: Path) -> None:
    args = ["--arch", "compact", "--width", "8", "--head", "flat", "--dry-run", "--batch-size", "64", "--lr", "0.1",
            "--weight-decay", "5e-4", "--label-smoothing", "0.1", "--crop-padding", "2", "--flip-prob", "0.5",
            "--erase-prob", "0.5", "--threads", "1", "--data-dir", str(data_root)]
    a = train.main(args + ["--out", str(tmp_path / "a")])
    b = train.main(args + ["--out", str(tmp_path / "b")])
    assert a["model_version"] == b["model_version"]
    assert a["arch_args"] == {"width": 8, "head": "flat"}
    assert a["macs"] == model.count_macs(model.build("compact", width=8, head="flat"))
    assert checkpoint.load(tmp_path / "a" / "model.pt").arch_args == {"width": 8, "head": "flat"}


def test_bf16_training_is_deterministic_recorded_and_saves_float32_weights(tmp_path: Path, data_root: Path) -> None:
    args = ["--arch", "compact", "--width", "8", "--head", "flat", "--dry-run", "--batch-size", "64", "--lr", "0.1",
            "--threads", "1", "--data-dir", str(data_root)]
    a = train.main(args + ["--bf16", "--out", str(tmp_path / "a")])
    b = train.main(args + ["--bf16", "--out", str(tmp_path / "b")])
    plain = train.main(args + ["--out", str(tmp_path / "plain")])
    assert a["model_version"] == b["model_version"] != plain["model_version"]
    assert a["config"]["bf16"] is True and plain["config"]["bf16"] is False
    # autocast leaves the weights in float32: the checkpoint serves as any other
    state = checkpoint.load(tmp_path / "a" / "model.pt").model.state_dict()
    assert {t.dtype for t in state.values() if t.is_floating_point()} == {torch.float32}


# --- the committed default model -------------------------------------------------------------


def test_committed_compact_model_loads_weights_only_and_meets_the_targets() -> None:
    raw = torch.load(COMPACT / "model.pt", weights_only=True)
    assert raw["arch"] == "compact"
    assert (COMPACT / "model.pt").stat().st_size < 2_000_000
    ck = checkpoint.load(COMPACT / "model.pt")
    metrics = json.loads((COMPACT / "metrics.json").read_text())
    assert ck.version == metrics["model_version"] == raw["model_version"]
    assert ck.params == metrics["params"]
    assert metrics["accuracy"] >= 0.935
    assert metrics["recall"]["Shirt"] >= 0.75
    assert metrics["train_seconds"] <= 30 * 60


MODELS = REPO_ROOT / "models"


def test_each_default_model_beat_the_one_before_on_validation_within_the_budgets(dataset) -> None:
    """Issue 15: compact -> compact_long (28 epochs) -> compact_kd (distilled from compact_long) ->
    compact_ens (from compact and compact_kd together) -> compact26_ens (width 26, the same
    teachers) -> compact112_kd (112 channels at 7x7, distilled from compact26_ens) ->
    compact112_kd2 (the same, distilled from compact112_kd, 92 epochs in bfloat16), the last the
    default; each chosen on validation, not test, within 15M multiply-adds and 60 training minutes."""
    from worker.settings import DEFAULT_MODEL

    assert DEFAULT_MODEL == "compact112_kd2"
    chain = ["compact", "compact_long", "compact_kd", "compact_ens", "compact26_ens", "compact112_kd", "compact112_kd2"]
    metrics = {m: json.loads((MODELS / m / "metrics.json").read_text()) for m in chain}
    photo = {m: json.loads((MODELS / m / "photo_metrics.json").read_text()) for m in chain}
    for older, newer in zip(chain, chain[1:]):
        assert metrics[newer]["val_accuracy"] > metrics[older]["val_accuracy"], newer
    for m in chain[1:]:
        raw = torch.load(MODELS / m / "model.pt", weights_only=True)
        ck = checkpoint.load(MODELS / m / "model.pt")
        assert ck.version == metrics[m]["model_version"] == raw["model_version"] == photo[m]["model_version"]
        assert metrics[m]["macs"] <= 15_000_000 and metrics[m]["train_seconds"] <= 60 * 60
        assert metrics[m]["config"].get("data_dir") is None  # no machine path in a committed file
    # the teachers are committed models, named by paths inside the repository
    assert metrics["compact_kd"]["config"]["distill_from"] == "models/compact_long/model.pt"
    assert metrics["compact_ens"]["config"]["distill_from"] == ["models/compact/model.pt", "models/compact_kd/model.pt"]
    assert metrics["compact26_ens"]["config"]["distill_from"] == metrics["compact_ens"]["config"]["distill_from"]
    assert metrics["compact112_kd"]["config"]["distill_from"] == ["models/compact26_ens/model.pt"]
    assert metrics["compact112_kd"]["arch_args"] == {"width": 24, "head": "flat", "last_width": 112}
    assert metrics["compact112_kd2"]["config"]["distill_from"] == ["models/compact112_kd/model.pt"]
    assert metrics["compact112_kd2"]["config"]["bf16"] is True
    assert metrics["compact112_kd2"]["arch_args"] == metrics["compact112_kd"]["arch_args"]
    assert metrics[DEFAULT_MODEL]["recall"]["Shirt"] >= 0.80
    assert metrics[DEFAULT_MODEL]["accuracy"] >= 0.945  # the target, reported once on test
    # on photo-like validation images the default is as good as the best of them (within one
    # image of 5,000: compact112_kd2 has 93.74% against compact112_kd's 93.76%), and on photo-like
    # test images within a point of its clean accuracy
    best_photo_val = max(photo[m]["review"]["val_photo_accuracy"] for m in chain)
    assert photo[DEFAULT_MODEL]["review"]["val_photo_accuracy"] >= best_photo_val - 1 / 5000 - 1e-9
    assert photo[DEFAULT_MODEL]["accuracy_gap_points"] < 1.0
    ck = checkpoint.load(MODELS / DEFAULT_MODEL / "model.pt")
    served = model.fuse_for_inference(ck.model)
    x = data.normalize(dataset.test.images[:2000])
    with torch.inference_mode():
        assert torch.equal(ck.model(x).argmax(1), served(x).argmax(1))


def test_speed_measures_a_positive_rate() -> None:
    net = model.build("compact", width=8)
    rates = speed.measure(net, torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8), batch_size=32, rounds=2,
                          batches_per_round=2)
    assert len(rates) == 2 and all(r > 0 for r in rates)


def test_folding_batchnorm_for_serving_keeps_the_outputs(dataset) -> None:
    """The worker serves the model with BatchNorm folded into the convs: same tags, no BN left."""
    from ml import checkpoint, data
    from ml.model import fuse_for_inference
    from worker.settings import DEFAULT_CHECKPOINT

    ck = checkpoint.load(DEFAULT_CHECKPOINT)
    served = fuse_for_inference(ck.model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in served.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in ck.model.modules())  # the original is untouched
    x = data.normalize(dataset.test.images[:2000])
    with torch.inference_mode():
        a, b = ck.model(x), served(x)
    assert torch.equal(a.argmax(1), b.argmax(1))
    assert torch.allclose(a, b, atol=1e-4)


def test_the_serving_form_is_channels_last_and_keeps_the_seed_tags(dataset) -> None:
    """The seed is trained in the default layout; served, its conv runs channels-last (about twice as
    fast on the CPU, docs/model.md), with the same tags on the test images."""
    from ml import checkpoint, data
    from ml.model import fuse_for_inference

    ck = checkpoint.load(MODELS / "seed" / "model.pt")
    served = fuse_for_inference(ck.model)
    x = data.normalize(dataset.test.images)
    channels_last = torch.channels_last
    with torch.inference_mode():  # a 16-channel activation says which layout the conv ran in
        assert not ck.model.net[0](x[:2]).is_contiguous(memory_format=channels_last)  # as trained, untouched
        assert served.net[0](x[:2]).is_contiguous(memory_format=channels_last)
    with torch.inference_mode():
        a, b = ck.model(x), served(x)
    assert torch.equal(a.argmax(1), b.argmax(1))
    assert torch.allclose(a, b, atol=1e-4)
