"""Background photographs: found, cached, cut into patches reproducibly."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from crnn_onnx.errors import CRNNError
from crnn_onnx.synth.backgrounds import BackgroundBank, read_gimp_pattern


def _write_pattern(path: Path, rgb: np.ndarray) -> None:
    name = b"test\0"
    header = struct.pack(">5I", 24 + len(name), 1, rgb.shape[1], rgb.shape[0], 3) + b"GPAT"
    path.write_bytes(header + name + rgb.tobytes())


def test_gimp_patterns_read_as_bgr(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    _write_pattern(tmp_path / "wood.pat", rgb)
    assert np.array_equal(read_gimp_pattern(tmp_path / "wood.pat"), rgb[..., ::-1])


def test_a_file_that_is_not_a_pattern_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.pat").write_bytes(b"\0" * 40)
    with pytest.raises(CRNNError, match="not a GIMP pattern"):
        read_gimp_pattern(tmp_path / "x.pat")


def test_bank_loads_photos_and_patterns_then_reuses_its_cache(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(2)
    cv2.imwrite(str(photos / "street.png"), rng.integers(0, 256, (900, 1200, 3), np.uint8))
    cv2.imwrite(str(photos / "tiny.png"), rng.integers(0, 256, (10, 10, 3), np.uint8))
    _write_pattern(photos / "stone.pat", rng.integers(0, 256, (64, 64, 3), np.uint8))
    cache = tmp_path / "cache"
    bank = BackgroundBank.from_dirs([str(photos)], cache_dir=cache)
    assert len(bank) == 2  # the 10-pixel image is too small to cut patches from
    assert max(max(im.shape[:2]) for im in bank.images) <= 640
    assert len(list(cache.glob("*.npz"))) == 1
    again = BackgroundBank.from_dirs([str(photos)], cache_dir=cache)
    assert all(np.array_equal(a, b) for a, b in zip(bank.images, again.images, strict=True))


def test_patches_have_the_asked_shape_and_follow_the_seed() -> None:
    bank = BackgroundBank([np.random.default_rng(3).integers(0, 256, (100, 140, 3), np.uint8)])
    for h, w in [(32, 100), (60, 400), (200, 30)]:
        a = bank.patch(random.Random(h), h, w)
        assert a.shape == (h, w, 3) and a.dtype == np.float32
        assert np.array_equal(a, bank.patch(random.Random(h), h, w))


def test_no_backgrounds_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match="no background images"):
        BackgroundBank.from_dirs([str(tmp_path)], cache_dir=tmp_path / "cache")
