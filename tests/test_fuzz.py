"""Property tests and bounded fuzzing: whatever comes in, a CRNNError or a valid result.

The decoder, preprocessing, the config loader and the image decoder are each fed arbitrary
input; the only outcomes allowed are a :class:`CRNNError` with a one-line message or a
result that satisfies the documented contract. Examples are few (seconds in all) and
derandomized by the suite's Hypothesis profile (tests/conftest.py); a longer campaign is a
matter of raising max_examples.
"""

from __future__ import annotations

import io
import json
import math
import random
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from hypothesis_budget import examples
from PIL import Image

from crnn_onnx.config import MAX_WIDTH, CRNNConfig, load_config
from crnn_onnx.contract import config_from_metadata, config_to_metadata
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.decoder import ctc_greedy_decode, nonfinite_sequences
from crnn_onnx.inference.images import MAX_PIXELS, decode_image, to_bgr_uint8
from crnn_onnx.inference.preprocess import preprocess, target_width

# On top of the suite's profile (tests/conftest.py): more examples, and big inputs are the point.
FUZZ = settings(max_examples=examples(120),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CHARSET = ("a", "b", "c")


def _one_line(err: CRNNError) -> None:
    assert str(err) and "\n" not in str(err)


# --- the CTC decoder --------------------------------------------------------------------
# Behaviour for NaN and +-inf, decided here: ctc_greedy_decode refuses them with a
# CRNNError (a NaN has no argmax worth reading, and an inf turns the softmax into NaN), and
# the Predictor uses nonfinite_sequences to make only the affected inputs error records.

_LOGIT = st.floats(width=16, allow_nan=True, allow_infinity=True)
_LOGIT_DTYPES = st.sampled_from([np.float16, np.float32, np.float64])


def _check_decoded(logits: np.ndarray) -> None:
    try:
        results = ctc_greedy_decode(logits, CHARSET)
    except CRNNError as err:
        _one_line(err)
        bad_shape = logits.ndim != 3 or logits.shape[0] == 0 or logits.shape[2] != 4
        assert bad_shape or not np.isfinite(logits).all(), err
        return
    assert logits.ndim == 3 and np.isfinite(logits).all()
    assert len(results) == logits.shape[1]
    for result in results:
        assert set(result.text) <= set(CHARSET)
        assert 0.0 <= result.confidence <= 1.0
        assert len(result.char_probs) == len(result.text)
        assert all(0.0 <= p <= 1.0 for p in result.char_probs)


@FUZZ
@given(arrays(_LOGIT_DTYPES, array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
              elements=_LOGIT))
def test_decoder_any_shape(logits: np.ndarray) -> None:
    _check_decoded(logits)


@FUZZ
@given(arrays(_LOGIT_DTYPES, st.tuples(st.integers(1, 30), st.integers(0, 6), st.just(4)),
              elements=_LOGIT))
def test_decoder_any_values(logits: np.ndarray) -> None:
    _check_decoded(logits)
    bad = nonfinite_sequences(logits)
    assert bad.tolist() == [not np.isfinite(logits[:, i]).all() for i in range(logits.shape[1])]
    if logits.shape[1] and not bad.all():  # the finite sequences decode on their own
        _check_decoded(logits[:, ~bad])


@FUZZ
@given(arrays(np.float64, st.tuples(st.integers(1, 10), st.integers(1, 3), st.just(4)),
              elements=st.floats(-1e300, 1e300)))
def test_decoder_finite_float64_beyond_float32(logits: np.ndarray) -> None:
    """Finite float64 logits too large for float32 still give probabilities in [0, 1]."""
    _check_decoded(logits)


# --- images to model input --------------------------------------------------------------

_PIXEL_DTYPES = st.sampled_from([
    np.uint8, np.uint16, np.dtype(">u2"), np.bool_, np.int8, np.int16, np.int32, np.uint32,
    np.int64, np.float16, np.float32, np.float64, np.complex64,
])


def _check_pipeline(image: np.ndarray, policy: str) -> None:
    try:
        bgr = to_bgr_uint8(image)
    except CRNNError as err:
        _one_line(err)
        return
    assert bgr.dtype == np.uint8 and bgr.shape == (*image.shape[:2], 3)
    assert bgr.flags.c_contiguous
    cfg = CRNNConfig()
    width = target_width(bgr.shape, cfg, policy)  # type: ignore[arg-type]
    x = preprocess(bgr, cfg, width)
    assert x.shape == (3, 32, width) and x.dtype == np.float32
    assert np.isfinite(x).all()


@FUZZ
@given(arrays(_PIXEL_DTYPES, array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=40)),
       st.sampled_from(["fixed", "bucket"]))
