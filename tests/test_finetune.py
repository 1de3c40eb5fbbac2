"""Fine-tuning as a library: a few seconds of training on tiny drawn sets.

Protects: the loss goes down and the checkpoints load (best.pth with config.yaml, as
``crnn-onnx export`` reads them); an interrupted run resumed ends with the uninterrupted
schedule's steps and files; best.pth holds the latest of the weights that read best; each
validation set is scored, and together they weigh by their sizes; a NaN loss stops the run
with one error and keeps the last good weights; bad start checkpoints and data are refused
before anything is written; BatchNorm statistics and the frozen feature layers stay the start
weights' when asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")

pytestmark = pytest.mark.slow  # seconds of training each

from crnn_onnx.config import CRNNConfig, load_config  # noqa: E402
from crnn_onnx.errors import CRNNError  # noqa: E402
from crnn_onnx.export.checkpoint import load_checkpoint  # noqa: E402
from crnn_onnx.training.outcome import TrainEvent  # noqa: E402
from crnn_onnx.training.settings import FinetuneSettings  # noqa: E402
from crnn_onnx.training.trainer import finetune  # noqa: E402

WORDS = ["cash", "total", "rm12", "tax", "qty", "item", "gst", "paid", "due", "card", "sale",
         "net"]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory, word_set) -> Path:
    return word_set(tmp_path_factory.mktemp("tiny") / "set", WORDS * 4)


@pytest.fixture(scope="module")
def random_start(random_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The conftest's random CRNN as an upstream checkpoint (fast to move away from)."""
    path = tmp_path_factory.mktemp("start") / "start.pth"
    torch.save({"model": random_model.state_dict(), "epoch": 0}, path)
    return path


def tiny(tiny_set: Path, out: Path, start: Path, **changes) -> FinetuneSettings:
    values = dict(data=(tiny_set,), out=out, init=start, steps=8, batch_size=8, lr=1e-3,
                  warmup=0, eval_every=4, replay=0.0, replay_renders=0, augment=0.0,
                  holdout=0.25, precision="fp32", threads=2, train_features=True)
    values.update(changes)
    return FinetuneSettings(**values)


def run_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_training_lowers_the_loss_and_writes_loadable_checkpoints(
        tiny_set: Path, random_start: Path, tmp_path: Path) -> None:
    events: list[TrainEvent] = []
    threads = torch.get_num_threads()
    result = finetune(tiny(tiny_set, tmp_path / "run", random_start, steps=12, threads=1),
                      on_event=events.append)
    # Process-wide settings are the caller's again: threads, and subnormal floats kept.
    assert torch.get_num_threads() == threads
    assert torch.tensor([1e-40]).mul(1.0).item() != 0.0
    losses = [e.loss for e in events if e.kind == "step"]
    assert len(losses) == 12 and result.step == 12 and not result.interrupted
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    folder = result.folder
    assert run_files(folder.root) == {"run.json", "config.yaml", "best.pth", "last.pth",
                                      "log.jsonl"}
    config = load_config(folder.config)
    assert config == CRNNConfig(width_policy="bucket")  # what inference then uses by default
    best = load_checkpoint(folder.best, config)  # upstream format, as export reads it
    assert isinstance(best, torch.nn.Module)
    state = torch.load(folder.last, map_location="cpu", weights_only=True)
    assert state["step"] == 12 and "optimizer" in state
    log = [json.loads(line) for line in folder.log.read_text().splitlines()]
    assert log[0]["event"] == "start" and log[-1]["event"] == "done"
    assert [e["step"] for e in log if e.get("event") == "eval"] == [4, 8, 12]


