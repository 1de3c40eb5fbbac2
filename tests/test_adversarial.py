"""The adversarial input matrix, end to end through ``crnn-onnx``.

Every bad input must get a clear one-line error (a record's ``error``, or ``error: ...``
and exit 1 for what stops the whole run) and every good input of the same run must still
get its correct result; nothing already written may be lost. Unit-level checks of the
same modules live in test_images, test_image_headers, test_session, test_checkpoint and
test_cli_predict; this file adds what only shows end to end.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from crnn_onnx.cli import app
from crnn_onnx.config import CRNNConfig
from crnn_onnx.inference import images
from crnn_onnx.inference.engines.onnxruntime import OrtEngine
from crnn_onnx.inference.images import read_image
from crnn_onnx.inference.options import PredictorOptions
from crnn_onnx.inference.predictor import Predictor

runner = CliRunner()
POSIX = os.name == "posix"


def word_crop(text: str, seed: int, width: int = 96) -> np.ndarray:
    """A noisy (32, width, 3) uint8 BGR crop with dark text: input-dependent logits."""
    crop = np.full((32, width, 3), 215, np.uint8)
    crop += np.random.default_rng(seed).integers(0, 30, crop.shape, dtype=np.uint8)
    cv2.putText(crop, text, (4, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (25, 25, 40), 2)
    return crop


def png(pixels: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", pixels)
    assert ok
    return buf.tobytes()


BASE = word_crop("hard", seed=1)


def _one_error_line(stderr: str) -> str:
    """The run's one ``error:`` line (INFO and WARNING lines aside)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


# --- images: one run over a folder of everything ------------------------------------------


@dataclass(frozen=True)
class ImageCase:
    """A file in the matrix folder: ``make`` writes it and returns the pixels it must read
    as (BGR uint8, within ``atol``), or ``None`` when it must give an error matching
    ``error``."""

    name: str
    make: Callable[[Path], np.ndarray | None]
    error: str | None = None
    atol: int = 0


def _write(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _cv2_file(pixels: np.ndarray, expected: np.ndarray | None = None
              ) -> Callable[[Path], np.ndarray]:
    def make(path: Path) -> np.ndarray:
        ok, buf = cv2.imencode(path.suffix, pixels)
        assert ok
        path.write_bytes(buf.tobytes())
        return pixels if expected is None else expected
    return make


def _pil_file(image: Image.Image, fmt: str, **kwargs: object) -> Callable[[Path], np.ndarray]:
    """Save with Pillow; the expected pixels are Pillow's own reading of the file."""
    def make(path: Path) -> np.ndarray:
        image.save(path, fmt, **kwargs)
        with Image.open(path) as saved:
            return np.asarray(saved.convert("RGB"))[:, :, ::-1].copy()
    return make


def _over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float64) / 255
    return np.rint(colour * a + 255 * (1 - a)).astype(np.uint8)


def _alpha_file(grey: bool) -> Callable[[Path], np.ndarray]:
    """Grey+alpha or RGBA with an alpha ramp (0 = transparent on the left)."""
    def make(path: Path) -> np.ndarray:
        alpha = np.tile(np.linspace(0, 255, BASE.shape[1]).astype(np.uint8), (32, 1))
        if grey:
            g = cv2.cvtColor(BASE, cv2.COLOR_BGR2GRAY)
            Image.fromarray(np.dstack([g, alpha]), "LA").save(path)
            return np.repeat(_over_white(g[..., None], alpha), 3, axis=2)
        Image.fromarray(np.dstack([BASE[:, :, ::-1], alpha]), "RGBA").save(path)
        return _over_white(BASE, alpha)
    return make


def _grey_file(path: Path) -> np.ndarray:
    g = cv2.cvtColor(BASE, cv2.COLOR_BGR2GRAY)
    Image.fromarray(g, "L").save(path)
    return np.repeat(g[..., None], 3, axis=2)