def test_any_array_through_preprocessing(image: np.ndarray, policy: str) -> None:
    _check_pipeline(image, policy)


@FUZZ
@given(st.integers(1, 4), st.integers(1, 20_000), st.booleans(), st.sampled_from([1, 2, 3, 4]),
       st.sampled_from(["fixed", "bucket"]))
def test_extreme_aspect_ratios(short: int, long: int, tall: bool, channels: int,
                               policy: str) -> None:
    """1 x 20000 and 20000 x 1 crops, any channel count: resized, never an error."""
    shape = (long, short, channels) if tall else (short, long, channels)
    image = np.random.default_rng(long).integers(0, 256, shape, dtype=np.uint8)
    _check_pipeline(image, policy)


# --- config files -----------------------------------------------------------------------

_SCALAR = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
_VALUE = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)
_KEYS = st.sampled_from(["image_shape", "charset", "dict_path", "mean", "std", "pad_value",
                         "keep_ratio", "bgr_to_rgb", "width_policy", "Charset", "width", ""])
# Values shaped like the real ones, often valid, sometimes just outside the rules.
_PLAUSIBLE = st.fixed_dictionaries({}, optional={
    "image_shape": st.tuples(st.integers(1, 4), st.integers(30, 34),
                             st.integers(-5, 2 * MAX_WIDTH)).map(list),
    "charset": st.text(max_size=12) | st.lists(st.text(max_size=2), max_size=6),
    "mean": st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=4),
    "std": st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3),
    "pad_value": st.floats(-10, 300) | st.integers(-10, 300),
    "keep_ratio": st.booleans() | st.integers(0, 1),
    "bgr_to_rgb": st.booleans(),
    "width_policy": st.sampled_from(["fixed", "bucket", "Bucket", ""]),
})


