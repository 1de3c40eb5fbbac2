"""fp16 export: float16 inside, float32 at the input and output, verified against PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch", reason="needs the export extra (torch)")
onnx = pytest.importorskip("onnx", reason="needs the export extra (onnx)")
pytest.importorskip("onnxconverter_common", reason="needs the export extra (onnxconverter-common)")
pytest.importorskip("onnxruntime", reason="needs the cpu or gpu extra (onnxruntime)")

from crnn_onnx.cli import app  # noqa: E402
from crnn_onnx.config import CRNNConfig  # noqa: E402
from crnn_onnx.contract import PRECISION_KEY, config_from_metadata, precision_of  # noqa: E402
from crnn_onnx.errors import CRNNError  # noqa: E402
from crnn_onnx.export.exporter import export_checkpoint  # noqa: E402
from crnn_onnx.export.fp16 import FP16_ATOL, to_fp16  # noqa: E402
from crnn_onnx.inference.decoder import ctc_greedy_decode  # noqa: E402
from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions  # noqa: E402

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


def test_fp16_export_keeps_float32_input_output_names_and_metadata(fp16_model: Path) -> None:
    model = onnx.load(str(fp16_model))
    (images,), (output,) = model.graph.input, model.graph.output
    assert (images.name, output.name) == ("images", "output0")
    assert images.type.tensor_type.elem_type == FLOAT
    assert output.type.tensor_type.elem_type == FLOAT
    # All weights are half precision: that is what halves the file and runs on tensor cores.
    weight_types = {t.data_type for t in model.graph.initializer if len(t.dims) > 1}
    assert weight_types == {FLOAT16}
    meta = {p.key: p.value for p in model.metadata_props}
    assert precision_of(meta) == "fp16" and meta[PRECISION_KEY] == "fp16"
    assert config_from_metadata(meta) == CRNNConfig()


def test_fp16_model_reads_like_the_fp32_model(fp16_model: Path, exported_model: Path) -> None:
    rng = np.random.default_rng(7)
    batch = rng.standard_normal((6, 3, 32, 160), dtype=np.float32)
    fp32 = OrtEngine(exported_model, OrtOptions(device="cpu"))
    fp16 = OrtEngine(fp16_model, OrtOptions(device="cpu"))
    assert fp16.spec.config == fp32.spec.config
    want, got = fp32.run(batch), fp16.run(batch)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= FP16_ATOL
    # fp16 rounding is not fp32 with noise on top: it must not change what is read.
    texts = [d.text for d in ctc_greedy_decode(want, fp32.spec.config.charset)]
    assert [d.text for d in ctc_greedy_decode(got, fp16.spec.config.charset)] == texts


@pytest.mark.slow  # a second fp16 conversion of the whole model
def test_to_fp16_leaves_its_argument_alone(exported_model: Path) -> None:
    model = onnx.load(str(exported_model))
    before = model.SerializeToString()
    converted = to_fp16(model)
    assert model.SerializeToString() == before
    assert {p.key: p.value for p in converted.metadata_props}[PRECISION_KEY] == "fp16"


@pytest.mark.slow  # an fp16 export and its verification
def test_fp16_beyond_tolerance_writes_nothing(upstream_checkpoint: Path,
                                              default_config: CRNNConfig, tmp_path: Path) -> None:
    out = tmp_path / "tight.onnx"
    # fp16 cannot match fp32 to 1e-6: the verification must refuse it, and leave no file.
    # (Static: verified at its one shape, a quarter of the time of the dynamic matrix.)
    with pytest.raises(CRNNError, match="differ by up to"):
        export_checkpoint(upstream_checkpoint, default_config, out, fp16=True, atol=1e-6,
                          dynamic=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # an fp16 export and its verification
def test_cli_export_fp16_uses_the_fp16_tolerance(upstream_checkpoint: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["export", "--ckpt", str(upstream_checkpoint), "-o",
                                      str(out), "--fp16", "--static"])
    assert result.exit_code == 0, result.output
    assert "precision fp16 (input and output float32)" in result.stdout
    assert f"(atol {FP16_ATOL:g})" in result.stdout
    assert out.is_file()