def _animated_gif(path: Path) -> np.ndarray:
    frames = [Image.fromarray(BASE[:, :, ::-1]), Image.fromarray(255 - BASE[:, :, ::-1])]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as gif:
        assert gif.n_frames == 2
        return np.asarray(gif.convert("RGB"))[:, :, ::-1].copy()  # frame 0


def _huge_header() -> bytes:
    data = bytearray(png(BASE))
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR claims 100000 x 100000 (CRC aside)
    return bytes(data)


def _idat_bomb() -> bytes:
    """Found by fuzzing: OpenCV allocates whatever a chunk claims (here 3.5 GB)."""
    return png(BASE)[:33] + (3_590_324_823).to_bytes(4, "big") + b"IDAT" + bytes(16)


def _float_tiff(path: Path) -> None:
    Image.fromarray(BASE[:, :, 0].astype(np.float32), "F").save(path, "TIFF")


_RNG = np.random.default_rng(7)
IMAGE_CASES = [
    ImageCase("00 reference.png", _cv2_file(BASE)),  # a space in the name
    ImageCase("01-zero-bytes.png", _write(b""), "empty file"),
    ImageCase("02-truncated.png", _write(png(BASE)[:300]), "cannot decode image"),
    ImageCase("03-truncated.jpg", _write(cv2.imencode(".jpg", BASE)[1].tobytes()[:400]),
              "cannot decode image"),
    ImageCase("04-text.png", _write(b"name,text\ncrop.png,hello\n"), "cannot decode image"),
    ImageCase("05-document.jpg", _write(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),
              "cannot decode image"),
    ImageCase("06-1x1.png", _cv2_file(np.array([[[10, 200, 30]]], np.uint8))),
    ImageCase("07-1x20000.png", _cv2_file(_RNG.integers(0, 256, (1, 20_000, 3), np.uint8))),
    ImageCase("08-20000x1.png", _cv2_file(_RNG.integers(0, 256, (20_000, 1, 3), np.uint8))),
    ImageCase("09-grey.png", _grey_file),
    ImageCase("10-grey-alpha.png", _alpha_file(grey=True), atol=1),  # composited on white
    ImageCase("11-rgba.png", _alpha_file(grey=False), atol=1),
    ImageCase("12-palette.png", _pil_file(Image.fromarray(BASE[:, :, ::-1]).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")),
    ImageCase("13-16-bit.png", _cv2_file(BASE.astype(np.uint16) * 257, BASE)),
    # OpenCV's CMYK conversion rounds one level away from Pillow's.
    ImageCase("14-cmyk.jpg", _pil_file(Image.fromarray(BASE[:, :, ::-1]).convert("CMYK"),
                                       "JPEG"), atol=1),
    ImageCase("15-animated.gif", _animated_gif),  # the first frame
    ImageCase("16-ünïcødé 文字.png", _cv2_file(BASE)),
    ImageCase("17-unreadable.png", _cv2_file(BASE), "Permission denied"),  # see the fixture
    ImageCase("18-dangling-link.png", lambda p: p.symlink_to(p.parent / "gone.png"),
              "No such file or directory"),
    ImageCase("19-named-pipe.png", lambda p: os.mkfifo(p), "not a regular file"),
    ImageCase("20-huge-header.png", _write(_huge_header()), r"image too large \(100000x100000"),
    ImageCase("21-idat-bomb.png", _write(_idat_bomb()), "PNG chunk 'IDAT' claims 3590324823"),
    ImageCase("22-float.tiff", _float_tiff, "unsupported pixel type float32"),
    ImageCase("sub/23-deeper.png", _cv2_file(word_crop("deep", seed=2))),
]
# Arguments after the folder: (argument relative to tmp, error it must give, or None).
EXTRA_ARGS = [
    ("matrix/00 reference.png", None),  # the same file again: processed again
    ("missing.png", "no such file or directory"),
    ("matrix/*.nomatch", "pattern matched no image files"),
    ("empty-dir", "directory holds no image files"),
]


@dataclass(frozen=True)
class MatrixRun:
    root: Path
    exit_code: int
    stderr: str
    records: list[dict]

    def record(self, rel: str) -> dict:
        found = [r for r in self.records if r["path"] == str(self.root / rel)]
        assert len(found) >= 1, rel
        return found[0]


@pytest.fixture(scope="module")
def matrix(exported_model: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[MatrixRun, dict[str, np.ndarray | None]]:
    if not POSIX:
        pytest.skip("the matrix uses symlinks and named pipes")
    root = tmp_path_factory.mktemp("adversarial")
    folder = root / "matrix"
    (folder / "sub").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (folder / "sub" / "notes.txt").write_text("not an image: skipped by the folder walk")
    os.symlink(folder, folder / "sub" / "loop")  # a symlink loop
    expected = {case.name: case.make(folder / case.name) for case in IMAGE_CASES}

    unreadable = folder / "17-unreadable.png"
    real_fromfile = np.fromfile

    def denied(file: object, *args: object, **kwargs: object) -> np.ndarray:
        if os.fspath(file) == str(unreadable):  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", str(unreadable))
        return real_fromfile(file, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        if os.geteuid() == 0:  # root reads anything: refuse it the way the OS would
            patch.setattr(images.np, "fromfile", denied)
        else:
            unreadable.chmod(0)
        result = runner.invoke(app, [
            "predict", "--model", str(exported_model), "--format", "jsonl", str(folder),
            *(str(root / arg) for arg, _ in EXTRA_ARGS),
        ])
        unreadable.chmod(0o644)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    return MatrixRun(root, result.exit_code, result.stderr, records), expected


@pytest.fixture(scope="module")
def predictor(exported_model: Path) -> Predictor:
    return Predictor(exported_model, PredictorOptions(device="cpu"))


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c.name for c in IMAGE_CASES])
def test_image_case(case: ImageCase, matrix: tuple[MatrixRun, dict], predictor: Predictor
                    ) -> None:
    run, expected = matrix
    record = run.record(f"matrix/{case.name}")
    if case.error is not None:
        assert record["text"] is None and record["confidence"] is None
        assert record["error"] is not None and "\n" not in record["error"]
        assert re.search(case.error, record["error"]), record["error"]
        return
    assert record["error"] is None, record["error"]
    pixels = read_image(run.root / "matrix" / case.name)
    want = expected[case.name]
    assert pixels.shape == want.shape
    assert np.abs(pixels.astype(int) - want.astype(int)).max() <= case.atol
    reference = predictor.predict([pixels])[0]  # the library on the same pixels
    assert record["text"] == reference.text
    assert record["confidence"] == pytest.approx(reference.confidence, abs=1e-5)


def test_matrix_run_processes_every_input_once_in_order(matrix: tuple[MatrixRun, dict]
                                                        ) -> None:
    run, _ = matrix
    assert run.exit_code == 1  # some inputs failed
    walked = [*sorted(c.name for c in IMAGE_CASES if "/" not in c.name), "sub/23-deeper.png"]
    paths = [str(run.root / "matrix" / name) for name in walked]
    paths += [str(run.root / arg) for arg, _ in EXTRA_ARGS]
    assert [r["path"] for r in run.records] == paths  # the loop was not followed twice
    for (arg, error), record in zip(EXTRA_ARGS, run.records[len(walked):], strict=True):
        assert record["error"] == error, arg
    failed = sum(r["error"] is not None for r in run.records)
    assert f"{len(paths)} inputs: {len(paths) - failed} recognised, {failed} failed" in run.stderr


def test_explicit_device_file_is_refused_not_read(exported_model: Path) -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    result = runner.invoke(app, ["predict", "--model", str(exported_model), "/dev/zero", "-q"])
    assert result.exit_code == 1
    assert result.stdout == "/dev/zero\terror: not a regular file (a pipe, socket or device)\n"


@pytest.mark.slow  # thousands of files through predict
def test_thousands_of_files(exported_model: Path, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """2500 files, every 50th broken, through --output: every one recorded, in order. The
    model is replaced by a cheap stand-in (logits from the pixels), since the point is the
    walk, the pipeline and the writer at scale, not the model's speed."""
    folder = tmp_path / "many"
    good, broken = png(BASE[:, :40]), b"\x89PNG\r\n\x1a\nbroken"
    for i in range(2500):
        shard = folder / f"shard{i // 1000}"
        shard.mkdir(parents=True, exist_ok=True)
        (shard / f"{i:05d}.png").write_bytes(broken if i % 50 == 7 else good)

    def stand_in(self: OrtEngine, batch: np.ndarray) -> np.ndarray:
        frames = batch.shape[3] // 4 + 1
        logits = np.zeros((frames, batch.shape[0], self.spec.config.num_classes), np.float32)
        logits[:, :, 1] = batch.mean(axis=(1, 2, 3))  # "0" wins where the crop is bright
        return logits

    monkeypatch.setattr(OrtEngine, "run", stand_in)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["predict", "--model", str(exported_model), str(folder),
                                 "-f", "jsonl", "-o", str(out), "--batch-size", "64"])
    assert result.exit_code == 1
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["path"]).name for r in records] == [f"{i:05d}.png" for i in range(2500)]
    assert [i for i, r in enumerate(records) if r["error"]] == list(range(7, 2500, 50))
    assert len({r["text"] for r in records if not r["error"]}) == 1
    assert "2500 inputs: 2450 recognised, 50 failed" in result.stderr


