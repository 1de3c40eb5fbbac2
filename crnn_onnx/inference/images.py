"""Image inputs: expand paths, read files safely, normalise pixels to BGR uint8.

Every reader returns what upstream's ``cv2.imread`` returns for an ordinary image: an
(H, W, 3) uint8 BGR array. Differences from plain ``cv2.imread`` are deliberate:

* files are read with ``np.fromfile`` + ``cv2.imdecode`` so non-ASCII paths work on every OS;
* failures raise :class:`~crnn_onnx.errors.CRNNError` with a one-line reason instead of
  returning ``None``;
* transparent images (grey+alpha, BGRA) are composited onto white instead of having their
  alpha dropped. Dropping alpha turns the fully transparent pixels into whatever colour they
  happen to store, often black, which hides dark text; on white, a transparent background
  looks like the paper it stands for. Opaque pixels (alpha 255) are unchanged, so opaque
  images decode exactly as ``cv2.imread`` reads them;
* 16-bit images are scaled to 8 bits by ``>> 8`` (as ``cv2.imread`` does);
* images over :data:`MAX_PIXELS` are refused from the file header, before any memory is
  spent decoding them (PNG, JPEG, BMP, GIF, WebP, TIFF, PNM: see
  :mod:`crnn_onnx.inference.image_headers`; OpenCV's own limit, set to the same value, covers the
  rest), and checked again on the decoded array.

JPEG files are decoded with ``cv2.IMREAD_COLOR`` (JPEG has no alpha), which applies the EXIF
orientation just as ``cv2.imread`` does; other formats with ``cv2.IMREAD_UNCHANGED``.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.inference.image_headers import header_size, structure_problem

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "ImageSource",
    "decode_image",
    "expand_paths",
    "read_image",
    "to_bgr_uint8",
]

logger = logging.getLogger(__name__)

#: File name endings picked up when a directory or glob is searched (case-insensitive).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp",
     ".pbm", ".pgm", ".ppm", ".pnm", ".jp2", ".gif"}
)
#: Largest decoded image accepted, in pixels (H * W).
MAX_PIXELS = 50_000_000
#: Largest image file accepted, in bytes.
MAX_FILE_BYTES = 256 * 1024 * 1024

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class ImageSource:
    """One expanded input: an image file to read, or an input that matched nothing.

    Attributes:
        path: the file path (as given, or joined onto the directory given), or the
            unmatched argument itself.
        error: ``None`` for a file to read; otherwise why the argument gave no file.
    """

    path: str
    error: str | None = None


def expand_paths(paths: Iterable[str | Path]) -> Iterator[ImageSource]:
    """Expand files, directories and glob patterns into image sources, in input order,
    lazily: each argument is expanded when the sources before it have been taken, so a
    stream of arguments (paths read from standard input) is expanded as it comes.

    * an existing file is kept as is, whatever its extension (a pipe or device too, so
      that reading it can say what it is);
    * a directory is searched recursively for files ending in :data:`IMAGE_EXTENSIONS`:
      each folder's files in sorted order, then its subfolders in sorted order. Symlinked
      folders are followed once each (by real path), so symlink loops cannot hang;
    * anything else containing ``*``, ``?`` or ``[`` is a glob (``**`` recurses); its
      matches are taken in sorted order, matched directories searched as above;
    * an argument that yields no file becomes a source with ``error`` set, never dropped.

    Args:
        paths: the user's arguments.

    Yields:
        The sources, in the order of the arguments they came from.
    """
    for raw in paths:
        arg = os.fspath(raw)
        found: list[str]
        if os.path.isfile(arg) or (os.path.exists(arg) and not os.path.isdir(arg)):
            yield ImageSource(arg)
            continue
        if os.path.isdir(arg):
            found = _walk_images(arg)
            reason = "directory holds no image files"
        elif any(ch in _GLOB_CHARS for ch in arg):
            found = []
            for match in sorted(glob.glob(arg, recursive=True)):
                if os.path.isdir(match):
                    found.extend(_walk_images(match))
                elif os.path.isfile(match):
                    found.append(match)
            reason = "pattern matched no image files"
        else:
            found = []
            reason = "no such file or directory"
        if found:
            yield from (ImageSource(p) for p in found)
        else:
            yield ImageSource(arg, error=reason)


def _walk_images(top: str) -> list[str]:
    seen: set[str] = {os.path.realpath(top)}
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        kept = []
        for name in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, name))
            if real in seen:
                logger.debug("skipping %s: already visited (symlink loop?)",
                             os.path.join(dirpath, name))
                continue
            seen.add(real)
            kept.append(name)
        dirnames[:] = kept  # os.walk descends into these, in this order
        found.extend(
            os.path.join(dirpath, name)
            for name in sorted(filenames)
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        )
    return found


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 BGR.

    Raises:
        CRNNError: the file is missing, unreadable, not a regular file, empty, too large,
            truncated, not an image, or of an unsupported pixel type; the message is one
            line.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            # A named pipe would block the read until something writes to it; a device
            # such as /dev/zero never ends.
            raise CRNNError("not a regular file (a pipe, socket or device)")
        size = os.path.getsize(path)
        if size == 0:
            raise CRNNError("cannot decode image (empty file)")
        if size > MAX_FILE_BYTES:
            raise CRNNError(
                f"image file too large ({size / 2**20:.0f} MiB > {MAX_FILE_BYTES // 2**20} MiB)"
            )
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        if isinstance(err, IsADirectoryError) or os.path.isdir(path):
            raise CRNNError("is a directory, not an image file") from None
        raise CRNNError(f"cannot read file: {err.strerror or err}") from None
    return decode_image(data)


def decode_image(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Decode an encoded image (PNG, JPEG, ...) to (H, W, 3) uint8 BGR.

    Args:
        data: the file's bytes (any bytes-like object), or a 1-D uint8 array of them.

    Raises:
        CRNNError: empty, too large, truncated or not a decodable image.
    """
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise CRNNError(
                f"expected the encoded file as bytes or a 1-D uint8 array, got a {data.ndim}-D "
                f"{data.dtype} array (for decoded pixels use to_bgr_uint8)"
            )
        buf = np.ascontiguousarray(data)
    else:
        buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise CRNNError("cannot decode image (empty file)")
    dims = header_size(buf.data)
    if dims is not None:
        _check_pixels(*dims)
    problem = structure_problem(buf.data)
    if problem is not None:
        raise CRNNError(f"cannot decode image (truncated or corrupt: {problem})")
    is_jpeg = buf.size >= 3 and buf[0] == 0xFF and buf[1] == 0xD8 and buf[2] == 0xFF
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(err):  # OpenCV's own guard, for other formats
            raise CRNNError(
                f"image too large (over {MAX_PIXELS / 1e6:.0f} MP, from its header)"
            ) from None
        raise CRNNError(f"cannot decode image ({one_line(str(err), keep='last')})") from None
    if image is None:
        raise CRNNError("cannot decode image (not an image, or truncated/corrupt)")
    return to_bgr_uint8(image)


def to_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """Normalise a decoded image array to (H, W, 3) uint8 BGR.

    Accepts (H, W) or (H, W, 1) grey, (H, W, 2) grey+alpha, (H, W, 3) BGR and (H, W, 4)
    BGRA, as uint8, uint16 (scaled by ``>> 8``) or bool. Alpha is composited onto white.

    Returns:
        A C-contiguous (H, W, 3) uint8 array (the input itself when it already is one).

    Raises:
        CRNNError: empty, too large, or an unsupported shape or dtype (float images are
            refused: their scale, 0..1 or 0..255, is ambiguous).
    """
    if not isinstance(image, np.ndarray):
        raise CRNNError(f"expected a numpy image array, got {type(image).__name__}")
    if not image.dtype.isnative:  # e.g. big-endian 16-bit, as Pillow's "I;16B" gives
        image = image.astype(image.dtype.newbyteorder("="))
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise CRNNError(
            f"unsupported image shape {image.shape}: expected (H, W) or (H, W, 1|2|3|4)"
        )
    h, w, channels = image.shape
    if h == 0 or w == 0:
        raise CRNNError(f"the image is empty (shape {image.shape})")
    _check_pixels(w, h)

    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        raise CRNNError(
            f"unsupported pixel type {image.dtype}: expected uint8 or uint16 "
            "(convert float images to uint8 0..255 first)"
        )

    if channels in (2, 4):
        colour, alpha = image[:, :, :-1], image[:, :, -1:]
        image = _over_white(colour, alpha)
        channels -= 1
    if channels == 1:
        image = cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image)


def _over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite uint8 colour (H, W, c) with alpha (H, W, 1) onto white, rounding."""
    a = alpha.astype(np.uint32)
    mixed = colour.astype(np.uint32) * a + 255 * (255 - a)
    return ((mixed + 127) // 255).astype(np.uint8)


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise CRNNError(
            f"image too large ({width}x{height} = {width * height / 1e6:.0f} MP > "
            f"{MAX_PIXELS / 1e6:.0f} MP)"
        )