def _check_config(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "crnn.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            cfg = load_config(path)
        except CRNNError as err:
            _one_line(err)
            return
    assert isinstance(cfg, CRNNConfig)
    assert cfg.image_shape[:2] == (3, 32) and 4 <= cfg.width <= MAX_WIDTH
    assert all(math.isfinite(v) for v in (*cfg.mean, *cfg.std, cfg.pad_value))
    assert config_from_metadata(config_to_metadata(cfg)) == cfg


@FUZZ
@given(st.dictionaries(_KEYS, _VALUE, max_size=4) | _VALUE | _PLAUSIBLE)
@example({"mean": [float("nan"), 0.5, 0.5]})  # NaN would make every input NaN
@example({"std": [float("inf"), 1, 1]})  # inf would make every input 0
@example({"image_shape": [3, 32, 10**9]})  # preprocessing would allocate 384 GB
def test_load_config_any_yaml_document(document: object) -> None:
    _check_config(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(st.text(max_size=200))
@example("a: " + "[" * 700 + "]" * 700)  # deeper than PyYAML's recursion allows
@example("!!python/object/apply:os.system ['echo hi']")  # a tag that would run code
@example("charset: &a [*a]")  # a recursive alias
@example("- just\n- a list\n")
def test_load_config_any_text(text: str) -> None:
    _check_config(text)


@FUZZ
@given(st.dictionaries(
    st.sampled_from([f"crnn_onnx.{k}" for k in ("charset", "blank_index", "image_shape", "mean",
                                                "std", "pad_value", "keep_ratio", "bgr_to_rgb",
                                                "width_policy")]),
    st.text(max_size=20) | _VALUE.map(json.dumps), max_size=8))
@example({"crnn_onnx.charset": "[" * 100_000})  # deeper than json.loads recurses
@example({"crnn_onnx.charset": '["a"]', "crnn_onnx.image_shape": "[3, 32, 100000000]"})
def test_model_metadata_any_values(metadata: dict[str, str]) -> None:
    """A model file's metadata is input too: a hostile one gets a CRNNError."""
    try:
        cfg = config_from_metadata(metadata)
    except CRNNError as err:
        _one_line(err)
        return
    assert 4 <= cfg.width <= MAX_WIDTH


# --- image bytes ------------------------------------------------------------------------


def _seed_files() -> list[bytes]:
    """Small valid files in every format the decoder meets: the fuzzer's starting points."""
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    files = [cv2.imencode(ext, bgr)[1].tobytes()
             for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp", ".ppm")]
    files.append(cv2.imencode(".png", bgr.astype(np.uint16) * 257)[1].tobytes())
    files.append(cv2.imencode(".png", np.dstack([bgr, bgr[:, :, :1]]))[1].tobytes())
    for fmt, mode in (("GIF", "P"), ("TIFF", "CMYK"), ("JPEG", "CMYK"), ("WEBP", "RGBA"),
                      ("PNG", "LA"), ("PNG", "I;16")):
        buf = io.BytesIO()
        Image.fromarray(bgr).convert(mode).save(buf, fmt)
        files.append(buf.getvalue())
    return files


SEEDS = _seed_files()
_MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8L",
           b"II*\x00", b"MM\x00*", b"II+\x00", b"P5\n", b"P7\n", b"PF\n", b"#?RADIANCE\n"]


def _check_decode(data: bytes) -> None:
    try:
        image = decode_image(data)
    except CRNNError as err:
        _one_line(err)
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 0 < image.shape[0] * image.shape[1] <= MAX_PIXELS


@FUZZ
@given(st.binary(max_size=512) | st.tuples(st.sampled_from(_MAGICS), st.binary(max_size=512))
       .map(lambda parts: parts[0] + parts[1]))
def test_decode_random_bytes(data: bytes) -> None:
    _check_decode(data)


@settings(FUZZ, max_examples=examples(250))
@given(st.sampled_from(SEEDS), st.randoms(use_true_random=False))
def test_decode_mutated_files(seed: bytes, rnd: random.Random) -> None:
    """Flip, cut, insert and overwrite bytes of valid files (sizes and lengths included)."""
    data = bytearray(seed)
    for _ in range(rnd.randint(1, 6)):
        if not data:
            break
        pos = rnd.randrange(len(data))
        op = rnd.randrange(4)
        if op == 0:
            data[pos] = rnd.randrange(256)
        elif op == 1:
            del data[pos:]
        elif op == 2:
            data[pos:pos] = rnd.randbytes(rnd.randint(1, 16))
        else:
            data[pos:pos + 4] = rnd.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
                                            b"\x00\x00\x00\x00", b"\x00\x01\x00\x00"])
    _check_decode(bytes(data))


def test_seed_files_decode() -> None:
    """The fuzzer's starting points are valid, so its mutations start from real files."""
    for data in SEEDS:
        assert decode_image(data).shape == (12, 16, 3)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.zeros((4, 4), np.uint8), "1-D uint8 array"),  # decoded pixels, not a file
        (np.zeros(8, np.float32), "1-D uint8 array"),
        (memoryview(b""), "empty file"),
        (bytearray(b"GIF89a"), "cannot decode image"),
    ],
)
def test_decode_image_argument_types(data: object, match: str) -> None:
    with pytest.raises(CRNNError, match=match):
        decode_image(data)  # type: ignore[arg-type]


def test_decode_image_accepts_any_bytes_like() -> None:
    png = SEEDS[0]
    expected = decode_image(png)
    for data in (bytearray(png), memoryview(png), np.frombuffer(png, np.uint8)[::1]):
        np.testing.assert_array_equal(decode_image(data), expected)


def test_big_endian_16_bit_array_is_accepted() -> None:
    native = np.arange(0, 65536, 4099, dtype=np.uint16).reshape(2, 8)
    np.testing.assert_array_equal(to_bgr_uint8(native.astype(">u2")), to_bgr_uint8(native))
