"""The ONNX Runtime engine: providers and their reporting, model-file errors, IO binding,
static models."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions
from crnn_onnx.inference.options import PredictorOptions
from crnn_onnx.inference.predictor import Predictor

HAS_CUDA = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.fixture(scope="module")
def cpu_session(exported_model: Path) -> OrtEngine:
    return OrtEngine(exported_model, OrtOptions(device="cpu"))


@pytest.fixture(scope="module")
def bare_model(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exported model with its crnn-onnx metadata stripped."""
    import onnx

    proto = onnx.load(str(exported_model))
    del proto.metadata_props[:]
    path = tmp_path_factory.mktemp("bare") / "bare.onnx"
    onnx.save(proto, str(path))
    return path


def _batch(n: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, width), dtype=np.float32)


def test_cpu_session_reads_graph_and_metadata(cpu_session: OrtEngine,
                                              default_config: CRNNConfig) -> None:
    assert cpu_session.provider == "CPUExecutionProvider"
    assert cpu_session.device == "cpu"
    assert cpu_session.spec.static_width is None and cpu_session.spec.static_batch is None
    assert cpu_session.spec.config == default_config
    assert cpu_session.io_binding is False  # plain run() on the CPU (docs/performance.md)


@pytest.mark.skipif(HAS_CUDA, reason="checks the CPU-only build's message")
def test_auto_logs_one_provider_line(exported_model: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="crnn_onnx.inference.engines.onnxruntime"):
        session = OrtEngine(exported_model, OrtOptions(device="auto"))
    assert session.provider == "CPUExecutionProvider"
    lines = [r for r in caplog.records if r.name == "crnn_onnx.inference.engines.onnxruntime"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert "running on CPUExecutionProvider" in lines[0].getMessage()
    assert "onnxruntime-gpu" in lines[0].getMessage()


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here")
def test_explicit_cuda_without_cuda_build_names_the_reason(exported_model: Path) -> None:
    with pytest.raises(CRNNError, match=r"no CUDAExecutionProvider.*install onnxruntime-gpu"):
        OrtEngine(exported_model, OrtOptions(device="cuda"))


@pytest.mark.skipif(HAS_CUDA, reason="simulates a CUDA provider that fails to load")
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider':UserWarning")
def test_cuda_that_fails_to_load_is_never_silent(
    exported_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Pretend the build lists CUDA; ONNX Runtime then drops it at session creation, exactly
    # what happens when CUDA or cuDNN libraries are missing.
    providers = [*onnxruntime.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: providers)
    with pytest.raises(CRNNError, match=r"CUDAExecutionProvider failed to load: .+"):
        OrtEngine(exported_model, OrtOptions(device="cuda"))
    with caplog.at_level(logging.INFO, logger="crnn_onnx.inference.engines.onnxruntime"):
        session = OrtEngine(exported_model, OrtOptions(device="auto"))
    assert session.device == "cpu"
    (record,) = [r for r in caplog.records if r.name == "crnn_onnx.inference.engines.onnxruntime"]
    assert record.levelno == logging.WARNING
    assert "CUDAExecutionProvider is installed but failed to load" in record.getMessage()


def test_missing_onnxruntime_is_a_clear_error(exported_model: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(CRNNError, match=r"ONNX Runtime is not installed: pip install"):
        OrtEngine(exported_model)


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("missing", "not found"),
        ("directory", "is not a file"),
        ("empty", "is empty"),
        ("text", "not a valid ONNX model"),
        ("png", "not a valid ONNX model"),
        ("truncated", "not a valid ONNX model"),
    ],
)
def test_bad_model_files(kind: str, match: str,
                         bad_model_file: Callable[[str], Path]) -> None:
    path = bad_model_file(kind)
    with pytest.raises(CRNNError, match=match) as info:
        OrtEngine(path, OrtOptions(device="cpu"))
    assert "\n" not in str(info.value)


def test_engine_options_are_validated() -> None:
    for bad in ({"device": "tpu"}, {"threads": 0}, {"graph_optimization": "max"},
                {"cudnn_conv_algo_search": "FAST"}, {"device_id": -1}):
        with pytest.raises(CRNNError):
            OrtOptions(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "width"), [(1, 100), (3, 164), (2, 257)])
def test_binding_equals_plain_run_on_cpu(exported_model: Path, cpu_session: OrtEngine,
                                         n: int, width: int) -> None:
    bound = OrtEngine(exported_model, OrtOptions(device="cpu", io_binding=True))
    assert bound.io_binding
    x = _batch(n, width)
    expected = cpu_session.run(x)
    got = bound.run(x)
    assert got.shape == expected.shape == bound.spec.output_shape(n, width)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("width", [4, 100, 101, 128, 257])
def test_frames_follow_width(cpu_session: OrtEngine, width: int) -> None:
    out = cpu_session.run(_batch(2, width))
    assert out.shape == (width // 4 + 1, 2, 37) == cpu_session.spec.output_shape(2, width)
    assert out.dtype == np.float32


def test_bad_batches(cpu_session: OrtEngine) -> None:
    with pytest.raises(CRNNError, match=r"\(N, 3, 32, W\)"):
        cpu_session.run(np.zeros((1, 3, 31, 100), np.float32))
    assert cpu_session.run(np.zeros((0, 3, 32, 100), np.float32)).shape == (26, 0, 37)


def test_static_model(static_model: Path, cpu_session: OrtEngine) -> None:
    session = OrtEngine(static_model, OrtOptions(device="cpu", io_binding=True))
    assert (session.spec.static_batch, session.spec.static_width) == (1, 100)
    x = _batch(3, 100)  # run as three batch-1 chunks
    np.testing.assert_allclose(session.run(x), cpu_session.run(x), atol=1e-4)
    with pytest.raises(CRNNError, match="fixed at 100"):
        session.run(_batch(1, 128))
    with pytest.raises(CRNNError, match="needs a model with a dynamic input width"):
        Predictor(static_model, PredictorOptions(device="cpu", width_policy="bucket"))
    # auto never asks a fixed-width model for another width.
    assert Predictor(static_model, PredictorOptions(device="cpu")).width_policy == "fixed"


def test_model_without_metadata_needs_a_config(bare_model: Path,
                                               default_config: CRNNConfig) -> None:
    with pytest.raises(CRNNError, match=r"no crnn-onnx metadata.*config="):
        OrtEngine(bare_model, OrtOptions(device="cpu"))
    session = OrtEngine(bare_model, OrtOptions(device="cpu"), config=default_config)
    assert session.spec.config == default_config
    with pytest.raises(CRNNError, match="outputs 37 classes but the charset has 3"):
        OrtEngine(bare_model, OrtOptions(device="cpu"),
                   config=CRNNConfig(charset=("a", "b", "c")))


@pytest.mark.skipif(not HAS_CUDA, reason="CUDAExecutionProvider is not available "
                    "(onnxruntime-gpu with CUDA and cuDNN, and a GPU, are needed)")
@pytest.mark.parametrize("width", [100, 164])
def test_cuda_io_binding_matches_cpu(exported_model: Path, cpu_session: OrtEngine,
                                     width: int) -> None:
    session = OrtEngine(exported_model, OrtOptions(device="cuda"))
    assert session.device == "cuda" and session.io_binding
    x = _batch(4, width)
    got = session.run(x)
    assert got.shape == session.spec.output_shape(4, width)
    np.testing.assert_allclose(got, cpu_session.run(x), atol=1e-3)
