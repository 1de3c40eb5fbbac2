"""The OpenVINO engine: parity with ONNX Runtime, the same ModelSpec, static graphs, the model
cache, bf16 only on a CPU with native bf16, int8 models, thread safety, clear errors."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("openvino", reason="needs the openvino extra")

from crnn_onnx.config import CRNNConfig
from crnn_onnx.contract import LAYOUT_KEY
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.engines import cpu_features
from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions
from crnn_onnx.inference.engines.openvino import (
    CACHE_DIR_ENV,
    OvEngine,
    OvOptions,
    default_cache_dir,
)

HAS_BF16 = bool(cpu_features.BF16_FLAGS & cpu_features.cpu_flags()) \
    if cpu_features.CPUINFO.exists() else False


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the module's engines (never the user's own)."""
    return tmp_path_factory.mktemp("ov-cache")


@pytest.fixture(scope="module")
def ov_engine(exported_model: Path, cache: Path) -> OvEngine:
    return OvEngine(exported_model, OvOptions(device="cpu", cache_dir=cache))


def _ort(path: Path) -> OrtEngine:
    """The reference: ONNX Runtime on the CPU (skips without the cpu extra)."""
    pytest.importorskip("onnxruntime", reason="the reference needs onnxruntime (the cpu extra)")
    return OrtEngine(path, OrtOptions(device="cpu"))


@pytest.fixture(scope="module")
def ort_engine(exported_model: Path) -> OrtEngine:
    return _ort(exported_model)


def _batch(n: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, width), dtype=np.float32)


def _rewritten(source: Path, target: Path, metadata: dict[str, str] | None) -> Path:
    """``source`` with metadata entries set, or (``None``) with all of them removed."""
    import onnx

    from crnn_onnx.contract import set_metadata

    proto = onnx.load(str(source))
    if metadata is None:
        del proto.metadata_props[:]
    else:
        set_metadata(proto, metadata)
    onnx.save(proto, str(target))
    return target


@pytest.mark.parametrize(("n", "width"), [(1, 100), (3, 100), (1, 164), (3, 164)])
def test_fp32_logits_match_onnxruntime(ov_engine: OvEngine, ort_engine: OrtEngine,
                                       n: int, width: int) -> None:
    x = _batch(n, width, seed=n * width)
    got, expected = ov_engine.run(x), ort_engine.run(x)
    assert got.dtype == np.float32
    assert got.shape == expected.shape == ov_engine.spec.output_shape(n, width)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_spec_equals_onnxruntime(ov_engine: OvEngine, ort_engine: OrtEngine,
                                 default_config: CRNNConfig) -> None:
    assert ov_engine.spec == ort_engine.spec
    assert ov_engine.spec.config == default_config
    assert (ov_engine.spec.static_batch, ov_engine.spec.static_width) == (None, None)
    assert (ov_engine.name, ov_engine.device, ov_engine.precision) == ("openvino", "cpu", "fp32")
    assert ov_engine.describe() == "openvino CPU, fp32"


def test_static_model_stays_static(static_model: Path, ov_engine: OvEngine,
                                   cache: Path) -> None:
    engine = OvEngine(static_model, OvOptions(cache_dir=cache))
    assert engine.spec == _ort(static_model).spec
    assert (engine.spec.static_batch, engine.spec.static_width) == (1, 100)
    assert engine.spec.static_frames == 26
    x = _batch(3, 100)  # run as three batch-1 chunks
    np.testing.assert_allclose(engine.run(x), ov_engine.run(x), rtol=0, atol=1e-4)
    with pytest.raises(CRNNError, match="fixed at 100"):
        engine.run(_batch(1, 128))


def test_model_without_metadata_needs_a_config(exported_model: Path, tmp_path: Path,
                                               cache: Path, default_config: CRNNConfig) -> None:
    bare = _rewritten(exported_model, tmp_path / "bare.onnx", None)
    with pytest.raises(CRNNError, match=r"no crnn-onnx metadata.*config="):
        OvEngine(bare, OvOptions(cache_dir=cache))
    engine = OvEngine(bare, OvOptions(cache_dir=cache), config=default_config)
    assert engine.spec.config == default_config and engine.spec.metadata == {}


def test_batch_first_triton_variant_is_refused(exported_model: Path, tmp_path: Path,
                                               cache: Path) -> None:
    ntc = _rewritten(exported_model, tmp_path / "ntc.onnx", {LAYOUT_KEY: "NTC"})
    with pytest.raises(CRNNError, match=r"batch-first \(N, T, C\)"):
        OvEngine(ntc, OvOptions(cache_dir=cache))


