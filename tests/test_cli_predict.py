"""``crnn-onnx predict`` through Typer's CliRunner: output contracts, exit codes, --output."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crnn_onnx import weights
from crnn_onnx.cli import app
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.predictor import Predictor

runner = CliRunner()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-images")
    paths = {}
    for i, (name, width) in enumerate([("one", 60), ("two", 150), ("three", 90)]):
        image = np.full((32, width, 3), 220, np.uint8)
        cv2.putText(image, name, (3, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (20, 20, 20), 2)
        paths[name] = folder / f"{i}-{name}.png"
        cv2.imwrite(str(paths[name]), image)
    paths["broken"] = folder / "broken.png"
    paths["broken"].write_text("not an image")
    return paths


def _predict(model: Path, *args: str | Path) -> object:
    return runner.invoke(app, ["predict", "--model", str(model), *map(str, args)])


def test_jsonl_contract(exported_model: Path, images: dict[str, Path]) -> None:
    order = [images["two"], images["one"], images["three"], images["one"]]
    result = _predict(exported_model, *order, "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(order)
    records = [json.loads(line) for line in lines]
    for record, path in zip(records, order, strict=True):
        assert list(record) == ["path", "text", "confidence", "error"]
        assert record["path"] == str(path)
        assert record["error"] is None
        assert isinstance(record["text"], str)
        assert 0.0 <= record["confidence"] <= 1.0
    assert records[1] == records[3]
    assert "3 recognised" not in result.stdout  # the summary goes to stderr
    assert "4 inputs: 4 recognised, 0 failed" in result.stderr


def test_broken_and_missing_inputs_are_records_and_exit_1(exported_model: Path,
                                                          images: dict[str, Path]) -> None:
    missing = images["one"].parent / "missing.png"
    result = _predict(exported_model, images["one"], images["broken"], missing, "-f", "jsonl",
                      "--quiet")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(images["one"]), str(images["broken"]), str(missing)]
    assert records[0]["error"] is None
    for record in records[1:]:
        assert record["text"] is None and record["confidence"] is None
        assert record["error"]
    assert result.stderr == ""  # --quiet: no info line, no summary


def test_text_csv_and_json_formats(exported_model: Path, images: dict[str, Path]) -> None:
    args = (images["one"], images["broken"])
    text = _predict(exported_model, *args, "-f", "text", "-q")
    assert text.exit_code == 1
    ok_line, bad_line = text.stdout.splitlines()
    path, word, conf = ok_line.split("\t")
    assert path == str(images["one"]) and 0 <= float(conf) <= 1
    assert bad_line.startswith(f"{images['broken']}\terror: cannot decode image")

    rows = list(csv.DictReader(io.StringIO(_predict(exported_model, *args, "-f", "csv").stdout)))
    assert [row["path"] for row in rows] == [str(p) for p in args]
    assert rows[0]["text"] == word and rows[0]["error"] == ""
    assert rows[1]["text"] == "" and rows[1]["confidence"] == "" and rows[1]["error"]

    records = json.loads(_predict(exported_model, *args, "-f", "json").stdout)
    assert [r["text"] for r in records] == [word, None]


def test_directory_input_all_good_exits_0(exported_model: Path, images: dict[str, Path],
                                          tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / images[name].name).write_bytes(images[name].read_bytes())
    result = _predict(exported_model, tmp_path, "-f", "jsonl", "--width-policy", "bucket",
                      "--batch-size", "1", "--threads", "1")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(x)["path"] for x in result.stdout.splitlines()] == [
        str(tmp_path / images["one"].name), str(tmp_path / images["two"].name)]


@pytest.mark.parametrize(
    "args",
    [
        ["--batch-size", "0"],  # below the minimum
        ["--format", "xml"],  # unknown format
        ["--device", "tpu"],  # unknown device
        ["--width-policy", "widest"],  # unknown policy
        [],  # (with no PATHS below)
    ],
)
def test_usage_errors_exit_2(exported_model: Path, images: dict[str, Path],
                             args: list[str]) -> None:
    paths = [str(images["one"])] if args else []
    result = runner.invoke(app, ["predict", "--model", str(exported_model), *args, *paths])
    assert result.exit_code == 2


def test_output_file_is_written_atomically(exported_model: Path, images: dict[str, Path],
                                           tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    result = _predict(exported_model, images["one"], images["two"], "-f", "jsonl", "-o", out)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    assert os.listdir(tmp_path) == ["results.jsonl"]  # no temporary file left behind


def test_output_errors_leave_no_file(exported_model: Path, images: dict[str, Path],
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _predict(exported_model, images["one"], "-o", tmp_path / "nope" / "out.txt")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot write {str(tmp_path / 'nope' / 'out.txt')!r}: folder "
        f"{str(tmp_path / 'nope')!r} does not exist"
    ]
    assert not (tmp_path / "nope").exists()

    # A failure half-way leaves the previous file untouched and no partial file.
    out = tmp_path / "out.txt"
    out.write_text("previous results\n")
    real = Predictor.predict_sources

    def failing(self: Predictor, sources: object):  # type: ignore[no-untyped-def]
        yield next(iter(real(self, sources)))  # type: ignore[arg-type]
        raise CRNNError("onnxruntime failed to run the model: boom")

    monkeypatch.setattr(Predictor, "predict_sources", failing)
    result = _predict(exported_model, images["one"], images["two"], "-o", out)
    assert result.exit_code == 1
    assert "boom" in result.stderr
    assert out.read_text() == "previous results\n"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions and a non-root user")
def test_read_only_output_folder(exported_model: Path, images: dict[str, Path],
                                 tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = _predict(exported_model, images["one"], "-o", folder / "out.txt")
    finally:
        folder.chmod(0o700)
    assert result.exit_code == 1
    assert "Permission denied" in result.stderr
    assert os.listdir(folder) == []


def test_unwritable_output_folder_simulated(exported_model: Path, images: dict[str, Path],
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """The same as above where permissions cannot be tested (root): mkstemp is refused."""
    from crnn_onnx import atomic

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    result = _predict(exported_model, images["one"], "-o", tmp_path / "out.txt")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: cannot write {str(tmp_path / 'out.txt')!r}: Permission denied"
    )
    assert os.listdir(tmp_path) == []


def test_model_errors_are_one_line(images: dict[str, Path], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("garbage")
    result = _predict(bad, images["one"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not a valid ONNX model" in result.stderr

    monkeypatch.setattr(weights, "_candidate_paths", lambda: [tmp_path / "crnn.onnx"])
    result = runner.invoke(app, ["predict", str(images["one"])])
    assert result.exit_code == 1
    assert "shipped model weights/crnn.onnx is missing" in result.stderr
    assert "crnn-onnx export --ckpt model.pth" in result.stderr


def test_config_option_for_a_model_without_metadata(exported_model: Path,
                                                    images: dict[str, Path],
                                                    tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="strips the model's metadata")
    proto = onnx.load(str(exported_model))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    result = _predict(bare, images["one"], "-q")
    assert result.exit_code == 1
    assert "pass --config" in result.stderr

    config = tmp_path / "crnn.yaml"
    config.write_text("image_shape: [3, 32, 100]\n"
                      "charset: '0123456789abcdefghijklmnopqrstuvwxyz'\n")
    with_config = _predict(bare, images["one"], "-q", "-f", "jsonl", "--config", config)
    reference = _predict(exported_model, images["one"], "-q", "-f", "jsonl")
    assert with_config.exit_code == 0, with_config.stderr
    assert with_config.stdout == reference.stdout


def test_default_model_path_prefers_existing(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "a" / "crnn.onnx", tmp_path / "b" / "crnn.onnx"
    second.parent.mkdir()
    second.write_bytes(b"x")
    monkeypatch.setattr(weights, "_candidate_paths", lambda: [first, second])
    assert weights.default_model_path() == second


@pytest.mark.slow
def test_predict_never_imports_torch(exported_model: Path, images: dict[str, Path]) -> None:
    code = (
        "import sys\n"
        "import crnn_onnx.inference.predictor, crnn_onnx.cli\n"
        "sys.argv = ['crnn-onnx', 'predict', sys.argv[1], '--model', sys.argv[2], '-f', 'jsonl']\n"
        "try:\n"
        "    crnn_onnx.cli.main()\n"
        "except SystemExit as stop:\n"
        "    print('exit', stop.code, file=sys.stderr)\n"
        "print('torch imported' if 'torch' in sys.modules else 'torch not imported',"
        " file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(images["one"]), str(exported_model)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert "torch not imported" in done.stderr, done.stderr
    assert "exit 0" in done.stderr, done.stderr
    assert json.loads(done.stdout)["error"] is None


def test_paths_from_stdin_keep_their_order(exported_model: Path,
                                           images: dict[str, Path]) -> None:
    """`find ... | crnn-onnx predict - -f jsonl`: one record per line, blank lines skipped,
    an unreadable path an error record; `-` may stand among other paths."""
    listed = f"{images['two']}\n\n{images['one']}\r\n{images['broken']}\n"
    result = runner.invoke(app, ["predict", "--model", str(exported_model), str(images["three"]),
                                 "-", "-f", "jsonl"], input=listed)
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(images[k]) for k in ("three", "two", "one",
                                                                      "broken")]
    assert [r["error"] is None for r in records] == [True, True, True, False]


def test_two_paths_on_stdin_give_two_records_in_order(exported_model: Path,
                                                      images: dict[str, Path]) -> None:
    listed = f"{images['one']}\n{images['two']}\n"
    result = runner.invoke(app, ["predict", "--model", str(exported_model), "-", "-f", "jsonl"],
                           input=listed)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["path"] for line in result.stdout.splitlines()] == [
        str(images["one"]), str(images["two"])]


def test_char_confidences_in_json_and_csv(exported_model: Path,
                                          images: dict[str, Path]) -> None:
    reference = Predictor(exported_model).predict([images["one"]])[0]
    result = _predict(exported_model, images["one"], images["broken"], "-f", "jsonl",
                      "--char-confidence")
    good, bad = (json.loads(line) for line in result.stdout.splitlines())
    assert list(good) == ["path", "text", "confidence", "error", "char_confidences"]
    assert len(good["char_confidences"]) == len(good["text"])
    assert good["char_confidences"] == pytest.approx(list(reference.char_probs), abs=1e-6)
    assert bad["char_confidences"] is None
    result = _predict(exported_model, images["one"], "-f", "csv", "--char-confidence")
    header, row = list(csv.reader(io.StringIO(result.stdout)))
    assert header[-1] == "char_confidences"
    assert [float(p) for p in row[-1].split()] == pytest.approx(good["char_confidences"])
    plain = _predict(exported_model, images["one"], "-f", "jsonl")
    assert "char_confidences" not in json.loads(plain.stdout)
