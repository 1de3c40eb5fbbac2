"""Preprocessing against a plain-loop re-implementation of upstream's transform."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.images import to_bgr_uint8
from crnn_onnx.inference.preprocess import (
    BUCKET_STEP,
    MAX_BUCKET_WIDTH,
    batch,
    preprocess,
    resized_width,
    target_width,
    widest_width,
)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def upstream_transform(image: np.ndarray, img_h: int = 32, img_w: int = 100) -> np.ndarray:
    """CRNN-TextRec TransformCRNN.resize_padding + Normalize + ToTensorV2, written out."""
    h, w = image.shape[:2]
    ratio = w / float(h)
    if math.ceil(img_h * ratio) > img_w:
        resized_w = img_w
    else:
        resized_w = int(math.ceil(img_h * ratio))  # noqa: RUF046  (as upstream writes it)
    resized = cv2.resize(image, (resized_w, img_h)).astype("float32")
    padded = np.ones((img_h, img_w, 3), dtype=np.float32) * 128
    padded[:, :resized_w] = resized
    padded = padded[..., ::-1]  # BGR -> RGB
    out = np.empty((3, img_h, img_w), dtype=np.float64)
    for c in range(3):  # Normalize(max_pixel_value=255), then HWC -> CHW
        for y in range(img_h):
            for x in range(img_w):
                out[c, y, x] = (float(padded[y, x, c]) - MEAN[c] * 255.0) / (STD[c] * 255.0)
    return out


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# (height, width) of BGR test images; comment says what edge they probe.
SHAPES = [
    (1, 1),  # smallest possible: ceil(32 * 1) = 32 wide
    (32, 100),  # already model-sized
    (16, 50),  # resizes to exactly 100 wide
    (33, 103),  # ceil() boundary: 32 * 103 / 33 = 99.88 -> 100
    (31, 97),  # 100.13 -> capped at 100
    (1, 600),  # very wide: squeezed to 100
    (700, 3),  # very tall: 1 pixel wide, 99 columns of padding
    (45, 17),  # narrow, odd sizes
    (64, 250),  # downscale with ratio > width
]


@pytest.mark.parametrize(("h", "w"), SHAPES)
def test_matches_upstream(h: int, w: int) -> None:
    image = _image(h, w, seed=h * 1000 + w)
    got = preprocess(image, CRNNConfig())
    assert got.shape == (3, 32, 100)
    assert got.dtype == np.float32
    assert got.flags.c_contiguous
    np.testing.assert_allclose(got, upstream_transform(image), atol=1e-5, rtol=0)


@pytest.mark.parametrize("width", [128, 320, 800])
def test_matches_upstream_at_other_widths(width: int) -> None:
    image = _image(40, 300, seed=width)
    np.testing.assert_allclose(
        preprocess(image, CRNNConfig(), width), upstream_transform(image, img_w=width),
        atol=1e-5, rtol=0,
    )


def test_grey_image_goes_through_bgr_conversion() -> None:
    grey = np.random.default_rng(3).integers(0, 256, (20, 70), dtype=np.uint8)
    bgr = to_bgr_uint8(grey)
    np.testing.assert_allclose(
        preprocess(bgr, CRNNConfig()), upstream_transform(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)),
        atol=1e-5, rtol=0,
    )
    with pytest.raises(CRNNError, match=r"\(H, W, 3\)"):
        preprocess(grey, CRNNConfig())


def test_non_contiguous_view_is_accepted() -> None:
    image = _image(40, 200)
    view = image[::2, ::-1]
    np.testing.assert_allclose(
        preprocess(view, CRNNConfig()), upstream_transform(np.ascontiguousarray(view)), atol=1e-5
    )


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),  # float: scale ambiguous
        (np.zeros((10, 10, 3), np.uint16), "uint8"),  # 16-bit: use to_bgr_uint8 first
        (np.zeros((10, 10, 4), np.uint8), r"\(H, W, 3\)"),  # BGRA
        (np.zeros((0, 10, 3), np.uint8), "empty"),
    ],
)
def test_rejects_bad_arrays(array: np.ndarray, match: str) -> None:
    with pytest.raises(CRNNError, match=match):
        preprocess(array, CRNNConfig())


def test_config_switches() -> None:
    image = _image(20, 30)
    stretched = preprocess(image, CRNNConfig(keep_ratio=False))
    resized = cv2.resize(image, (100, 32)).astype(np.float32)[..., ::-1]
    expected = (resized - np.array(MEAN) * 255) / (np.array(STD) * 255)
    np.testing.assert_allclose(stretched, expected.transpose(2, 0, 1), atol=1e-5)

    bgr = preprocess(image, CRNNConfig(bgr_to_rgb=False, mean=(0.5,) * 3, std=(0.5,) * 3,
                                       pad_value=0))
    assert np.allclose(bgr[:, :, -1], -1.0)  # padding 0 -> (0 - 127.5) / 127.5
    rgb = preprocess(image, CRNNConfig(mean=(0.5,) * 3, std=(0.5,) * 3))
    np.testing.assert_allclose(bgr[:, :, :10], rgb[::-1, :, :10], atol=1e-6)


def test_batch_stacks_and_handles_empty() -> None:
    images = [_image(10, 30), _image(50, 20, seed=1)]
    out = batch(images, CRNNConfig(), 128)
    assert out.shape == (2, 3, 32, 128) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], preprocess(images[1], CRNNConfig(), 128))
    assert batch([], CRNNConfig()).shape == (0, 3, 32, 100)


@pytest.mark.parametrize(
    ("shape", "policy", "expected"),
    [
        ((32, 50), "fixed", 100),
        ((32, 2000), "fixed", 100),  # fixed never looks at the image
        ((32, 50), "bucket", 100),  # narrow: never below the config width
        ((32, 100), "bucket", 100),
        ((32, 101), "bucket", 128),  # rounded up to a multiple of 32
        ((16, 160), "bucket", 320),  # 320 is itself a multiple of 32
        ((32, 321), "bucket", 352),
        ((10, 5000), "bucket", MAX_BUCKET_WIDTH),  # capped
    ],
)
def test_target_width(shape: tuple[int, int], policy: str, expected: int) -> None:
    assert target_width(shape, CRNNConfig(), policy) == expected  # type: ignore[arg-type]


def test_widest_width_bounds_every_target_width() -> None:
    """Training sizes its longest label by the widest input a policy gives: no crop's target
    width may exceed it, for a config narrower or wider than the bucket cap."""
    for config in (CRNNConfig(), CRNNConfig(image_shape=(3, 32, 1000))):
        for policy in ("fixed", "bucket"):
            widest = widest_width(config, policy)  # type: ignore[arg-type]
            widths = {target_width((32, w), config, policy)  # type: ignore[arg-type]
                      for w in (10, 100, 900, 5000, 40000)}
            assert max(widths) == widest
    assert widest_width(CRNNConfig(), "bucket") == MAX_BUCKET_WIDTH
    with pytest.raises(CRNNError, match="unknown width policy"):
        widest_width(CRNNConfig(), "auto")  # type: ignore[arg-type]


def test_bucket_widths_are_multiples_of_the_stride() -> None:
    for w in range(1, 1200, 7):
        width = target_width((32, w), CRNNConfig(), "bucket")
        assert width == 100 or width % BUCKET_STEP == 0
        assert width % 4 == 0
        assert resized_width(32, w, 32, width) <= width
    with pytest.raises(CRNNError, match="unknown width policy"):
        target_width((32, 32), CRNNConfig(), "auto")  # type: ignore[arg-type]