# --- models ---------------------------------------------------------------------------


def _onnx():
    return pytest.importorskip("onnx", reason="builds the model variants")


@pytest.fixture(scope="module")
def model_variants(exported_model: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> dict[str, Path]:
    onnx = _onnx()
    from onnx import TensorProto, helper

    folder = tmp_path_factory.mktemp("models")
    variants: dict[str, Path] = {"missing": folder / "missing.onnx"}

    variants["truncated"] = folder / "truncated.onnx"
    variants["truncated"].write_bytes(exported_model.read_bytes()[:300_000])

    variants["png"] = folder / "image.onnx"  # an image renamed .onnx
    variants["png"].write_bytes(png(BASE))

    proto = onnx.load(str(exported_model))
    variants["external-data-missing"] = folder / "external" / "crnn.onnx"
    variants["external-data-missing"].parent.mkdir()
    onnx.save(proto, str(variants["external-data-missing"]), save_as_external_data=True,
              all_tensors_to_one_file=True, location="crnn.weights")
    (folder / "external" / "crnn.weights").unlink()

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 100])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 100])
    other = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])],
                                                "not-a-crnn", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    variants["not-a-crnn"] = folder / "identity.onnx"
    onnx.save(other, str(variants["not-a-crnn"]))

    def with_charset(name: str, charset: str, symbolic_classes: bool) -> Path:
        tampered = onnx.load(str(exported_model))
        for prop in tampered.metadata_props:
            if prop.key == "crnn_onnx.charset":
                prop.value = json.dumps(list(charset))
        if symbolic_classes:
            dim = tampered.graph.output[0].type.tensor_type.shape.dim[2]
            dim.dim_param = "classes"
        path = folder / f"{name}.onnx"
        onnx.save(tampered, str(path))
        return path

    # The graph says 37 classes; the metadata's charset gives 10 + blank.
    variants["charset-mismatch"] = with_charset("charset", "0123456789", False)
    # The same, with the class axis symbolic: only the first run's output can tell.
    variants["charset-mismatch-dynamic"] = with_charset("dynamic", "0123456789", True)
    return variants