def test_best_checkpoint_is_the_latest_of_the_weights_that_read_best(
        tiny_set: Path, random_start: Path, tmp_path: Path, monkeypatch) -> None:
    import crnn_onnx.training.trainer as trainer

    # Validation scores: the start, then steps 4, 8, 12 and 16.
    scores = iter([0.1, 0.5, 0.7, 0.7, 0.6])
    monkeypatch.setattr(trainer, "accuracy_by_set",
                        lambda model, sets, config, choose: (next(scores), {}))
    result = finetune(tiny(tiny_set, tmp_path / "run", random_start, steps=16))
    assert (result.best_accuracy, result.step) == (0.7, 16)
    # The tie at step 12 goes to the longer-trained weights; step 16's worse ones are not kept.
    assert torch.load(result.folder.best, weights_only=True)["step"] == 12
    log = [json.loads(line) for line in result.folder.log.read_text().splitlines()]
    assert [(e["val_accuracy"], e["best_step"]) for e in log if e.get("event") == "eval"] == [
        (0.5, 4), (0.7, 8), (0.7, 12), (0.6, 12)]


def test_each_validation_set_is_scored_and_together_they_weigh_by_size(
        tiny_set: Path, random_start: Path, tmp_path: Path, word_set) -> None:
    small = word_set(tmp_path / "small", WORDS[:3])
    large = word_set(tmp_path / "large", WORDS * 2)
    events: list[TrainEvent] = []
    result = finetune(tiny(tiny_set, tmp_path / "run", random_start, val=(small, large)),
                      on_event=events.append)
    names = [str(small), str(large)]
    assert result.val_crops == 3 + 2 * len(WORDS)
    log = [json.loads(line) for line in result.folder.log.read_text().splitlines()]
    scored = [log[0]["start_accuracy"], *(e["val_accuracy"] for e in log if "by_set" in e)]
    by_set = [log[0]["start_by_set"], *(e["by_set"] for e in log if "by_set" in e)]
    assert len(by_set) == 3 and all(list(figures) == names for figures in by_set)
    for pooled, figures in zip(scored, by_set, strict=True):  # every crop counts once
        weighted = (3 * figures[names[0]] + 2 * len(WORDS) * figures[names[1]]) / result.val_crops
        assert pooled == pytest.approx(weighted)
    best = next(e for e in log if e.get("event") == "eval" and e["step"] == log[-1]["best_step"])
    assert result.best_by_set == best["by_set"] and result.start_by_set == log[0]["start_by_set"]
    assert [e.by_set for e in events if e.kind == "eval"] == by_set[1:]


def test_best_is_chosen_on_the_sets_named_and_the_others_only_watched(
        tiny_set: Path, random_start: Path, tmp_path: Path, word_set) -> None:
    domain = word_set(tmp_path / "domain", WORDS[:4])
    general = word_set(tmp_path / "general", WORDS * 2)
    notes: list[TrainEvent] = []
    result = finetune(tiny(tiny_set, tmp_path / "run", random_start, val=(domain, general),
                           choose_on=(domain,)), on_event=notes.append)
    assert result.val_crops == 4
    start = next(e.message for e in notes if e.message.startswith("start:"))
    assert "of the chosen sets' crops" in start and str(general) in start
    log = [json.loads(line) for line in result.folder.log.read_text().splitlines()]
    evals = [e for e in log if e.get("event") == "eval"]
    assert log[0]["start_accuracy"] == log[0]["start_by_set"][str(domain)]
    assert all(e["val_accuracy"] == e["by_set"][str(domain)] for e in evals)
    assert all(str(general) in e["by_set"] for e in evals)
    chosen = max(range(len(evals)), key=lambda i: (evals[i]["val_accuracy"], i))
    assert torch.load(result.folder.best, weights_only=True)["step"] == evals[chosen]["step"]


def test_bucket_training_feeds_long_words_at_their_own_width(
        tiny_set: Path, random_start: Path, tmp_path: Path, word_set, monkeypatch) -> None:
    import crnn_onnx.training.trainer as trainer

    long_words = ["subtotalamount", "totalpurchases", "cashierreceipt", "membershipcard"]
    data = word_set(tmp_path / "long", WORDS * 2 + long_words * 6)
    real_forward = trainer.forward
    widths: list[int] = []

    def recording_forward(model, x, bf16):
        widths.append(x.shape[3])
        return real_forward(model, x, bf16)

    monkeypatch.setattr(trainer, "forward", recording_forward)
    result = finetune(tiny(data, tmp_path / "bucket", random_start, steps=12))
    # Long words (224 px at height 32) get a batch of their own width, short ones 100 px.
    assert set(widths) == {100, 224}
    assert load_config(result.folder.config).width_policy == "bucket"
    widths.clear()
    fixed = finetune(tiny(data, tmp_path / "fixed", random_start, steps=4,
                          width_policy="fixed"))
    assert set(widths) == {100}
    assert load_config(fixed.folder.config).width_policy == "fixed"


