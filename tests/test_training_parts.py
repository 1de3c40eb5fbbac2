"""The parts of fine-tuning that need no training: label fitting, charset growth, the
hold-out split, settings and the run folder's guard (quick)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crnn_onnx.errors import CRNNError
from crnn_onnx.training.data import holdout_split
from crnn_onnx.training.labels import fit_labels
from crnn_onnx.training.run_folder import check_run_folder
from crnn_onnx.training.settings import FinetuneSettings

LOWER = "0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize(
    ("policy", "expected", "affected"),
    [
        ("drop", ["tel073507405", "receipt", None], 2),   # ':' '-' removed; '***' leaves nothing
        ("skip", [None, "receipt", None], 2),             # crops with outside characters left out
    ],
)
def test_labels_fold_case_then_apply_the_policy(policy, expected, affected) -> None:
    fit = fit_labels(["TEL:07-3507405", "RECEIPT", "***"], LOWER, policy)
    assert fit.labels == expected
    assert fit.crops_affected == affected
    assert fit.outside == {"*": 3, ":": 1, "-": 1}


def test_labels_outside_the_charset_refused_with_counts() -> None:
    with pytest.raises(CRNNError, match=r"2 of 3 labels hold characters outside.*'\*' 3"):
        fit_labels(["TEL:07", "ok", "***"], LOWER, "refuse")


def test_labels_keep_case_for_a_cased_charset() -> None:
    fit = fit_labels(["RM12.50", "Total"], LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ.", "drop")
    assert fit.labels == ["RM12.50", "Total"]
    assert not fit.outside


def test_charset_growth_keeps_the_old_rows(random_model) -> None:
    import torch

    from crnn_onnx.training.charset import with_charset

    new = "AB" + LOWER[::-1] + ":"  # reordered, with three new characters
    grown, fresh = with_charset(random_model, LOWER, new)
    assert fresh == ["A", "B", ":"]
    old_w, new_w = random_model.head.fc.weight, grown.head.fc.weight
    assert torch.equal(new_w[0], old_w[0])  # the blank
    for i, ch in enumerate(new, start=1):
        if ch in LOWER:
            assert torch.equal(new_w[i], old_w[LOWER.index(ch) + 1]), ch
            assert grown.head.fc.bias[i] == random_model.head.fc.bias[LOWER.index(ch) + 1]
    # The rest of the network is the same, and a new class starts below every old one.
    x = torch.randn(2, 3, 32, 100)
    with torch.no_grad():
        before, after = random_model(x), grown.eval()(x)
    index = [new.index(ch) + 1 for ch in LOWER]
    assert torch.allclose(after[..., index], before[..., 1:], atol=1e-5)
    assert (grown.head.fc.bias[[1, 2, len(new)]] < random_model.head.fc.bias.min()).all()


def test_holdout_split_is_deterministic_and_keeps_groups_whole() -> None:
    names = [f"{r:03d}_{i:03d}.png" for r in range(40) for i in range(5)]
    groups = {name: name[:3] for name in names}
    train, val = holdout_split(names, 0.1, groups=groups)
    assert (train, val) == holdout_split(list(names), 0.1, groups=groups)
    assert len(val) == 20 and sorted(train + val) == list(range(200))
    held = {names[i][:3] for i in val}
    assert held.isdisjoint(names[i][:3] for i in train)


def test_holdout_split_refuses_too_little_data() -> None:
    with pytest.raises(CRNNError, match="too little data to hold some out"):
        holdout_split(["only.png"], 0.05)


@pytest.mark.parametrize(
    "changes",
    [
        {"steps": None},                  # no budget
        {"minutes": 1.0},                 # two budgets
        {"replay": 1.0},                  # nothing left of the user's data
        {"distill": -1.0},                # a negative loss weight
        {"augment": 1.5},                 # a share above one
        {"charset": "aa"},                # a duplicate character
        {"outside_charset": "keep"},      # a policy that does not exist
        {"width_policy": "wide"},         # nor a width policy
        {"replay_widths": "widest"},      # nor a way to draw the replay's widths
        {"data": ()},                     # nothing to train on
        {"init": Path("a.pth"), "from_scratch": True},  # two starting points
        {"val": (Path("v"),), "choose_on": (Path("w"),)},  # chooses on a set it does not read
        {"choose_on": (Path("w"),)},      # nor any (validation held out of the data)
    ],
)
def test_settings_refuse_bad_values(tmp_path: Path, changes) -> None:
    values = {"data": (tmp_path,), "out": tmp_path / "run", "steps": 10, **changes}
    with pytest.raises(CRNNError):
        FinetuneSettings(**values)


def test_the_sets_that_choose_are_named_as_given_and_default_to_all(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    values = {"data": (tmp_path,), "out": tmp_path / "run", "steps": 10, "val": (a, b)}
    assert FinetuneSettings(**values).chosen() == [str(a), str(b)]
    assert FinetuneSettings(**values, choose_on=(tmp_path / "x" / ".." / "b",)).chosen() == [
        str(b)]
    assert FinetuneSettings(**{**values, "val": ()}).chosen() == []  # the hold-out


def test_run_folder_refuses_another_run_and_stray_files(tmp_path: Path) -> None:
    identity = FinetuneSettings(data=(tmp_path,), out=tmp_path / "run", steps=10).identity()
    run = tmp_path / "run"
    assert check_run_folder(run, identity) is False  # new
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"settings": {**identity, "lr": 1.0}}))
    with pytest.raises(CRNNError, match=r"holds another run \(its lr differ"):
        check_run_folder(run, identity)
    (run / "run.json").write_text(json.dumps({"settings": identity}))
    assert check_run_folder(run, identity) is True  # the same run: resume
    older = {k: v for k, v in identity.items() if k != "train_features"}
    (run / "run.json").write_text(json.dumps({"settings": older}))  # before the option
    with pytest.raises(CRNNError, match="train_features differ"):
        check_run_folder(run, identity)
    assert check_run_folder(run, {**identity, "train_features": True}) is True
    older = {k: v for k, v in identity.items() if k != "replay_widths"}
    (run / "run.json").write_text(json.dumps({"settings": older}))  # drew the replay by batch
    assert check_run_folder(run, identity) is True
    with pytest.raises(CRNNError, match="replay_widths differ"):
        check_run_folder(run, {**identity, "replay_widths": "own"})
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CRNNError, match="not empty and holds no fine-tuning run"):
        check_run_folder(other, identity)
    with pytest.raises(CRNNError, match="is a file"):
        check_run_folder(other / "notes.txt", identity)


def test_distillation_is_zero_for_the_teacher_itself_and_grows_as_readings_move(
        random_model) -> None:
    import copy

    import numpy as np
    import torch

    from crnn_onnx.config import CRNNConfig
    from crnn_onnx.training.batches import distillation, forward, to_tensor

    config = CRNNConfig()
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 100, 3), dtype=np.uint8)
    student = copy.deepcopy(random_model)

    @torch.no_grad()
    def divergence() -> float:
        log_probs = torch.log_softmax(forward(student, to_tensor(images, config), False), 2)
        return distillation(log_probs, random_model, images, config, False).item()

    assert divergence() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        student.head.fc.bias[1] += 5.0  # the student now favours '0' everywhere
    assert divergence() > 0.1


def test_width_groups_pad_small_buckets_into_wider_ones_and_never_squeeze() -> None:
    import random

    from crnn_onnx.training.widths import WidthGroups

    widths = [100] * 40 + [128] * 5 + [160] * 20 + [416] * 3
    groups = WidthGroups.build(widths, least=16)
    # 128's five crops join 160's; 416's three are too few alone and widen the last group.
    assert groups.widths == (100, 416)
    assert [len(m) for m in groups.members] == [40, 28]
    for width, members in zip(groups.widths, groups.members, strict=True):
        assert all(widths[i] <= width for i in members)  # padded, never squeezed
    rng = random.Random(0)
    picks = [groups.choose(rng)[0] for _ in range(2000)]
    assert picks.count(100) / len(picks) == pytest.approx(40 / 68, abs=0.04)  # by size
    assert groups.up_to(300) == groups.members[0]
    assert groups.up_to(50) == groups.members[0]  # nothing narrower: the narrowest group
    assert WidthGroups.build([100] * 3, least=16).widths == (100,)


def test_batches_hold_one_width_and_validation_fits_each_crop_as_inference_does() -> None:
    import random

    import numpy as np

    from crnn_onnx.config import CRNNConfig
    from crnn_onnx.training.data import CropSet
    from crnn_onnx.training.replay import mix
    from crnn_onnx.training.widths import WidthGroups, crop_widths

    config = CRNNConfig()
    rng = np.random.default_rng(0)
    sizes = [60] * 20 + [150] * 20 + [300] * 20  # natural widths at height 32
    images = [rng.integers(0, 255, (32, w, 3), dtype=np.uint8) for w in sizes]
    crops = CropSet(images, [f"w{w}" for w in sizes], [str(i) for i in range(len(sizes))])
    widths = crop_widths(images, config, "bucket")
    assert sorted(set(widths)) == [100, 160, 320]
    domain = WidthGroups.build(widths, least=4)
    replay = WidthGroups.build(widths, least=4)
    draws = random.Random(1)
    seen = set()
    for _ in range(30):
        batch, labels, n_replay = mix(crops, crops, 8, 0.25, draws, config, augment=0.5,
                                      domain_groups=domain, replay_groups=replay)
        width = batch.shape[2]
        seen.add(width)
        assert batch.shape == (8, 32, width, 3) and n_replay == 2
        assert all(int(label[1:]) <= width for label in labels)  # nobody squeezed
    assert seen == {100, 160, 320}
    fitted = crops.fitted(config, "bucket")
    assert [(b.shape[2], len(y)) for b, y in fitted] == [(100, 20), (160, 20), (320, 20)]
    assert [b.shape[2] for b, _ in crops.fitted(config, "fixed")] == [100]


@pytest.mark.parametrize("replay_by", ["batch", "own"])
def test_replay_crops_are_drawn_by_their_own_widths_when_asked(replay_by: str) -> None:
    """Real crops replayed beside wide renders: under ``own`` each set is drawn by its own
    widths (narrow replay crops are not starved by wide data) and the replay share holds on
    average; under ``batch`` the replay follows the data's widths. Nobody is squeezed."""
    import random

    import numpy as np

    from crnn_onnx.config import CRNNConfig
    from crnn_onnx.training.data import CropSet
    from crnn_onnx.training.replay import mix
    from crnn_onnx.training.widths import WidthGroups, crop_widths

    config = CRNNConfig()
    rng = np.random.default_rng(0)

    def crops(sizes: list[int], tag: str) -> tuple[CropSet, WidthGroups]:
        images = [rng.integers(0, 255, (32, w, 3), dtype=np.uint8) for w in sizes]
        labels = [f"{tag}{w}" for w in sizes]
        return (CropSet(images, labels, labels),
                WidthGroups.build(crop_widths(images, config, "bucket"), least=4))

    data, data_widths = crops([60] * 10 + [300] * 30, "d")  # renders: mostly wide
    replay, replay_widths = crops([60] * 30 + [300] * 10, "r")  # real crops: mostly narrow
    draws = random.Random(5)
    drawn = {"d": [], "r": []}
    for _ in range(600):
        batch, labels, n_replay = mix(data, replay, 16, 0.4, draws, config, augment=0.0,
                                      domain_groups=data_widths, replay_groups=replay_widths,
                                      replay_by=replay_by)  # type: ignore[arg-type]
        assert all(label[0] == "r" for label in labels[len(labels) - n_replay:])
        assert all(int(label[1:]) <= batch.shape[2] for label in labels)  # nobody squeezed
        for label in labels:
            drawn[label[0]].append(int(label[1:]) > 100)
    wide = {tag: float(np.mean(flags)) for tag, flags in drawn.items()}
    replay_share = len(drawn["r"]) / (len(drawn["r"]) + len(drawn["d"]))
    if replay_by == "own":
        assert abs(wide["r"] - 0.25) < 0.05 and abs(wide["d"] - 0.75) < 0.05
        assert abs(replay_share - 0.4) < 0.03
    else:  # the replay follows the data: three quarters of it wide
        assert abs(wide["r"] - 0.75) < 0.05 and replay_share == pytest.approx(6 / 16)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_the_augment_share_is_the_share_of_domain_crops_changed(share: float) -> None:
    """``--augment`` is a share: 0 shows the user's crops as they are, 1 augments every one."""
    import random

    import numpy as np

    from crnn_onnx.config import CRNNConfig
    from crnn_onnx.training.data import CropSet
    from crnn_onnx.training.replay import mix
    from crnn_onnx.training.widths import WidthGroups, crop_widths

    config = CRNNConfig()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 100, 3), dtype=np.uint8) for _ in range(50)]
    crops = CropSet(images, [str(i) for i in range(50)], [str(i) for i in range(50)])
    domain = WidthGroups.build(crop_widths(images, config, "bucket"), least=4)
    batch, labels, _ = mix(crops, crops, 400, 0.0, random.Random(3), config, augment=share,
                           domain_groups=domain, replay_groups=None)
    changed = np.mean([not np.array_equal(crop, images[int(label)])
                       for crop, label in zip(batch, labels, strict=True)])
    assert abs(changed - share) < 0.08


def test_replay_renders_include_long_texts_for_wide_buckets() -> None:
    """Fine-tuning at bucket widths must keep long words readable: a share of the replay
    renders are long texts (13+ characters), so the wide buckets are trained too."""
    pytest.importorskip("PIL")
    from crnn_onnx.config import DEFAULT_CHARSET
    from crnn_onnx.synth.words import LONG_MIN
    from crnn_onnx.training.replay import LONG_SHARE, render_replay

    crops = render_replay(80, DEFAULT_CHARSET, seed=1)
    long = sum(len(label) >= LONG_MIN for label in crops.labels)
    assert len(crops) == 80
    assert long >= LONG_SHARE * 80 / 2
    widest = max(image.shape[1] * 32 / image.shape[0] for image in crops.images)
    assert widest > 200  # at their own aspect ratio, not squeezed
