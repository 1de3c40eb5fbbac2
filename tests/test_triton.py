"""crnn_onnx.scale.triton and ``crnn-onnx triton-repo``: the repository Triton would load.

Triton itself cannot run here, so the config is checked against Triton's own ModelConfig
message (shipped in tritonclient) and the batch-first model is run in ONNX Runtime.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crnn_onnx.cli import app
from crnn_onnx.config import CRNNConfig
from crnn_onnx.contract import config_from_metadata, config_to_metadata
from crnn_onnx.errors import CRNNError
from crnn_onnx.scale.triton import (
    TRITON_OUTPUT_NAME,
    TritonRepository,
    batch_first_model,
    write_model_repository,
)
from crnn_onnx.scale.triton_config import model_config_text

onnx = pytest.importorskip("onnx", reason="needs onnx (the triton or export extra)")
runner = CliRunner()


def _parse(text: str) -> object:
    """config.pbtxt text as Triton's inference.ModelConfig (fails on any unknown field)."""
    model_config_pb2 = pytest.importorskip(
        "tritonclient.grpc.model_config_pb2", reason="needs the triton extra (tritonclient)")
    from google.protobuf import text_format

    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def repo(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> TritonRepository:
    return write_model_repository(tmp_path_factory.mktemp("triton") / "models", exported_model)


def test_config_pbtxt_parses_as_triton_model_config(repo: TritonRepository) -> None:
    config = _parse(repo.config_file.read_text(encoding="utf-8"))
    assert config.name == "crnn"
    assert config.backend == "onnxruntime"
    assert config.max_batch_size == 64
    (x,) = config.input
    assert x.name == "images"
    assert type(config).DESCRIPTOR.file.enum_types_by_name["DataType"].values_by_number[
        x.data_type].name == "TYPE_FP32"
    assert list(x.dims) == [3, 32, -1]  # batch left out (max_batch_size > 0), width dynamic
    (y,) = config.output
    assert y.data_type == x.data_type
    assert (y.name, list(y.dims), y.label_filename) == (TRITON_OUTPUT_NAME, [-1, 37],
                                                        "labels.txt")
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    (group,) = config.instance_group
    assert (group.count, group.kind) == (1, group.KIND_GPU)


def test_parameters_and_labels_carry_the_charset(repo: TritonRepository,
                                                default_config: CRNNConfig) -> None:
    config = _parse(repo.config_file.read_text(encoding="utf-8"))
    params = {key: value.string_value for key, value in config.parameters.items()}
    assert config_from_metadata(params) == default_config
    labels = repo.labels_file.read_text(encoding="utf-8").splitlines()
    assert labels == ["<blank>", *default_config.charset]  # line i = class i


def test_repository_layout_and_model_metadata(repo: TritonRepository,
                                              default_config: CRNNConfig) -> None:
    assert repo.model_file == repo.model_dir / "1" / "model.onnx"
    assert sorted(p.name for p in repo.model_dir.iterdir()) == ["1", "config.pbtxt",
                                                                "labels.txt"]
    assert not [p for p in repo.model_dir.parent.iterdir() if p.name.startswith(".")]
    model = onnx.load(str(repo.model_file))
    meta = {p.key: p.value for p in model.metadata_props}
    assert config_from_metadata(meta) == default_config
    assert meta["crnn_onnx.output_layout"] == "NTC"
    assert [o.name for o in model.graph.output] == [TRITON_OUTPUT_NAME]


@pytest.mark.parametrize("batch, width", [(1, 100), (3, 160)])
def test_batch_first_model_equals_original_transposed(repo: TritonRepository,
                                                      exported_model: Path, batch: int,
                                                      width: int) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(batch).normal(size=(batch, 3, 32, width)).astype(np.float32)
    original = ort.InferenceSession(str(exported_model), providers=["CPUExecutionProvider"])
    served = ort.InferenceSession(str(repo.model_file), providers=["CPUExecutionProvider"])
    (tnc,) = original.run(None, {"images": x})
    (ntc,) = served.run([TRITON_OUTPUT_NAME], {"images": x})
    assert ntc.shape == (batch, width // 4 + 1, 37)
    np.testing.assert_array_equal(ntc, tnc.transpose(1, 0, 2))


def test_client_recipe_decodes_like_the_predictor(repo: TritonRepository,
                                                  exported_model: Path,
                                                  tmp_path: Path) -> None:
    """The README's client steps, with ONNX Runtime standing in for Triton."""
    import onnxruntime as ort

    from crnn_onnx.inference.decoder import ctc_greedy_decode
    from crnn_onnx.inference.images import read_image
    from crnn_onnx.inference.options import PredictorOptions
    from crnn_onnx.inference.predictor import Predictor
    from crnn_onnx.inference.preprocess import preprocess

    paths = []
    for word in ["tango", "quebec", "xray"]:
        image = np.full((32, 90, 3), 230, np.uint8)
        cv2.putText(image, word, (3, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (20, 20, 20), 2)
        paths.append(tmp_path / f"{word}.png")
        cv2.imwrite(str(paths[-1]), image)
    params = {k: v.string_value for k, v in _parse(
        repo.config_file.read_text(encoding="utf-8")).parameters.items()}
    config = config_from_metadata(params)
    batch = np.stack([preprocess(read_image(p), config) for p in paths])
    served = ort.InferenceSession(str(repo.model_file), providers=["CPUExecutionProvider"])
    (logits,) = served.run([TRITON_OUTPUT_NAME], {"images": batch})
    decoded = ctc_greedy_decode(logits.transpose(1, 0, 2), config.charset)
    expected = Predictor(exported_model, PredictorOptions(device="cpu")).predict(paths)
    assert [d.text for d in decoded] == [p.text for p in expected]
    np.testing.assert_allclose([d.confidence for d in decoded],
                               [p.confidence for p in expected], atol=1e-6)


def test_cpu_instances_and_no_batching(exported_model: Path, tmp_path: Path) -> None:
    repo = write_model_repository(tmp_path, exported_model, name="crnn_cpu", max_batch_size=0,
                                  instance_kind="cpu", instances=2)
    config = _parse(repo.config_file.read_text(encoding="utf-8"))
    assert config.name == "crnn_cpu" and config.max_batch_size == 0
    assert list(config.input[0].dims) == [-1, 3, 32, -1]  # without batching, dims hold N
    assert list(config.output[0].dims) == [-1, -1, 37]
    assert not config.HasField("dynamic_batching")
    (group,) = config.instance_group
    assert (group.count, group.kind) == (2, group.KIND_CPU)


def test_parameter_strings_survive_quoting() -> None:
    charset = ['"', "\\", " ", "é", "中", "\t", "\x01"]
    meta = config_to_metadata(CRNNConfig(charset=tuple(charset)))
    text = model_config_text(name="m", input_name="images", input_dims=[3, 32, -1],
                             output_name="logits", output_dims=[-1, 8], parameters=meta)
    params = {k: v.string_value for k, v in _parse(text).parameters.items()}
    assert params == meta
    assert json.loads(params["crnn_onnx.charset"]) == charset


def test_static_batch_model_is_refused(exported_model: Path, tmp_path: Path) -> None:
    model = onnx.load(str(exported_model))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = 1
    static = tmp_path / "static.onnx"
    onnx.save(model, str(static))
    with pytest.raises(CRNNError, match=r"batch size is fixed at 1 .*max_batch_size=0"):
        write_model_repository(tmp_path / "models", static)
    assert not (tmp_path / "models" / "crnn").exists()


def test_batch_first_model_refuses_a_batch_first_model(repo: TritonRepository) -> None:
    with pytest.raises(CRNNError, match="already batch-first"):
        batch_first_model(onnx.load(str(repo.model_file)))


def test_existing_model_folder_needs_force(exported_model: Path, tmp_path: Path) -> None:
    write_model_repository(tmp_path, exported_model, max_batch_size=8)
    with pytest.raises(CRNNError, match="already exists: pass force=True"):
        write_model_repository(tmp_path, exported_model)
    repo = write_model_repository(tmp_path, exported_model, max_batch_size=16, force=True)
    assert "max_batch_size: 16" in repo.config_file.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crnn"]


def test_cli_triton_repo(exported_model: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["triton-repo", str(tmp_path / "models"), "--model",
                                 str(exported_model), "--name", "words", "--instance-kind",
                                 "cpu", "--instances", "2", "--max-batch-size", "32"])
    assert result.exit_code == 0, result.stderr
    assert "logits FP32 [-1, 37]" in result.stdout
    assert f"tritonserver --model-repository {(tmp_path / 'models').resolve()}" in result.stdout
    config = _parse((tmp_path / "models" / "words" / "config.pbtxt").read_text(encoding="utf-8"))
    assert (config.max_batch_size, config.instance_group[0].count) == (32, 2)

    again = runner.invoke(app, ["triton-repo", str(tmp_path / "models"), "--model",
                                str(exported_model), "--name", "words"])
    assert again.exit_code == 1
    assert again.stderr.startswith("error: ") and again.stderr.count("\n") == 1

    bad = runner.invoke(app, ["triton-repo", str(tmp_path / "models"), "--model",
                              str(exported_model), "--instance-kind", "tpu"])
    assert bad.exit_code == 2


def test_predict_refuses_the_batch_first_model(repo: TritonRepository) -> None:
    """Decoding (N, T, C) as (T, N, C) would give wrong text silently: it must be refused."""
    from crnn_onnx.errors import CRNNError
    from crnn_onnx.inference.engines.onnxruntime import OrtEngine

    with pytest.raises(CRNNError, match="batch-first"):
        OrtEngine(repo.model_file)