def test_resume_after_a_stop_ends_like_the_uninterrupted_run(
        tiny_set: Path, random_start: Path, tmp_path: Path) -> None:
    whole = finetune(tiny(tiny_set, tmp_path / "whole", random_start))
    settings = tiny(tiny_set, tmp_path / "split", random_start)
    steps: list[int] = []
    first = finetune(settings, on_event=lambda e: steps.append(e.step) if e.kind == "step"
                     else None, should_stop=lambda: len(steps) >= 3)
    assert first.interrupted and first.step == 3
    assert torch.load(settings.out / "last.pth", weights_only=True)["step"] == 3
    second = finetune(settings)
    assert not second.interrupted
    assert second.step == whole.step == 8
    assert second.start_by_set == first.start_by_set == whole.start_by_set  # kept in last.pth
    assert run_files(settings.out) == run_files(whole.folder.root)
    log = [json.loads(line) for line in (settings.out / "log.jsonl").read_text().splitlines()]
    assert [e.get("event") for e in log if "event" in e] == [
        "start", "interrupted", "resume", "eval", "eval", "done"]
    # A complete run asked again trains nothing and changes nothing.
    before = (settings.out / "best.pth").stat().st_mtime_ns
    assert finetune(settings).step == 8
    assert (settings.out / "best.pth").stat().st_mtime_ns == before


@pytest.mark.parametrize(("budget", "said"), [({"steps": 8}, "of 8 steps"),
                                               ({"steps": None, "minutes": 5.0}, "of 5 min")])
def test_a_resumed_run_says_how_far_along_its_budget_it_is(
        tiny_set: Path, random_start: Path, tmp_path: Path, budget: dict, said: str) -> None:
    """A run spanning sessions says, when it resumes, its step, the minutes trained and the
    budget they count against (steps or minutes)."""
    settings = tiny(tiny_set, tmp_path / "run", random_start, **budget)
    steps: list[int] = []
    finetune(settings, on_event=lambda e: steps.append(e.step) if e.kind == "step" else None,
             should_stop=lambda: len(steps) >= 2)
    notes: list[str] = []
    finetune(settings, on_event=lambda e: notes.append(e.message) if e.kind == "note" else None,
             should_stop=lambda: True)
    resumed = next(n for n in notes if n.startswith("resuming at step 2 after "))
    assert f" min {said} (best validation " in resumed


def test_a_run_saved_before_the_figures_by_set_were_kept_resumes(
        tiny_set: Path, random_start: Path, tmp_path: Path) -> None:
    settings = tiny(tiny_set, tmp_path / "run", random_start)
    steps: list[int] = []
    finetune(settings, on_event=lambda e: steps.append(e.step) if e.kind == "step" else None,
             should_stop=lambda: len(steps) >= 3)
    last = settings.out / "last.pth"
    state = torch.load(last, weights_only=True)
    del state["start_by_set"], state["best_by_set"]  # as the older trainer wrote it
    torch.save(state, last)
    resumed = finetune(settings)
    assert resumed.step == 8 and resumed.start_by_set == {}
    assert list(resumed.best_by_set) == ["held out"]  # scored again from the next validation


