"""``crnn-onnx eval`` (the CI accuracy gate) and ``crnn-onnx synth`` through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crnn_onnx.cli import app
from crnn_onnx.inference.predictor import Predictor

runner = CliRunner()


@pytest.fixture(scope="module")
def labelled_set(tmp_path_factory: pytest.TempPathFactory, exported_model: Path) -> Path:
    """Three crops labelled with what the test model reads, so the truth is known exactly."""
    folder = tmp_path_factory.mktemp("eval-set")
    (folder / "imgs").mkdir()
    names = []
    for i, width in enumerate([70, 120, 95]):
        image = np.full((32, width, 3), 230, np.uint8)
        cv2.putText(image, f"w{i}x", (2, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (10, 10, 10), 2)
        names.append(f"imgs/{i}.png")
        cv2.imwrite(str(folder / names[-1]), image)
    read = Predictor(exported_model).predict([folder / n for n in names])
    lines = [f"{name}\t{p.text.upper()}\n" for name, p in zip(names, read, strict=True)]
    (folder / "labels.tsv").write_text("".join(lines), encoding="utf-8")
    return folder / "labels.tsv"


def _eval(model: Path, labels: Path, *args: str) -> object:
    return runner.invoke(app, ["eval", str(labels), "--model", str(model), *args])


def test_eval_scores_a_perfect_read_and_passes_the_gate(exported_model: Path,
                                                        labelled_set: Path) -> None:
    # Labels are upper-cased: comparison is case-insensitive on the model's charset.
    result = _eval(exported_model, labelled_set, "--min-accuracy", "1.0")
    assert result.exit_code == 0, result.stderr
    assert "word accuracy  100.00% (3/3)" in result.stdout
    assert "CER            0.00%" in result.stdout


def test_eval_gate_fails_below_min_accuracy(exported_model: Path, labelled_set: Path) -> None:
    lines = labelled_set.read_text(encoding="utf-8").splitlines()
    name, _text = lines[0].split("\t")
    lines[0] = f"{labelled_set.parent / name}\tnot-what-it-reads"  # absolute paths work too
    wrong = labelled_set.parent / "wrong.tsv"
    wrong.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _eval(exported_model, wrong, "--min-accuracy", "0.9", "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["total"] == 3
    assert report["correct"] == 2
    assert report["word_accuracy"] == pytest.approx(2 / 3)
    assert report["mistakes"][0]["truth"] == "notwhatitreads"
    assert "below --min-accuracy 90.00%" in result.stderr
    assert _eval(exported_model, wrong, "--min-accuracy", "0.6").exit_code == 0


def test_eval_counts_a_missing_image_as_wrong_and_says_why(exported_model: Path,
                                                           labelled_set: Path,
                                                           tmp_path: Path) -> None:
    labels = tmp_path / "labels.tsv"
    good = labelled_set.read_text(encoding="utf-8").splitlines()[0].split("\t")
    labels.write_text(f"{labelled_set.parent / good[0]}\t{good[1]}\nmissing.png\tabc\n",
                      encoding="utf-8")
    result = _eval(exported_model, labels, "--format", "json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert (report["total"], report["correct"], report["failed"]) == (2, 1, 1)
    assert "missing.png" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["eval", "nowhere.tsv"], 1, "cannot read labels"),  # missing labels file
        (["eval", "x.tsv", "--min-accuracy", "95"], 2, "less than or equal to 1"),  # a fraction
    ],
)
def test_eval_usage_and_input_errors(args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_synth_compounds_option_reaches_the_generator(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    texts = {}
    for share in ("0", "1"):
        result = runner.invoke(app, ["synth", str(tmp_path / share), "-n", "4", "--seed", "4",
                                     "--split", "train", "--compounds", share])
        assert result.exit_code == 0, result.stderr
        texts[share] = (tmp_path / share / "labels.tsv").read_text(encoding="utf-8")
    assert texts["0"] != texts["1"]
    out_of_range = runner.invoke(app, ["synth", str(tmp_path / "x"), "--compounds", "1.5"])
    assert out_of_range.exit_code == 2


def test_synth_long_option_renders_long_texts(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    result = runner.invoke(app, ["synth", str(tmp_path / "long"), "-n", "3", "--seed", "4",
                                 "--split", "train", "--long", "1"])
    assert result.exit_code == 0, result.stderr
    lines = (tmp_path / "long" / "labels.tsv").read_text(encoding="utf-8").splitlines()
    assert [len(line.split("\t")[1]) >= 13 for line in lines] == [True] * 3
    assert runner.invoke(app, ["synth", str(tmp_path / "x"), "--long", "2"]).exit_code == 2


def test_synth_without_the_heldout_fonts_names_the_script(tmp_path: Path) -> None:
    """A new machine has DejaVu, a training family (conftest leaves only that): the default
    held-out split fails in one line that says how to install the held-out families."""
    pytest.importorskip("PIL")
    result = runner.invoke(app, ["synth", str(tmp_path / "set"), "-n", "3"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: no usable heldout")
    assert "scripts/install_fonts.sh" in result.stderr


def test_synth_writes_a_labelled_set_that_eval_reads(tmp_path: Path, exported_model: Path) -> None:
    pytest.importorskip("PIL")
    result = runner.invoke(app, ["synth", str(tmp_path / "set"), "-n", "3", "--seed", "4",
                                 "--split", "train"])
    assert result.exit_code == 0, result.stderr
    labels = tmp_path / "set" / "labels.tsv"
    assert len(labels.read_text(encoding="utf-8").splitlines()) == 3
    evaluated = _eval(exported_model, labels, "--format", "json")
    assert evaluated.exit_code == 0
    assert json.loads(evaluated.stdout)["total"] == 3


def test_eval_report_shows_every_misread(exported_model: Path, labelled_set: Path,
                                         tmp_path: Path) -> None:
    """`eval --report DIR`: the page lists each misread crop (its truth and reading) and
    copies its image; the text report on stdout is unchanged."""
    from html.parser import HTMLParser

    wrong = tmp_path / "wrong.tsv"
    lines = labelled_set.read_text(encoding="utf-8").splitlines()
    truths = ["zzzz", "q7q7"]
    wrong.write_text("".join(f"{labelled_set.parent / line.split(chr(9))[0]}\t{t}\n"
                             for line, t in zip(lines[:2], truths, strict=True))
                     + lines[2].replace("imgs/", f"{labelled_set.parent}/imgs/") + "\n",
                     encoding="utf-8")
    plain = _eval(exported_model, wrong)
    result = _eval(exported_model, wrong, "--report", str(tmp_path / "report"))
    assert result.exit_code == 0, result.output
    assert result.stdout == plain.stdout
    assert "report: " in result.stderr and "(2 misreads)" in result.stderr

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.text: list[str] = []
            self.images: list[str] = []

        def handle_data(self, data: str) -> None:
            self.text.append(data)

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                self.images.extend(v for k, v in attrs if k == "src" and v)

    page = Cells()
    page.feed((tmp_path / "report" / "index.html").read_text(encoding="utf-8"))
    text = "".join(page.text)
    assert all(truth in text for truth in truths)
    assert len(page.images) == 2
    assert all((tmp_path / "report" / src).is_file() for src in page.images)


def test_info_describes_a_model_as_text_and_json(exported_model: Path) -> None:
    text = runner.invoke(app, ["info", str(exported_model)])
    assert text.exit_code == 0, text.output
    assert "images" in text.stdout and "output0" in text.stdout and "fp32" in text.stdout
    result = runner.invoke(app, ["info", str(exported_model), "--format", "json"])
    described = json.loads(result.stdout)
    assert {"inputs", "outputs", "opset", "charset", "precision", "metadata"} <= set(described)
    assert described["inputs"][0]["shape"] == ["batch", 3, 32, "width"]
    assert described["precision"] == "fp32" and described["opset"] == 17
    assert "".join(described["charset"]) == "0123456789abcdefghijklmnopqrstuvwxyz"


def test_info_on_a_file_that_is_not_onnx_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    result = runner.invoke(app, ["info", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
