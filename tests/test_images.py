"""Image reading, normalisation and path expansion."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from crnn_onnx.errors import CRNNError
from crnn_onnx.inference import images
from crnn_onnx.inference.images import (
    ImageSource,
    decode_image,
    expand_paths,
    read_image,
    to_bgr_uint8,
)


def _png_bytes(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def _save_pil(path: Path, mode: str, size: tuple[int, int] = (12, 7)) -> Image.Image:
    rng = np.random.default_rng(0)
    if mode == "P":
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).convert(
            "P", palette=Image.Palette.ADAPTIVE, colors=16
        )
    elif mode in ("LA", "RGBA"):
        channels = 2 if mode == "LA" else 4
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), np.uint8), mode)
    else:
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0]), np.uint8), "L")
    img.save(path)
    return img


def _expected_over_white(rgba: np.ndarray) -> np.ndarray:
    colour, alpha = rgba[..., :-1].astype(np.float64), rgba[..., -1:].astype(np.float64) / 255
    return np.rint(colour * alpha + 255 * (1 - alpha)).astype(np.uint8)


# --- reading files ----------------------------------------------------------------------


def test_grey_png(tmp_path: Path) -> None:
    img = _save_pil(tmp_path / "g.png", "L")
    out = read_image(tmp_path / "g.png")
    grey = np.asarray(img)
    assert out.shape == (7, 12, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


def test_grey_alpha_png_is_composited_on_white(tmp_path: Path) -> None:
    img = _save_pil(tmp_path / "la.png", "LA")
    la = np.asarray(img)
    out = read_image(tmp_path / "la.png")
    expected = _expected_over_white(la)[:, :, 0]
    np.testing.assert_allclose(out[:, :, 0], expected, atol=1)
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


def test_rgba_png_is_composited_on_white(tmp_path: Path) -> None:
    img = _save_pil(tmp_path / "rgba.png", "RGBA")
    rgba = np.asarray(img)
    out = read_image(tmp_path / "rgba.png")
    expected_rgb = _expected_over_white(rgba)
    np.testing.assert_allclose(out, expected_rgb[:, :, ::-1], atol=1)


def test_fully_transparent_black_becomes_white_and_opaque_is_unchanged() -> None:
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[:2, :, :3] = (10, 20, 30)
    bgra[:2, :, 3] = 255  # opaque top half
    out = to_bgr_uint8(bgra)
    assert (out[:2] == (10, 20, 30)).all()
    assert (out[2:] == 255).all()


def test_palette_png(tmp_path: Path) -> None:
    img = _save_pil(tmp_path / "p.png", "P")
    out = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, np.asarray(img.convert("RGB"))[:, :, ::-1])


def test_16bit_png_scaled_to_8bit(tmp_path: Path) -> None:
    deep = np.random.default_rng(1).integers(0, 65536, (6, 9, 3), dtype=np.uint16)
    (tmp_path / "deep.png").write_bytes(_png_bytes(deep))
    out = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(out, (deep >> 8).astype(np.uint8))
    # Same as cv2.imread's own conversion.
    np.testing.assert_array_equal(out, cv2.imread(str(tmp_path / "deep.png")))


def test_jpeg_matches_cv2_imread(tmp_path: Path) -> None:
    image = np.random.default_rng(2).integers(0, 256, (20, 30, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.jpg"), image)
    expected = cv2.imread(str(tmp_path / "a.jpg"))
    np.testing.assert_array_equal(read_image(tmp_path / "a.jpg"), expected)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty file"),  # zero bytes
        (b"hello, I am text\n", "cannot decode image"),  # text named .png
        ("truncated", "cannot decode image"),  # PNG cut in half
        ("huge-header", "image too large"),  # header claims 100000 x 100000
    ],
)
def test_bad_files_raise_one_line(tmp_path: Path, content: bytes | str, match: str) -> None:
    png = _png_bytes(np.full((30, 40, 3), 200, np.uint8))
    if content == "truncated":
        content = png[: len(png) // 2]
    elif content == "huge-header":
        ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
        chunk = b"IHDR" + ihdr
        content = png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
        content += png[33:]
    path = tmp_path / "bad.png"
    path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(CRNNError, match=match) as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_missing_directory_and_oversized_file(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CRNNError, match="No such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(CRNNError, match="directory"):
        read_image(tmp_path)
    (tmp_path / "big.png").write_bytes(_png_bytes(np.zeros((50, 50, 3), np.uint8)))
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 10)
    with pytest.raises(CRNNError, match="too large"):
        read_image(tmp_path / "big.png")


def test_decoded_pixel_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(CRNNError, match="image too large"):
        decode_image(_png_bytes(np.zeros((20, 20, 3), np.uint8)))
    with pytest.raises(CRNNError, match="image too large"):
        to_bgr_uint8(np.zeros((11, 10), np.uint8))


@pytest.mark.parametrize("name", ["ünïcødé 文字.png", "with space.png"])
def test_non_ascii_and_space_names(tmp_path: Path, name: str) -> None:
    image = np.random.default_rng(4).integers(0, 256, (5, 8, 3), np.uint8)
    (tmp_path / name).write_bytes(_png_bytes(image))
    np.testing.assert_array_equal(read_image(tmp_path / name), image)
    assert list(expand_paths([tmp_path / name])) == [ImageSource(str(tmp_path / name))]


# --- arrays -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((4, 4, 3), np.float32), "unsupported pixel type float32"),
        (np.zeros((4, 4, 5), np.uint8), "unsupported image shape"),
        (np.zeros((4,), np.uint8), "unsupported image shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
    ],
)
def test_to_bgr_rejects(array: np.ndarray, match: str) -> None:
    with pytest.raises(CRNNError, match=match):
        to_bgr_uint8(array)


def test_to_bgr_accepts_common_arrays() -> None:
    bgr = np.random.default_rng(5).integers(0, 256, (3, 4, 3), np.uint8)
    assert to_bgr_uint8(bgr) is bgr  # no copy when already right
    assert to_bgr_uint8(bgr[:, :, :1]).shape == (3, 4, 3)
    assert (to_bgr_uint8(np.ones((2, 2), bool)) == 255).all()
    assert to_bgr_uint8(bgr[:, ::-1]).flags.c_contiguous


# --- path expansion ---------------------------------------------------------------------


def _touch_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png_bytes(np.zeros((2, 2, 3), np.uint8)))


def test_directory_recursion_order_and_filter(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for rel in ["b.png", "a.JPG", "sub2/z.png", "sub1/y.png", "sub1/deeper/x.bmp", "notes.txt"]:
        _touch_png(root / rel)
    found = [Path(s.path).relative_to(root).as_posix() for s in expand_paths([root])]
    assert found == ["a.JPG", "b.png", "sub1/y.png", "sub1/deeper/x.bmp", "sub2/z.png"]


def test_input_order_kept_and_unmatched_become_errors(tmp_path: Path) -> None:
    _touch_png(tmp_path / "one.png")
    _touch_png(tmp_path / "dir" / "two.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("explicit files are kept whatever their name")
    sources = expand_paths([
        tmp_path / "dir", tmp_path / "missing.png", tmp_path / "one.png",
        str(tmp_path / "*.gif"), tmp_path / "empty", tmp_path / "notes.txt",
    ])
    assert [(Path(s.path).name, s.error) for s in sources] == [
        ("two.png", None),
        ("missing.png", "no such file or directory"),
        ("one.png", None),
        ("*.gif", "pattern matched no image files"),
        ("empty", "directory holds no image files"),
        ("notes.txt", None),
    ]


def test_glob_patterns(tmp_path: Path) -> None:
    for rel in ["b.png", "a.png", "c.jpg", "sub/d.png"]:
        _touch_png(tmp_path / rel)
    names = [Path(s.path).name for s in expand_paths([str(tmp_path / "*.png")])]
    assert names == ["a.png", "b.png"]
    names = [Path(s.path).name for s in expand_paths([str(tmp_path / "**" / "*.png")])]
    assert names == ["a.png", "b.png", "d.png"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this platform")
def test_symlink_loop_terminates(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _touch_png(root / "a" / "img.png")
    os.symlink(root, root / "a" / "loop")  # a/loop -> root: a cycle
    os.symlink(root / "a", root / "again")  # the same folder twice
    found = [Path(s.path).relative_to(root).as_posix() for s in expand_paths([root])]
    assert found == ["a/img.png"]