@pytest.mark.parametrize(
    ("variant", "config", "message"),
    [
        ("missing", None, "not found"),  # no such file
        ("truncated", None, "not a valid ONNX model"),  # cut at 300 kB
        ("png", None, "not a valid ONNX model"),  # not ONNX at all
        ("external-data-missing", None, "crnn.weights"),  # its weights file is gone
        ("not-a-crnn", None, r"expected a float \(N, 3, 32, W\) input and a \(T, N, C\)"),
        ("charset-mismatch", None, "outputs 37 classes but the charset has 10"),
        ("charset-mismatch-dynamic", None, "outputs 37 classes but the charset has 10"),
        (None, "charset: 'abc'", "outputs 37 classes but the charset has 3"),  # --config
    ],
)
def test_unusable_model_stops_the_run_and_keeps_the_previous_output(
    variant: str | None, config: str | None, message: str, exported_model: Path,
    model_variants: dict[str, Path], tmp_path: Path,
) -> None:
    image = tmp_path / "crop.png"
    image.write_bytes(png(BASE))
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    args = ["predict", str(image), "-f", "jsonl", "-o", str(out),
            "--model", str(model_variants[variant] if variant else exported_model)]
    if config is not None:
        (tmp_path / "crnn.yaml").write_text(config + "\n")
        args += ["--config", str(tmp_path / "crnn.yaml")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stdout == ""
    line = _one_error_line(result.stderr)
    assert re.search(message, line), line
    assert "Traceback" not in result.stderr
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["crop.png", "out.jsonl", *(["crnn.yaml"] if config else [])])


