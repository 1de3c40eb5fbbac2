"""``crnn-onnx finetune`` from the command line: bad input (one line, exit code, nothing
written), a charset change carried end to end (export, info, predict, eval --exact), and
Ctrl-C then the same command resuming the run, and the warning of a run that read no better
than its start weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crnn_onnx.cli import app

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")

runner = CliRunner()
LOWER = "0123456789abcdefghijklmnopqrstuvwxyz"
RECEIPT_CHARSET = LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ:."
QUICK = ["--batch-size", "8", "--replay", "0", "--augment", "0", "--precision", "fp32",
         "--warmup", "0", "--holdout", "0.25", "--threads", "2", "--quiet"]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory, word_set) -> Path:
    return word_set(tmp_path_factory.mktemp("cli") / "set", ["cash", "total", "tax", "net"] * 4)


def finetune(*args: str) -> object:
    return runner.invoke(app, ["finetune", *args])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        # no such data
        (["{tmp}/missing", "--out", "{tmp}/run", "--steps", "2"], 1, "not found"),
        # the run folder is a file
        (["{set}", "--out", "{set}/labels.tsv", "--steps", "2"], 1, "is a file, not a folder"),
        # a folder holding something else
        (["{set}", "--out", "{set}", "--steps", "2"], 1, "holds no fine-tuning run"),
        # labels the charset cannot spell, refused
        (["{set}", "--out", "{tmp}/run", "--steps", "2", "--charset", "abc",
          "--outside-charset", "refuse"], 1, "outside the charset"),
        # a replay share that leaves nothing of the user's data: a usage error
        (["{set}", "--out", "{tmp}/run", "--replay", "1.5"], 2, "--replay"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(tiny_set: Path, tmp_path: Path, args, code,
                                                message) -> None:
    filled = [a.format(tmp=tmp_path, set=tiny_set) for a in args]
    result = finetune(*QUICK, *filled)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    if code == 1:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert not (tmp_path / "run").exists()


def test_another_run_in_the_folder_is_refused(tiny_set: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"settings": {"lr": 1.0}}))
    result = finetune(str(tiny_set), "--out", str(run), "--steps", "2", *QUICK)
    assert result.exit_code == 1
    assert "holds another run" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]


@pytest.mark.slow
def test_a_new_charset_goes_through_export_info_predict_and_eval(tmp_path: Path,
                                                                word_set) -> None:
    """Case and punctuation learnt on a small set: the exported model's metadata carries the
    new charset, predict prints its characters, and eval --exact scores them as written."""
    words = ["CASH", "TOTAL:", "RM12.50", "Net", "TAX", "Qty:2", "PAID.", "Due"] * 3
    data = word_set(tmp_path / "receipts", words)
    run = tmp_path / "run"
    result = finetune(str(data), "--out", str(run), "--steps", "60", "--eval-every", "60",
                      "--charset", RECEIPT_CHARSET, "--lr", "1e-3", "--export", *QUICK)
    assert result.exit_code == 0, result.output
    assert f"exported    {run / 'model.onnx'}" in result.stdout
    assert f"crnn-onnx eval LABELS --model {run / 'model.onnx'}" in result.stdout

    info = runner.invoke(app, ["info", str(run / "model.onnx"), "--format", "json"])
    assert info.exit_code == 0, info.output
    assert "".join(json.loads(info.stdout)["charset"]) == RECEIPT_CHARSET
    # Trained at bucket widths, and said so: predict and eval then read that way by default.
    assert json.loads(info.stdout)["width_policy"] == "bucket"

    read = runner.invoke(app, ["predict", str(data), "--model", str(run / "model.onnx"),
                               "--format", "jsonl", "--quiet"])
    assert read.exit_code == 0, read.output
    records = [json.loads(line) for line in read.stdout.splitlines()]
    texts = [r["text"] for r in records]
    assert set("".join(texts)) <= set(RECEIPT_CHARSET)
    assert set("".join(texts)) & set("ABCDEFGHIJKLMNOPQRSTUVWXYZ:.")  # the new characters

    truth = dict(line.split("\t") for line in (data / "labels.tsv").read_text().splitlines())
    exact = sum(truth[Path(r["path"]).name] == r["text"] for r in records) / len(records)
    scored = runner.invoke(app, ["eval", str(data / "labels.tsv"), "--model",
                                 str(run / "model.onnx"), "--exact", "--format", "json"])
    assert json.loads(scored.stdout)["word_accuracy"] == pytest.approx(exact)
    folded = runner.invoke(app, ["eval", str(data / "labels.tsv"), "--model",
                                 str(run / "model.onnx"), "--format", "json"])
    assert json.loads(folded.stdout)["word_accuracy"] >= exact


@pytest.mark.slow
def test_ctrl_c_saves_the_run_and_the_same_command_resumes_it(tiny_set: Path,
                                                              tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "crnn_onnx", "finetune", str(tiny_set), "--out", str(run),
               "--steps", "30", "--eval-every", "10", *QUICK[:-1], "--batch-size", "4"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    log = run / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and '"event": "start"' in log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "the same command resumes the run" in err
    stopped = torch.load(run / "last.pth", weights_only=True)["step"]
    assert 0 <= stopped < 30
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    said = " ".join(again.stderr.split())  # the console wraps long lines
    assert f"resuming at step {stopped:,} after " in said
    assert " min of 30 steps (best validation" in said  # how far along the schedule it is
    assert "trained     30 steps" in again.stdout
    assert torch.load(run / "last.pth", weights_only=True)["step"] == 30


def test_command_line_defaults_are_the_settings_defaults() -> None:
    """The command shows and passes on FinetuneSettings' defaults, so that the library and
    the command line train the same run when nothing is given (minutes aside: 30 unless
    --steps is given)."""
    import dataclasses

    import typer.main

    from crnn_onnx.training.settings import FinetuneSettings

    command = typer.main.get_command(app).commands["finetune"]  # type: ignore[attr-defined]
    cli = {p.name: p.default for p in command.params}
    compared = 0
    for field in dataclasses.fields(FinetuneSettings):
        if (field.name not in cli or field.default is dataclasses.MISSING
                or field.name == "minutes"):
            continue
        default = cli[field.name]
        if isinstance(field.default, tuple):  # repeatable options: None on the command line
            default = tuple(default or ())
        assert default == field.default, field.name
        compared += 1
    assert compared >= 15


def test_the_replay_widths_option_reaches_the_run(tiny_set: Path, tmp_path: Path) -> None:
    """``--replay-widths own`` is the run's setting (recorded in run.json, which makes the run
    what it is), not an option the command line drops on the way."""
    run = tmp_path / "run"
    result = finetune(*QUICK, str(tiny_set), "--out", str(run), "--steps", "2", "--replay",
                      "0.25", "--replay-renders", "0", "--replay-data", str(tiny_set),
                      "--replay-widths", "own")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["settings"]["replay_widths"] == "own"


def test_the_summary_gives_each_validation_set_its_figures_and_choose_on_reaches_the_run(
        tiny_set: Path, tmp_path: Path, word_set) -> None:
    other = word_set(tmp_path / "other", ["net", "tax"])
    result = finetune(*QUICK, str(tiny_set), "--out", str(tmp_path / "run"), "--steps", "2",
                      "--val", str(tiny_set), "--val", str(other), "--choose-on", str(other))
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert settings["choose_on"] == [str(other.resolve())]
    assert "(2 crops;" in result.stdout  # chosen on the two crops of --choose-on
    lines = result.stdout.splitlines()
    for name in (tiny_set, other):
        line = next(line for line in lines if line.startswith(f"  {name}  "))
        assert line.count("%") == 2 and " -> " in line  # start -> best


@pytest.mark.parametrize(("start", "best", "warned"),
                         [(0.7576, 0.7404, True), (0.75, 0.75, True), (0.70, 0.72, False)])
def test_a_run_that_read_no_better_than_its_start_weights_says_so(
        tiny_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: float,
        best: float, warned: bool) -> None:
    """A run whose best checkpoint reads its validation crops no better than the weights it
    started from ends with a warning naming both figures (the user keeps the start weights);
    a run that gained says nothing of the kind."""
    from crnn_onnx.config import load_config
    from crnn_onnx.training import trainer
    from crnn_onnx.training.outcome import FinetuneResult
    from crnn_onnx.training.run_folder import RunFolder

    def fake_run(settings, on_event, should_stop) -> FinetuneResult:
        return FinetuneResult(RunFolder(settings.out), load_config(None), 10, best, start,
                              {"set": best}, {"set": start}, 16, 4, 60.0, 20.0, "fp32", False)

    monkeypatch.setattr(trainer, "finetune", fake_run)
    result = finetune(*QUICK, str(tiny_set), "--out", str(tmp_path / "run"), "--steps", "2")
    assert result.exit_code == 0, result.output
    warning = (f"warning: no checkpoint read the validation crops better than the start "
               f"weights did ({start:.2%} -> {best:.2%})")
    assert (warning in result.stderr) is warned
    assert "warning" not in result.stdout  # the results stay machine-readable