def test_compiled_model_is_cached_and_reused(exported_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    first = OvEngine(exported_model, OvOptions(cache_dir=folder))
    assert not first.loaded_from_cache and first.cache_dir == folder
    blobs = sorted(p.name for p in folder.iterdir())
    assert blobs
    second = OvEngine(exported_model, OvOptions(cache_dir=folder))
    assert second.loaded_from_cache  # OpenVINO's own LOADED_FROM_CACHE
    assert sorted(p.name for p in folder.iterdir()) == blobs
    x = _batch(2, 100)
    np.testing.assert_array_equal(second.run(x), first.run(x))


@pytest.mark.slow  # compiles three models; the quick tier keeps the cache's reuse
def test_cache_is_keyed_on_content_not_path(exported_model: Path, static_model: Path,
                                            tmp_path: Path) -> None:
    # Another model written to the same path (same size or not) must not reuse the blob.
    path, folder = tmp_path / "m.onnx", tmp_path / "cache"
    path.write_bytes(exported_model.read_bytes())
    assert not OvEngine(path, OvOptions(cache_dir=folder)).loaded_from_cache
    path.write_bytes(static_model.read_bytes())
    engine = OvEngine(path, OvOptions(cache_dir=folder))
    assert not engine.loaded_from_cache and engine.spec.static_width == 100


def test_default_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "crnn-onnx" / "openvino"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" / "openvino"


def test_unusable_cache_dir(exported_model: Path, tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    with pytest.raises(CRNNError) as info:
        OvEngine(exported_model, OvOptions(cache_dir=taken))
    assert str(info.value) == f"cache_dir {str(taken)!r} cannot be used: it is a file, not a folder"


@pytest.mark.slow  # compiles a model for the default folder's sake
def test_default_cache_folder_in_use(exported_model: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "root"))
    engine = OvEngine(exported_model)
    assert engine.cache_dir == tmp_path / "root" / "openvino"
    assert any(engine.cache_dir.iterdir())
    # A default folder that cannot be made costs compile time only: a warning, no cache.
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "file"))
    with caplog.at_level(logging.WARNING, logger="crnn_onnx.inference.engines.openvino"):
        engine = OvEngine(exported_model)
    assert engine.cache_dir is None and not engine.loaded_from_cache
    assert "no OpenVINO model cache" in caplog.text