def test_nan_loss_stops_with_one_error_and_keeps_the_last_good_weights(
        tiny_set: Path, random_start: Path, tmp_path: Path, monkeypatch) -> None:
    import crnn_onnx.training.trainer as trainer

    real_ctc = trainer.F.ctc_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real_ctc(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 4 else loss

    monkeypatch.setattr(trainer.F, "ctc_loss", poisoned)
    settings = tiny(tiny_set, tmp_path / "run", random_start, steps=20)
    with pytest.raises(CRNNError, match=r"loss became NaN at step 4.*lower the learning rate"):
        finetune(settings)
    state = torch.load(settings.out / "last.pth", weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # a checkpoint of another architecture
        (lambda tmp, draw: (torch.save({"model": {"fc.weight": torch.zeros(3, 3)}},
                                        tmp / "x.pth"), {"init": tmp / "x.pth"})[1],
         "does not match the CRNN architecture"),
        # a charset the start checkpoint was not trained with, without charset=
        (lambda tmp, draw: ((tmp / "c.yaml").write_text("charset: 'abc'\n"),
                             {"init_config": tmp / "c.yaml"})[1],
         "has 37 classes but the charset gives 4"),
        # data that is not there
        (lambda tmp, draw: {"data": (tmp / "missing",)}, "not found"),
        # labels with characters outside the charset, refused
        (lambda tmp, draw: {"data": (draw(tmp / "punct", ["a:b", "c"] * 8),),
                             "outside_charset": "refuse"}, "8 of 16 labels"),
        # one crop: nothing to hold out
        (lambda tmp, draw: {"data": (draw(tmp / "one", ["solo"]),)}, "too little data"),
        # labels with nothing the model can read
        (lambda tmp, draw: {"data": (draw(tmp / "none", ["***"] * 4),)},
         "no usable crops"),
        # a validation set with nothing the model can read
        (lambda tmp, draw: {"val": (draw(tmp / "blank", ["***"] * 2),)},
         "validation set .*blank' holds no usable crops"),
        # precision the CPU cannot compute natively (skipped where it can)
        (lambda tmp, draw: {"precision": "bf16"}, "needs a CPU with"),
    ],
)
def test_bad_inputs_are_refused_before_anything_is_written(
        tiny_set: Path, random_start: Path, tmp_path: Path, word_set, make, message) -> None:
    from crnn_onnx.training.precision import _native_bf16

    changes = make(tmp_path, word_set)
    if changes.get("precision") == "bf16" and _native_bf16():
        changes["precision"] = "fp32"
        changes["data"] = (tmp_path / "absent",)
        message = "not found"
    settings = tiny(tiny_set, tmp_path / "run", random_start, **changes)
    with pytest.raises(CRNNError, match=message):
        finetune(settings)
    assert not (tmp_path / "run").exists()


def test_from_scratch_starts_from_random_weights(tiny_set: Path, tmp_path: Path) -> None:
    result = finetune(tiny(tiny_set, tmp_path / "run", None, from_scratch=True, steps=2,
                           eval_every=2))
    assert result.step == 2 and result.start_accuracy == 0.0
    assert load_checkpoint(result.folder.best, CRNNConfig()) is not None


@pytest.mark.parametrize("frozen", [True, False])
def test_batchnorm_statistics_stay_the_start_weights_unless_asked(
        tiny_set: Path, random_start: Path, tmp_path: Path, frozen: bool) -> None:
    result = finetune(tiny(tiny_set, tmp_path / "run", random_start, steps=2, eval_every=2,
                           frozen_norm=frozen))
    start = torch.load(random_start, weights_only=True)["model"]
    trained = torch.load(result.folder.last, weights_only=True)["train_model"]
    stats = [k for k in start if k.endswith(("running_mean", "running_var"))]
    assert len(stats) == 6
    assert all(torch.equal(start[k], trained[k]) for k in stats) == frozen


def test_frozen_features_keep_every_layer_below_the_last_convolution(
        tiny_set: Path, random_start: Path, tmp_path: Path) -> None:
    result = finetune(tiny(tiny_set, tmp_path / "run", random_start, steps=2, eval_every=2,
                           train_features=False))
    start = torch.load(random_start, weights_only=True)["model"]
    trained = torch.load(result.folder.last, weights_only=True)["train_model"]
    kept = [k for k in start if k.startswith("feat_extract.")
            and (int(k.split(".")[1]) < 18 or "running" in k)]
    assert len(kept) == 22  # five convolutions and two BatchNorms; all three statistics
    assert all(torch.equal(start[k], trained[k]) for k in kept)
    for k in ("feat_extract.18.weight", "feat_extract.19.weight", "head.fc.weight"):
        assert not torch.equal(start[k], trained[k]), k
