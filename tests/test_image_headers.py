"""Header sizes (the decompression-bomb guard): right for real files, refusing bombs early."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from crnn_onnx.errors import CRNNError
from crnn_onnx.inference import images
from crnn_onnx.inference.image_headers import header_size, structure_problem
from crnn_onnx.inference.images import decode_image

W, H = 37, 13  # odd sizes, so that a swapped width and height shows


def _pil(fmt: str, mode: str = "RGB", size: tuple[int, int] = (W, H), **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 200).save(buf, fmt, **kwargs)
    return buf.getvalue()


def _cv2(ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, np.full((H, W, 3), 200, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    "make",
    [
        lambda: _cv2(".png"),
        lambda: _cv2(".jpg"),
        lambda: _pil("JPEG", progressive=True),  # SOF2 rather than SOF0
        lambda: _cv2(".bmp"),
        lambda: _pil("GIF", "P"),
        lambda: _pil("WEBP", quality=80),  # lossy: VP8
        lambda: _pil("WEBP", lossless=True),  # VP8L
        lambda: _pil("WEBP", "RGBA"),  # with alpha: VP8X
        lambda: _pil("TIFF"),  # little-endian
        lambda: _pil("TIFF", "I;16B"),  # big-endian
        lambda: _pil("TIFF", big_tiff=True),  # BigTIFF: 8-byte offsets
        lambda: _pil("PPM", "L"),  # P5
        lambda: _cv2(".ppm"),
        lambda: _pil("PPM", "1"),  # P4
        lambda: b"P2\n# a comment\n37 # width\n13\n255\n" + b"0 " * (W * H),  # ASCII PGM
        lambda: b"P7\nWIDTH 37\nHEIGHT 13\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n",
        lambda: b"PF\n37 13\n-1.0\n",  # PFM
    ],
    ids=["png", "jpeg", "jpeg-progressive", "bmp", "gif", "webp-lossy", "webp-lossless",
         "webp-extended", "tiff-le", "tiff-be", "bigtiff", "pgm", "ppm", "pbm", "pgm-ascii",
         "pam", "pfm"],
)
def test_header_size_matches_the_image(make) -> None:  # type: ignore[no-untyped-def]
    assert header_size(make()) == (W, H)


def test_tiff_directory_at_the_end_of_the_file() -> None:
    """OpenCV and libtiff write the first directory after the pixels."""
    ok, buf = cv2.imencode(".tiff", np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8))
    assert ok and struct.unpack_from("<I", buf.tobytes(), 4)[0] > 100
    assert header_size(buf.tobytes()) == (W, H)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n",  # cut before IHDR
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # cut before the frame header
        b"GIF89a\x01",  # cut inside the screen size
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",  # cut before the frame
        b"II*\x00\xff\xff\xff\x7f",  # directory offset beyond the file
        b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x00\x00\x05",  # width of an unknown type
        b"P5\nwide tall\n",  # not numbers
        b"P7\nWIDTH 3\n",  # no height
        b"II+\x00\x08\x00\x00\x00" + b"\xff" * 8,  # BigTIFF offset beyond any file
        b"P5\n" + b"9" * 5000 + b" 1\n",  # a number too long for int()
        b"hello, I am text",
    ],
)
def test_malformed_headers_give_none(data: bytes) -> None:
    assert header_size(data) is None


def _bomb(fmt: str) -> bytes:
    """A small file whose header claims 20000 x 20000 = 400 MP."""
    n = 20_000
    if fmt == "png":
        return _cv2(".png")[:16] + struct.pack(">II", n, n) + _cv2(".png")[24:]
    if fmt == "gif":
        return b"GIF89a" + struct.pack("<HH", n, n) + _pil("GIF", "P")[10:]
    if fmt == "webp":
        data = bytearray(_pil("WEBP", "RGBA"))
        data[24:30] = (n - 1).to_bytes(3, "little") * 2
        return bytes(data)
    if fmt == "tiff":
        ifd = struct.pack("<H", 2) + struct.pack("<HHII", 256, 4, 1, n)
        ifd += struct.pack("<HHII", 257, 4, 1, n) + b"\x00" * 4
        return b"II*\x00" + struct.pack("<I", 8) + ifd
    if fmt == "jpeg":
        data = bytearray(_cv2(".jpg"))
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", n, n)
        return bytes(data)
    if fmt == "pgm":
        return b"P5\n20000 20000\n255\n" + b"\x00" * 64
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["png", "gif", "webp", "tiff", "jpeg", "pgm"])
def test_bombs_are_refused_before_decoding(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(images.cv2, "imdecode", no_decoding)
    with pytest.raises(CRNNError, match=r"image too large \(20000x20000 = 400 MP > 50 MP\)"):
        decode_image(_bomb(fmt))


def test_opencv_limit_is_set_before_cv2_loads() -> None:
    """For the formats without a parser: importing crnn_onnx first sets OpenCV's own limit,
    which refuses a Sun raster (no parser here) claiming 10000 x 10000 before decoding."""
    code = (
        "import struct, crnn_onnx, cv2\n"
        "from crnn_onnx.inference.images import MAX_PIXELS, decode_image\n"
        "import os; assert os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'] == str(MAX_PIXELS)\n"
        "ras = struct.pack('>8I', 0x59A66A95, 10000, 10000, 8, 0, 1, 0, 0) + bytes(64)\n"
        "try:\n"
        "    decode_image(ras)\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "CRNNError image too large (over 50 MP, from its header)"


@pytest.mark.slow
def test_user_setting_of_the_opencv_limit_wins() -> None:
    code = "import crnn_onnx, os; print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])"
    env = {**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": "1234"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=True)
    assert done.stdout.strip() == "1234"


def test_png_chunk_claiming_more_than_the_file_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by fuzzing: OpenCV allocated the 3.5 GB this 58-byte file's IDAT claims."""
    png = _cv2(".png")
    ihdr_end = 8 + 12 + 13
    bomb = png[:ihdr_end] + struct.pack(">I", 3_590_324_823) + b"IDAT" + b"\x00" * 17
    assert len(bomb) == 58
    assert structure_problem(bomb) == (
        "PNG chunk 'IDAT' claims 3590324823 bytes, the file has 13 left"
    )
    assert structure_problem(png) is None
    assert structure_problem(png[:-20]) is not None  # cut inside the last chunk
    assert structure_problem(_cv2(".jpg")) is None  # only PNG is walked

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(images.cv2, "imdecode", no_decoding)
    with pytest.raises(CRNNError, match=r"truncated or corrupt: PNG chunk 'IDAT' claims"):
        decode_image(bomb)
