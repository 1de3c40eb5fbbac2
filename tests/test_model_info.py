"""crnn_onnx.inspection.model_info: what `crnn-onnx info` says about every kind of model."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from crnn_onnx.contract import LAYOUT_KEY, QUANTIZATION_KEY
from crnn_onnx.errors import CRNNError
from crnn_onnx.inspection.model_info import ModelInfo, read_model_info
from crnn_onnx.weights import default_model_path

DIGITS_AND_LETTERS = tuple("0123456789abcdefghijklmnopqrstuvwxyz")
AS_DICT_KEYS = {"inputs", "outputs", "opset", "ir_version", "producer", "file_size",
                "parameters", "charset", "blank_index", "width", "width_policy", "precision",
                "quantization",
                "layout", "metadata"}


def without_metadata(source: Path, target: Path) -> Path:
    """``source`` saved again with no metadata at all."""
    model = onnx.load(str(source))
    del model.metadata_props[:]
    onnx.save(model, str(target))
    return target


def check_json_ready(info: ModelInfo) -> dict:
    described = info.as_dict()
    assert set(described) >= AS_DICT_KEYS
    assert json.loads(json.dumps(described)) == described
    return described


def test_shipped_model_is_fp32_tnc_dynamic_width_with_its_charset() -> None:
    info = read_model_info(default_model_path())
    assert (info.charset, info.blank_index, info.classes) == (DIGITS_AND_LETTERS, 0, 37)
    assert (info.width, info.precision, info.layout, info.quantization) == (
        "dynamic", "fp32", "TNC", None)
    ((x,), (y,)) = info.inputs, info.outputs
    assert (x.name, x.shape, x.dtype) == ("images", ("batch", 3, 32, "width"), "float32")
    assert (y.name, y.shape, y.dtype) == ("output0", ("frames", "batch", 37), "float32")
    assert 8_600_000 < info.parameter_count < 8_800_000
    assert info.opset is not None and info.opset >= 17 and info.ir_version >= 7
    assert info.producer.startswith("crnn-onnx ")
    assert info.file_size == default_model_path().stat().st_size
    assert json.loads(info.metadata["crnn_onnx.charset"]) == list(DIGITS_AND_LETTERS)
    described = check_json_ready(info)
    assert described["parameters"] == info.parameter_count and described["width"] == "dynamic"
    text = info.format_text()
    assert "images  float32 [batch, 3, 32, width]" in text
    assert "36 characters: 0123456789abcdefghijklmnopqrstuvwxyz" in text
    # Exported before width policies were recorded: read as upstream's fixed width.
    assert info.width_policy == "fixed" and re.search(r"^width policy +fixed$", text, re.M)
    assert f"{info.parameter_count:,}" in text
    # Aligned: every value starts in the column where the model's path does.
    lines = text.splitlines()
    column = lines[0].index(str(default_model_path()))
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in lines)


def test_fp16_export_is_fp16_with_or_without_metadata(fp16_model: Path, tmp_path: Path) -> None:
    path = fp16_model  # exported with fp16=True (conftest)
    info = read_model_info(path)
    assert (info.precision, info.charset, info.layout) == ("fp16", DIGITS_AND_LETTERS, "TNC")
    assert info.inputs[0].dtype == info.outputs[0].dtype == "float32"  # cast inside the graph
    bare = read_model_info(without_metadata(path, tmp_path / "bare.onnx"))
    assert (bare.precision, bare.charset, bare.metadata) == ("fp16", None, {})


def test_int8_model_is_int8_with_its_quantization(shipped_int8: Callable[[bool], Any],
                                                  tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="quantize needs onnxruntime (the cpu extra)")
    path = shipped_int8(True).output  # the shipped model quantized (conftest)
    info = read_model_info(path)
    assert info.precision == "int8" and info.charset == DIGITS_AND_LETTERS
    assert info.quantization == json.loads(info.metadata[QUANTIZATION_KEY])
    assert info.quantization["per_channel"] is True
    assert "com.microsoft" in info.other_opsets  # DynamicQuantizeLSTM
    assert "quantization" in info.format_text()
    check_json_ready(info)
    bare = read_model_info(without_metadata(path, tmp_path / "bare.onnx"))
    assert (bare.precision, bare.quantization) == ("int8", None)


def test_triton_variant_is_batch_first(exported_model: Path, tmp_path: Path) -> None:
    from crnn_onnx.scale.triton import TRITON_OUTPUT_NAME, batch_first_model

    path = tmp_path / "model.onnx"
    onnx.save(batch_first_model(onnx.load(str(exported_model))), str(path))
    info = read_model_info(path)
    assert info.layout == "NTC" and info.metadata[LAYOUT_KEY] == "NTC"
    (y,) = info.outputs
    assert y.name == TRITON_OUTPUT_NAME and y.shape is not None and y.shape[2] == 37
    assert info.charset == DIGITS_AND_LETTERS and info.precision == "fp32"
    assert "NTC (batch, frames, classes)" in info.format_text()


def tiny_model(width: int | str = "w") -> onnx.ModelProto:
    """A one-Relu model with no crnn-onnx metadata, a 2x3 initializer and an int64 input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, width])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weight = numpy_helper.from_array(np.zeros((2, 3), np.float32), "unused")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x, k], [y],
                              [weight])
    return helper.make_model(graph, producer_name="handmade",
                             opset_imports=[helper.make_opsetid("", 17)])