@pytest.fixture(scope="module")
def upstream_export(random_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What upstream's export does: torch.onnx.export with a (1, 3, 32, 100) example and no
    names, axes or metadata."""
    import warnings

    import torch

    path = tmp_path_factory.mktemp("upstream") / "crnn.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(random_model, torch.zeros(1, 3, 32, 100), str(path), dynamo=False)
    return path


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("crops")
    paths = []
    for i, (word, width) in enumerate([("ab", 60), ("wide", 400), ("x", 20)]):
        paths.append(folder / f"{i}.png")
        paths[-1].write_bytes(png(word_crop(word, seed=10 + i, width=width)))
    return paths


def _jsonl(model: Path, paths: list[Path], *args: str) -> tuple[int, list[dict], str]:
    result = runner.invoke(app, ["predict", "--model", str(model), "-f", "jsonl",
                                 *map(str, paths), *args])
    return result.exit_code, [json.loads(x) for x in result.stdout.splitlines()], result.stderr


def test_upstream_export_without_metadata(upstream_export: Path, exported_model: Path,
                                          crops: list[Path], tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """Upstream's own static export: a clear hint without --config, the same results as our
    export with it, and a warning (not silence) when --config's width contradicts the graph."""
    code, _, stderr = _jsonl(upstream_export, crops)
    assert code == 1
    assert "no crnn-onnx metadata" in _one_error_line(stderr)
    assert "pass --config" in stderr

    config = tmp_path / "crnn.yaml"
    config.write_text("image_shape: [3, 32, 100]\n")
    code, records, _ = _jsonl(upstream_export, crops, "--config", str(config))
    assert code == 0
    _, reference, _ = _jsonl(exported_model, crops)  # dynamic export, fixed width 100
    assert [r["text"] for r in records] == [r["text"] for r in reference]
    for got, want in zip(records, reference, strict=True):
        assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-4)

    config.write_text("image_shape: [3, 32, 200]\n")
    code, wider, stderr = _jsonl(upstream_export, crops, "--config", str(config))
    assert code == 0 and wider == records  # run at the graph's width, 100
    assert "width 200 differs from the graph's fixed input width 100; using 100" in caplog.text

    code, _, stderr = _jsonl(upstream_export, crops, "--config", str(config),
                             "--width-policy", "bucket")
    assert code == 1
    assert "needs a model with a dynamic input width" in _one_error_line(stderr)


def test_static_model_given_wider_input(upstream_export: Path) -> None:
    session = OrtEngine(upstream_export, config=CRNNConfig())
    assert session.spec.static_width == 100
    with pytest.raises(Exception, match="fixed at 100; got width 128"):
        session.run(np.zeros((1, 3, 32, 128), np.float32))