def test_cpu_flags_from_a_cpuinfo_file(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cpu_features.cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # Arm
    assert cpu_features.cpu_flags(cpuinfo) == {"fp", "asimd", "bf16"}


def test_bf16_refused_on_a_cpu_without_it(exported_model: Path, tmp_path: Path, cache: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 avx512f avx512bw\n")
    monkeypatch.setattr(cpu_features, "CPUINFO", cpuinfo)
    with pytest.raises(CRNNError) as info:
        OvEngine(exported_model, OvOptions(precision="bf16", cache_dir=cache))
    assert str(info.value) == (
        "precision='bf16' needs a CPU with AMX or AVX512-BF16; this CPU has neither "
        f"(flags read from {cpuinfo}): use precision='fp32'"
    )


def test_bf16_without_cpuinfo_asks_openvino(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_features, "CPUINFO", tmp_path / "none")  # as on macOS, Windows
    assert cpu_features.bf16_refusal(lambda: ["FP32", "BF16", "INT8"]) is None
    refusal = cpu_features.bf16_refusal(lambda: ["FP32", "INT8"])
    assert refusal is not None
    assert "OpenVINO reports FP32, INT8" in refusal and "use precision='fp32'" in refusal


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has neither amx_bf16 nor avx512_bf16")
def test_bf16_close_to_fp32(exported_model: Path, ov_engine: OvEngine, cache: Path) -> None:
    engine = OvEngine(exported_model, OvOptions(precision="bf16", cache_dir=cache))
    assert engine.precision == "bf16" and engine.describe() == "openvino CPU, bf16"
    x = _batch(8, 164, seed=7)
    got, expected = engine.run(x), ov_engine.run(x)
    # bf16 keeps 8 bits of mantissa: logits move by up to ~0.1, so the winning class may
    # change only where fp32's two best classes are nearly tied.
    np.testing.assert_allclose(got, expected, rtol=0, atol=0.5)
    _assert_same_winners(got, expected, lead=0.25, overall=0.95)


def _assert_same_winners(got: np.ndarray, expected: np.ndarray, *, lead: float,
                         overall: float) -> None:
    """``got`` picks ``expected``'s class in every frame where that class leads the next by
    more than ``lead``, and in at least ``overall`` of all frames."""
    top2 = np.sort(expected, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > lead
    same = got.argmax(-1) == expected.argmax(-1)
    assert clear.any()
    assert same[clear].all(), f"{(~same[clear]).sum()} clearly decided frames changed class"
    assert same.mean() >= overall, f"the same class in only {same.mean():.1%} of frames"


@pytest.mark.slow  # compiles two int8 models and reads 48 crops with each
@pytest.mark.parametrize("lstm", [True, False], ids=["dynamic-int8-lstm", "fp32-lstm"])
def test_int8_models_from_quantize(shipped_int8: Callable[[bool], Any],
                                   assert_reads_like_fp32: Callable[..., None], cache: Path,
                                   lstm: bool) -> None:
    """The shipped model quantized by `quantize` reads on OpenVINO what it reads in fp32, on
    any x86 CPU (the bounds, and why, are in conftest's ``assert_reads_like_fp32``)."""
    # Both variants load: OpenVINO's ONNX frontend turns DynamicQuantizeLSTM (com.microsoft)
    # into an LSTM on dequantized weights.
    pytest.importorskip("onnx", reason="quantize needs onnx (the quantize extra)")
    pytest.importorskip("onnxruntime", reason="quantize needs onnxruntime (the cpu extra)")
    path = shipped_int8(lstm).output
    engine = OvEngine(path, OvOptions(cache_dir=cache))
    assert engine.precision == "int8" and engine.describe() == "openvino CPU, int8"
    assert engine.spec == _ort(path).spec
    assert_reads_like_fp32(engine)


@pytest.mark.slow  # thread stress: four threads, four shapes
def test_run_is_thread_safe(ov_engine: OvEngine) -> None:
    # Four shapes (two batch sizes, two widths), each thread taking every other one, so
    # that calls of different shapes overlap.
    inputs = [_batch(1 + i % 2, 100 + 32 * (i // 2), seed=i) for i in range(4)]
    alone = [ov_engine.run(x) for x in inputs]
    results: dict[tuple[int, int], np.ndarray] = {}
    start = threading.Barrier(4)

    def work(worker: int) -> None:
        start.wait()
        for round_ in range(2):
            for i, x in enumerate(inputs):
                if (i + worker + round_) % 2 == 0:
                    results[worker, i + 4 * round_] = ov_engine.run(x)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 * 4
    for (_, key), out in results.items():
        np.testing.assert_allclose(out, alone[key % 4], rtol=0, atol=1e-5)


def test_results_are_the_callers_to_keep(ov_engine: OvEngine) -> None:
    first = ov_engine.run(_batch(2, 100, seed=1))
    kept = first.copy()
    ov_engine.run(_batch(2, 100, seed=2))  # the same request, reused
    np.testing.assert_array_equal(first, kept)


def test_bad_batches(ov_engine: OvEngine) -> None:
    with pytest.raises(CRNNError, match=r"\(N, 3, 32, W\)"):
        ov_engine.run(np.zeros((1, 3, 31, 100), np.float32))
    assert ov_engine.run(np.zeros((0, 3, 32, 100), np.float32)).shape == (26, 0, 37)


def test_missing_openvino_is_a_clear_error(exported_model: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(CRNNError) as info:
        OvEngine(exported_model)
    assert str(info.value) == (
        "the OpenVINO engine needs openvino: pip install 'crnn-onnx[openvino]'"
    )


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("missing", "not found"),
        ("directory", "is not a file"),
        ("empty", "is empty"),
        ("text", "not an ONNX model"),
        ("png", "not an ONNX model"),
        ("truncated", "not a valid ONNX model"),
    ],
)
def test_bad_model_files(kind: str, match: str, bad_model_file: Callable[[str], Path],
                         cache: Path) -> None:
    path = bad_model_file(kind)
    with pytest.raises(CRNNError, match=match) as info:
        OvEngine(path, OvOptions(cache_dir=cache))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"device": "cuda"}, "device='cuda': the OpenVINO engine runs on the CPU here"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"precision": "fp16"}, "unknown precision 'fp16'"),
        ({"performance_hint": "FAST"}, "unknown performance_hint 'FAST'"),
        ({"threads": 0}, "threads must be at least 1"),
    ],
)
def test_options_are_validated(options: dict[str, object], match: str) -> None:
    with pytest.raises(CRNNError, match=match):
        OvOptions(**options)  # type: ignore[arg-type]