def test_model_without_crnn_onnx_metadata(tmp_path: Path) -> None:
    path = tmp_path / "other.onnx"
    onnx.save(tiny_model(width=128), str(path))
    info = read_model_info(path)
    assert (info.charset, info.blank_index, info.classes, info.metadata) == (None, None, None, {})
    assert (info.precision, info.layout, info.width, info.parameter_count) == (
        "fp32", "TNC", 128, 6)
    assert [(t.name, t.shape, t.dtype) for t in info.inputs] == [
        ("x", ("n", 3, 32, 128), "float32"), ("k", (2,), "int64")]
    assert info.outputs[0].shape is None  # rank unknown
    assert (info.producer, info.opset, info.other_opsets) == ("handmade", 17, {})
    assert "charset" not in info.format_text()
    assert info.width_policy is None and "width policy" not in info.format_text()
    check_json_ready(info)


def test_external_weights_are_not_read(tmp_path: Path) -> None:
    model = tiny_model()
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="m.data", size_threshold=0)
    (tmp_path / "m.data").unlink()  # describing the model must not need them
    info = read_model_info(tmp_path / "m.onnx")
    assert info.parameter_count == 6 and info.width == "dynamic"


def test_malformed_crnn_onnx_metadata_is_one_line(tmp_path: Path) -> None:
    model = tiny_model()
    model.metadata_props.add(key="crnn_onnx.charset", value="[not json")
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(CRNNError, match="metadata is malformed") as err:
        read_model_info(tmp_path / "m.onnx")
    assert str(err.value).startswith(str(tmp_path / "m.onnx")) and "\n" not in str(err.value)


def _truncated(path: Path) -> None:
    path.write_bytes(default_model_path().read_bytes()[:100_000])


@pytest.mark.parametrize("name, make, message", [
    ("notes.txt", lambda p: p.write_text("hello world\n"), "is not an ONNX model"),
    ("empty.onnx", lambda p: p.write_bytes(b""), "is not an ONNX model"),
    ("config.json", lambda p: p.write_text('{"irVersion": 8}'), "is not an ONNX model"),
    ("crop.png", lambda p: cv2.imwrite(str(p), np.zeros((8, 8, 3), np.uint8)),
     "is not an ONNX model"),
    ("cut.onnx", _truncated, "is not an ONNX model"),  # a download that stopped half-way
    ("folder.onnx", lambda p: p.mkdir(), "is not a model file"),
    ("missing.onnx", lambda p: None, "No such file or directory"),
])
def test_a_file_that_is_no_model_is_one_line(tmp_path: Path, name: str, make, message: str
                                             ) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(CRNNError) as err:
        read_model_info(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text
