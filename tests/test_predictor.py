"""Predictor: order, error records, batch invariance, array inputs, thread safety."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.images import ImageSource
from crnn_onnx.inference.options import PredictorOptions
from crnn_onnx.inference.predictor import Predictor, default_io_workers
from crnn_onnx.results import Prediction


def word_image(text: str, height: int = 32, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Dark text drawn on a light, slightly noisy background, (H, W, 3) uint8 BGR."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), base = cv2.getTextSize(text, font, scale, 2)
    canvas = np.full((h + base + 10, w + 10, 3), 230, np.uint8)
    canvas += np.random.default_rng(seed).integers(0, 20, canvas.shape, dtype=np.uint8)
    cv2.putText(canvas, text, (5, h + 5), font, scale, (30, 30, 30), 2, cv2.LINE_AA)
    ratio = height / canvas.shape[0]
    return cv2.resize(canvas, (max(1, round(canvas.shape[1] * ratio)), height))


# Words of very different aspect ratios, so that the bucket policy spreads them over
# several widths (100, 128, ..., 800).
WORDS = [("hi", 32), ("hello", 40), ("a", 24), ("recognition", 32), ("xyz", 64),
         ("extraordinarilylongword", 32), ("mid", 20), ("onnxruntime", 48)]


@pytest.fixture(scope="module")
def mixed_images() -> list[np.ndarray]:
    return [word_image(text, height, seed=i) for i, (text, height) in enumerate(WORDS)]


@pytest.fixture(scope="module")
def bucket_predictor(exported_model: Path) -> Predictor:
    return Predictor(exported_model,
                     PredictorOptions(device="cpu", batch_size=32, width_policy="bucket"))


def _assert_same(a: list[Prediction], b: list[Prediction], atol: float = 1e-5) -> None:
    assert [p.text for p in a] == [p.text for p in b]
    assert [p.error for p in a] == [p.error for p in b]
    for x, y in zip(a, b, strict=True):
        if x.confidence is not None:
            assert x.confidence == pytest.approx(y.confidence, abs=atol)
            np.testing.assert_allclose(x.char_probs, y.char_probs, atol=atol)


def test_bucket_result_does_not_depend_on_the_batch(
    bucket_predictor: Predictor, mixed_images: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    widths: list[tuple[int, int]] = []
    run = bucket_predictor.engine.run

    def spy(batch: np.ndarray) -> np.ndarray:
        widths.append((batch.shape[0], batch.shape[3]))
        return run(batch)

    monkeypatch.setattr(bucket_predictor.engine, "run", spy)
    together = bucket_predictor.predict(mixed_images)
    assert len({w for _, w in widths}) >= 3, widths  # several buckets, one width per batch
    assert sum(n for n, _ in widths) == len(mixed_images)
    alone = [bucket_predictor.predict([image])[0] for image in mixed_images]
    _assert_same(together, alone)
    reordered = bucket_predictor.predict(mixed_images[::-1])
    _assert_same(reordered[::-1], together)


def test_fixed_policy_small_batches_match_one_batch(exported_model: Path,
                                                    mixed_images: list[np.ndarray]) -> None:
    one = Predictor(exported_model, PredictorOptions(device="cpu", batch_size=32))
    small = Predictor(exported_model,
                      PredictorOptions(device="cpu", batch_size=3, io_workers=2))
    one, small = one.predict(mixed_images), small.predict(mixed_images)
    _assert_same(one, small)
    assert all(0.0 <= p.confidence <= 1.0 for p in one if p.confidence is not None)


def test_error_records_stay_in_place(bucket_predictor: Predictor, tmp_path: Path,
                                     mixed_images: list[np.ndarray]) -> None:
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), mixed_images[1])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    inputs = [good, tmp_path / "missing.png", mixed_images[1], broken,
              np.zeros((5, 5, 3), np.float32), str(good)]
    results = bucket_predictor.predict(inputs)
    assert [r.path for r in results] == [str(good), str(tmp_path / "missing.png"), None,
                                         str(broken), None, str(good)]
    assert [r.ok for r in results] == [True, False, True, False, False, True]
    assert "No such file" in (results[1].error or "")
    assert "cannot decode image" in (results[3].error or "")
    assert "float32" in (results[4].error or "")
    for failed in (results[1], results[3], results[4]):
        assert failed.text is None and failed.confidence is None and failed.char_probs == ()
    # A file and the same pixels as an array give the same result.
    _assert_same([results[0]], [results[2]])
    assert results[0].record() == {**results[5].record()}


def test_predict_paths_expands_and_streams(bucket_predictor: Predictor, tmp_path: Path,
                                          mixed_images: list[np.ndarray]) -> None:
    folder = tmp_path / "words"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "b.png"), mixed_images[0])
    cv2.imwrite(str(folder / "a.png"), mixed_images[1])
    cv2.imwrite(str(folder / "sub" / "c.png"), mixed_images[2])
    stream = bucket_predictor.predict_paths(
        [folder, tmp_path / "nothing-*.png", str(folder / "a.png")]
    )
    first = next(stream)  # a generator: records come out as they are ready
    rest = list(stream)
    names = [Path(r.path or "").name for r in [first, *rest]]
    assert names == ["a.png", "b.png", "c.png", "nothing-*.png", "a.png"]
    assert rest[2].error == "pattern matched no image files"
    assert bucket_predictor.predict_paths([]) is not None
    assert list(bucket_predictor.predict_paths([])) == []
    # Sources expanded elsewhere are read as they are: a folder name is not searched again.
    sources = [ImageSource(str(folder / "a.png")), ImageSource(str(folder), "not searched")]
    again = list(bucket_predictor.predict_sources(sources))
    assert again[0].text == first.text and again[1].error == "not searched"


@pytest.mark.slow  # thread stress; the quick tier keeps the io-binding one below
def test_concurrent_predict_matches_sequential(bucket_predictor: Predictor,
                                               mixed_images: list[np.ndarray]) -> None:
    expected = bucket_predictor.predict(mixed_images)
    barrier = threading.Barrier(4)

    def work(shift: int) -> list[Prediction]:
        barrier.wait()
        images = mixed_images[shift:] + mixed_images[:shift]
        out = bucket_predictor.predict(images)
        return out[len(images) - shift:] + out[:len(images) - shift]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    for result in results:
        _assert_same(result, expected)


def test_auto_width_policy_is_the_one_the_model_was_trained_for(
        exported_model: Path, bucket_predictor: Predictor, mixed_images: list[np.ndarray],
        tmp_path: Path) -> None:
    import onnx

    from crnn_onnx.contract import METADATA_PREFIX, set_metadata

    images = [mixed_images[1], mixed_images[7]]  # 100 and 192 px wide under bucket
    plain = Predictor(exported_model, PredictorOptions(device="cpu"))
    assert plain.config.width_policy == "fixed" and plain.width_policy == "fixed"
    model = onnx.load(str(exported_model))
    set_metadata(model, {METADATA_PREFIX + "width_policy": '"bucket"'})
    trained_bucket = tmp_path / "bucket.onnx"
    onnx.save(model, str(trained_bucket))
    auto = Predictor(trained_bucket, PredictorOptions(device="cpu"))
    assert auto.config.width_policy == "bucket" and auto.width_policy == "bucket"
    _assert_same(auto.predict(images), bucket_predictor.predict(images))
    told = Predictor(auto.engine, PredictorOptions(device="cpu", width_policy="fixed"))
    assert told.width_policy == "fixed"
    _assert_same(told.predict(images), plain.predict(images))


def test_arguments_are_validated(exported_model: Path) -> None:
    with pytest.raises(CRNNError, match="batch_size"):
        Predictor(exported_model, PredictorOptions(device="cpu", batch_size=0))
    with pytest.raises(CRNNError, match="unknown width policy"):
        PredictorOptions(device="cpu", width_policy="widest")  # type: ignore[arg-type]
    with pytest.raises(CRNNError, match="not found"):
        Predictor(exported_model.parent / "nope.onnx", PredictorOptions(device="cpu"))


@pytest.mark.parametrize(
    ("device", "threads", "cores", "workers"),
    [
        ("cpu", None, 2, 2),  # inference takes every core: two readers keep a fast engine fed
        ("cpu", 2, 8, 4),  # six cores left free, capped at 4
        ("cpu", 1, 4, 3),  # three cores left: three readers
        ("cpu", 4, 2, 2),  # more intra-op threads than cores: still two readers
        ("cuda", None, 2, 2),  # the CPU only reads: one reader per core
        ("cuda", None, 16, 4),
    ],
)
def test_default_io_workers_leave_the_cores_to_inference(device: str, threads: int | None,
                                                         cores: int, workers: int) -> None:
    assert default_io_workers(device, threads, cores) == workers


def test_concurrent_files_arrays_and_io_binding_match_sequential(
    exported_model: Path, mixed_images: list[np.ndarray], tmp_path: Path
) -> None:
    """Threads streaming files (with a broken one) and threads passing arrays, at once, on
    one Predictor whose session uses IO binding (the CUDA path, here on the CPU): each gets
    what it gets alone."""
    predictor = Predictor(exported_model, PredictorOptions(
        device="cpu", batch_size=3, width_policy="bucket", io_workers=2))
    predictor.engine.io_binding = True
    images = mixed_images[:5]  # widths 100 to 352: several output shapes to bind
    for i, image in enumerate(images):
        cv2.imwrite(str(tmp_path / f"{i}.png"), image)
    (tmp_path / "2b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    from_files = list(predictor.predict_paths([tmp_path]))
    from_arrays = predictor.predict(images[::-1])
    assert [p.ok for p in from_files] == [True, True, True, False, True, True]
    barrier = threading.Barrier(4)

    def work(kind: int) -> list[Prediction]:
        barrier.wait()
        if kind % 2:
            return list(predictor.predict_paths([tmp_path]))
        return predictor.predict(images[::-1])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    for kind, result in enumerate(results):
        expected = from_files if kind % 2 else from_arrays
        assert [p.path for p in result] == [p.path for p in expected]
        _assert_same(result, expected)


def test_session_settings_reach_onnx_runtime_and_keep_the_results(
        exported_model: Path, mixed_images: list[np.ndarray]) -> None:
    """graph_optimization / cudnn_conv_algo_search go to the session; no optimisation level
    changes what is read."""
    plain = Predictor(exported_model, PredictorOptions(
        device="cpu", graph_optimization="disable", cudnn_conv_algo_search="EXHAUSTIVE"))
    assert plain.engine.options.cudnn_conv_algo_search == "EXHAUSTIVE"
    level = plain.engine._session.get_session_options().graph_optimization_level
    assert level.name == "ORT_DISABLE_ALL"
    optimised = Predictor(exported_model, PredictorOptions(device="cpu"))
    assert optimised.engine.options.graph_optimization == "all"
    got, want = plain.predict(mixed_images), optimised.predict(mixed_images)
    assert [p.text for p in got] == [p.text for p in want]
    np.testing.assert_allclose([p.confidence for p in got], [p.confidence for p in want],
                               atol=1e-5)
    with pytest.raises(CRNNError, match="unknown graph optimisation level 'max'"):
        Predictor(exported_model, PredictorOptions(device="cpu", graph_optimization="max"))
