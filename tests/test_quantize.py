"""int8 quantization: a static QDQ graph that keeps the model's contract and reads like fp32."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx", reason="quantize needs onnx (the quantize extra)")
pytest.importorskip("onnxruntime", reason="needs the cpu or gpu extra (onnxruntime)")

from crnn_onnx.cli import app  # noqa: E402
from crnn_onnx.config import CRNNConfig  # noqa: E402
from crnn_onnx.contract import QUANTIZATION_KEY  # noqa: E402
from crnn_onnx.errors import CRNNError  # noqa: E402
from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions  # noqa: E402
from crnn_onnx.inference.options import PredictorOptions  # noqa: E402
from crnn_onnx.inference.predictor import Predictor  # noqa: E402
from crnn_onnx.perf.calibration import calibration_images  # noqa: E402
from crnn_onnx.perf.quantize import QuantizeReport, default_output, quantize_model  # noqa: E402
from crnn_onnx.weights import default_model_path  # noqa: E402

runner = CliRunner()


def write_crops(folder: Path, count: int, seed: int = 0) -> Path:
    """Word-like crops: dark strokes on a light background, of varied sizes, as PNG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        h, w = int(rng.integers(20, 48)), int(rng.integers(60, 200))
        image = np.full((h, w, 3), int(rng.integers(180, 255)), np.uint8)
        for _ in range(int(rng.integers(3, 8))):
            x = int(rng.integers(2, w - 10))
            cv2.line(image, (x, 4), (x + int(rng.integers(-6, 7)), h - 4), (20, 20, 20), 2)
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    return folder


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_crops(tmp_path_factory.mktemp("crops"), 12)


@pytest.fixture(scope="module")
def int8_model(shipped_int8: Callable[[bool], QuantizeReport]) -> Path:
    """The shipped model quantized (conftest), its report checked."""
    report = shipped_int8(True)
    assert report.output.is_file() and report.source == default_model_path()
    assert (report.calibration_images, report.check_images) == (8, 2)
    assert 0.0 <= report.agreement <= 1.0
    assert report.size_bytes < report.source_bytes / 2  # int8 weights: a quarter, about
    return report.output


def test_int8_model_keeps_input_output_and_metadata(int8_model: Path, exported_model: Path
                                                    ) -> None:
    session = OrtEngine(int8_model, OrtOptions(device="cpu"))
    assert (session.spec.input_name, session.spec.output_name) == ("images", "output0")
    assert session.spec.static_width is None  # batch and width stay dynamic
    assert session.spec.config == OrtEngine(exported_model, OrtOptions(device="cpu")).spec.config
    meta = {p.key: p.value for p in onnx.load(str(int8_model)).metadata_props}
    described = json.loads(meta[QUANTIZATION_KEY])
    assert described["per_channel"] is True and described["lstm"] == "dynamic int8"
    assert "images from" in described["calibration"]


def test_int8_graph_runs_convolutions_and_lstm_in_int8(int8_model: Path) -> None:
    ops = [node.op_type for node in onnx.load(str(int8_model)).graph.node]
    # Static QDQ around every convolution (ORT fuses these into QLinearConv), int8 LSTM.
    assert ops.count("DequantizeLinear") >= 7 and "QuantizeLinear" in ops
    assert ops.count("DynamicQuantizeLSTM") == 2 and "LSTM" not in ops


@pytest.mark.slow  # renders 48 crops and reads them in fp32 and int8
def test_int8_reads_what_fp32_reads(int8_model: Path,
                                    assert_reads_like_fp32: Callable[..., None]) -> None:
    """The shipped model quantized by `quantize` reads word crops on ONNX Runtime as it does
    in fp32, on any x86 CPU (the bounds, and why, are in conftest's
    ``assert_reads_like_fp32``)."""
    assert_reads_like_fp32(OrtEngine(int8_model, OrtOptions(device="cpu")))


def test_int8_model_works_in_predictor(int8_model: Path, crops: Path) -> None:
    predictor = Predictor(int8_model, PredictorOptions(device="cpu", batch_size=4))
    predictions = predictor.predict(sorted(crops.glob("*.png")))
    assert len(predictions) == 12 and all(p.ok for p in predictions)


def test_quantizing_twice_is_refused_and_writes_nothing(int8_model: Path, crops: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "again.onnx"
    with pytest.raises(CRNNError, match="quantized already"):
        quantize_model(int8_model, out, calibration=crops)
    assert not out.exists()


def test_fp16_model_is_refused(exported_model: Path, crops: Path, tmp_path: Path) -> None:
    model = onnx.load(str(exported_model))
    model.metadata_props.add(key="crnn_onnx.precision", value="fp16")
    path = tmp_path / "marked.onnx"
    onnx.save(model, str(path))
    with pytest.raises(CRNNError, match="fp16 model"):
        quantize_model(path, tmp_path / "out.onnx", calibration=crops)


def test_calibration_folder_without_images(exported_model: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(CRNNError, match="no readable images"):
        quantize_model(exported_model, tmp_path / "out.onnx", calibration=tmp_path / "empty")
    assert not (tmp_path / "out.onnx").exists()


def test_calibration_samples_at_most_count_images(crops: Path) -> None:
    config = CRNNConfig()
    images, described = calibration_images(config, crops, count=5, seed=3)
    assert len(images) == 5 and described == f"images from {crops}"
    assert all(x.shape == (3, 32, 100) and x.dtype == np.float32 for x in images)
    again, _ = calibration_images(config, crops, count=5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))


def test_synthetic_calibration_renders_the_train_split() -> None:
    pytest.importorskip("PIL", reason="synthetic crops need Pillow (the synth extra)")
    images, described = calibration_images(CRNNConfig(), None, count=3)
    assert len(images) == 3 and "train split" in described


def test_default_output_sits_beside_the_model() -> None:
    assert default_output(Path("w/crnn.onnx")) == Path("w/crnn.int8.onnx")


@pytest.mark.slow  # a second quantization of the shipped model
def test_cli_quantize_can_keep_the_lstm_float32_with_one_scale_per_tensor(
        exported_model: Path, crops: Path, tmp_path: Path) -> None:
    model = Path(shutil.copy(exported_model, tmp_path / "crnn.onnx"))
    result = runner.invoke(app, ["quantize", str(model), "--calibration", str(crops),
                                 "--count", "5", "--no-lstm", "--per-tensor"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "crnn.int8.onnx"
    assert result.stdout.startswith(f"quantized  {out}")
    assert "LSTM float32" in result.stdout and "agreement" in result.stdout
    written = onnx.load(str(out))
    ops = [node.op_type for node in written.graph.node]
    assert ops.count("LSTM") == 2 and "DynamicQuantizeLSTM" not in ops
    described = json.loads({p.key: p.value for p in written.metadata_props}[QUANTIZATION_KEY])
    assert (described["lstm"], described["per_channel"]) == ("float32", False)


def test_cli_quantize_errors(exported_model: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["quantize", str(tmp_path / "none.onnx")])
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith("error: model file") and "Traceback" not in missing.output
    bad_method = runner.invoke(app, ["quantize", str(exported_model), "--method", "mean"])
    assert bad_method.exit_code == 2