def test_nan_from_the_model_fails_only_that_input(exported_model: Path, crops: list[Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An overflowing (say fp16) model returning NaN/inf for one image: that record says
    so, the others in the same batch are read as usual."""
    _, reference, _ = _jsonl(exported_model, crops)
    real_run = OrtEngine.run

    def overflowing(self: OrtEngine, batch: np.ndarray) -> np.ndarray:
        logits = real_run(self, batch)
        logits[3, 1, 5] = np.inf  # the second image of each batch
        logits[0, 1, 0] = np.nan
        return logits

    monkeypatch.setattr(OrtEngine, "run", overflowing)
    code, records, stderr = _jsonl(exported_model, crops, "--batch-size", "8")
    assert code == 1
    assert records[1]["error"] == "the model returned NaN or infinite scores for this image"
    assert records[1]["text"] is None
    assert [records[0], records[2]] == [reference[0], reference[2]]
    assert "3 inputs: 2 recognised, 1 failed" in stderr


# --- checkpoints -------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this calls ``open(marker, 'w')``: code run by loading a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("zip", "refusing to unpickle"),  # torch.save's usual format
        ("legacy", "refusing to unpickle"),  # torch.save(_use_new_zipfile_serialization=False)
        ("plain-pickle", "not a PyTorch checkpoint"),  # pickle.dump, no torch at all
        ("other-architecture", "does not match the CRNN architecture"),
    ],
)
def test_hostile_or_foreign_checkpoint(kind: str, message: str, random_model,
                                       tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "code-ran"
    ckpt = tmp_path / "model.pth"
    if kind == "zip":
        torch.save({"model": random_model.state_dict(), "x": _RunsCode(marker)}, ckpt)
    elif kind == "legacy":
        torch.save({"model": random_model.state_dict(), "x": _RunsCode(marker)}, ckpt,
                   _use_new_zipfile_serialization=False)
    elif kind == "plain-pickle":
        ckpt.write_bytes(pickle.dumps({"x": _RunsCode(marker)}))
    else:
        other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(),
                                    torch.nn.Linear(8, 37))
        torch.save({"model": other.state_dict(), "epoch": 1}, ckpt)
    out = tmp_path / "model.onnx"
    out.write_text("previous export")
    result = runner.invoke(app, ["export", "--ckpt", str(ckpt), "--output", str(out)])
    assert result.exit_code == 1
    assert message in _one_error_line(result.stderr)
    assert not marker.exists()  # the payload never ran
    assert out.read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.pth"]


# --- output -----------------------------------------------------------------------------


@pytest.fixture()
def odd_names(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """A folder with a non-UTF-8 name (Latin-1 'café') and one with a tab and a newline."""
    if not POSIX or sys.platform == "darwin":
        pytest.skip("needs a file system that takes any bytes in names")
    folder = tmp_path / "odd"
    folder.mkdir()
    names = [b"caf\xe9.png", b"line\nbreak\ttab.png", b"plain.png"]
    for name in names:
        with open(os.fsencode(folder) + b"/" + name, "wb") as f:
            f.write(png(BASE))
    return folder, sorted(names)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "text", "csv"])
def test_any_file_name_gives_valid_utf8_records(exported_model: Path, fmt: str,
                                               odd_names: tuple[Path, list[bytes]],
                                               tmp_path: Path) -> None:
    folder, names = odd_names
    out = tmp_path / f"out.{fmt}"
    result = runner.invoke(app, ["predict", "--model", str(exported_model), str(folder),
                                 "-f", fmt, "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    text = out.read_bytes().decode("utf-8")  # valid UTF-8, whatever the names
    if fmt in ("json", "jsonl"):
        records = json.loads(text) if fmt == "json" else [json.loads(x) for x in
                                                          text.splitlines()]
        # \udcXX escapes: json.loads + os.fsencode give back the exact names.
        assert [os.fsencode(r["path"]) for r in records] == [
            os.fsencode(folder) + b"/" + n for n in names]
    elif fmt == "text":
        lines = text.splitlines()
        assert len(lines) == 3 and all(line.count("\t") == 2 for line in lines)
        assert lines[0].startswith(f"{folder}/caf\\xe9.png\t")
        assert lines[1].startswith(f"{folder}/line\\nbreak\\ttab.png\t")
    else:
        assert f"{folder}/caf\\xe9.png" in text
        assert len(next(csv.DictReader(io.StringIO(text)))) == 4


def test_output_through_a_symlink_and_into_a_named_pipe(exported_model: Path, crops: list[Path],
                                                        tmp_path: Path) -> None:
    if not POSIX:
        pytest.skip("symlinks and named pipes")
    real = tmp_path / "results" / "real.jsonl"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(real)
    result = runner.invoke(app, ["predict", "--model", str(exported_model), str(crops[0]),
                                 "-f", "jsonl", "-o", str(link), "-q"])
    assert result.exit_code == 0
    assert link.is_symlink()  # the link is kept, the file it points to replaced
    assert json.loads(real.read_text())["path"] == str(crops[0])

    # A named pipe (like /dev/stdout) cannot be replaced by a rename: it is written to.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    try:
        result = runner.invoke(app, ["predict", "--model", str(exported_model),
                                     str(crops[0]), "-f", "jsonl", "-o", str(fifo), "-q"])
        received = reader.communicate(timeout=60)[0]
    finally:
        reader.kill()  # never leave it waiting on the pipe
    assert result.exit_code == 0
    assert json.loads(received)["path"] == str(crops[0])
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_disk_full_while_writing(exported_model: Path, crops: list[Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from crnn_onnx import atomic

    real_fdopen = os.fdopen

    def filling(fd: int, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        stream = real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]
        written = []

        def write(text: str) -> int:
            if written:  # the second record no longer fits
                raise OSError(errno.ENOSPC, "No space left on device")
            written.append(text)
            return len(text)

        stream.write = write
        return stream

    monkeypatch.setattr(atomic.os, "fdopen", filling)
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    result = runner.invoke(app, ["predict", "--model", str(exported_model), *map(str, crops),
                                 "-f", "jsonl", "-o", str(out)])
    assert result.exit_code == 1
    assert _one_error_line(result.stderr) == (
        "error: cannot write the results: No space left on device")
    assert out.read_text() == "previous results\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]


@pytest.mark.slow
@pytest.mark.skipif(not POSIX, reason="POSIX signals")
@pytest.mark.parametrize(
    ("sig", "code"),
    [
        (signal.SIGTERM, 128 + signal.SIGTERM),  # a CI job's timeout, `kill`
        (signal.SIGINT, 128 + signal.SIGINT),  # Ctrl-C
        (signal.SIGKILL, -signal.SIGKILL),  # no chance to clean up: the target still intact
    ],
)
def test_killed_mid_run_leaves_the_previous_results(exported_model: Path, tmp_path: Path,
                                                    sig: signal.Signals, code: int) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    data = png(BASE)
    for i in range(400):
        (folder / f"{i:04d}.png").write_bytes(data)
    out = tmp_path / "out" / "results.jsonl"
    out.parent.mkdir()
    out.write_text("previous results\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crnn_onnx", "predict", str(folder), "--model",
         str(exported_model), "-f", "jsonl", "-o", str(out), "--batch-size", "2", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        # A suite started in the background (`pytest &`) ignores SIGINT, and a child would
        # inherit that; the user at a terminal whose Ctrl-C this stands for does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    try:  # wait until records are being written: the run is under way
        while not any(p.name != out.name and p.stat().st_size > 0
                      for p in out.parent.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert out.read_text() == "previous results\n"
    left = sorted(p.name for p in out.parent.iterdir())
    if sig == signal.SIGKILL:  # a temporary file may stay behind; never a half-written target
        assert left[-1] == "results.jsonl" and len(left) <= 2
    else:
        assert left == ["results.jsonl"]
