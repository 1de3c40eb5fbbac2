"""Image dimensions from file headers, read before decoding (the decompression-bomb guard).

A few kilobytes of PNG, GIF, WebP or TIFF can claim an image of billions of pixels, and a
decoder allocates the whole canvas before it finds out the data is missing. Reading the
size from the header first lets :func:`crnn_onnx.inference.images.decode_image` refuse such a
file without spending the memory.

:func:`header_size` knows PNG, JPEG, BMP, GIF, WebP (lossy, lossless, extended), TIFF
(classic and BigTIFF, first page), the PNM family (PBM, PGM, PPM, PAM) and PFM. For the
formats it does not know (JPEG 2000, AVIF, Radiance HDR, Sun raster), OpenCV's own limit
applies: ``crnn_onnx`` sets ``OPENCV_IO_MAX_IMAGE_PIXELS`` to
:data:`crnn_onnx.inference.images.MAX_PIXELS` unless it is set already (see
``crnn_onnx/__init__.py``).

Parsers never raise: a malformed or truncated header gives ``None`` and the decoder, which
is the authority on validity, decides.

:func:`structure_problem` catches what a size check cannot: OpenCV's PNG reader allocates a
buffer of whatever size a chunk declares (docs/history.md), and a chunk cannot be longer than
what is left of the file.
"""

from __future__ import annotations

import re
import struct

__all__ = ["header_size", "structure_problem"]

Size = tuple[int, int]

_PNG = b"\x89PNG\r\n\x1a\n"
_PNM_MAGIC = re.compile(rb"P[1-6]")
_PNM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n?)*(\S+)")
_PAM_FIELD = re.compile(rb"^(WIDTH|HEIGHT)[ \t]+(\d+)", re.MULTILINE)


def header_size(data: bytes | memoryview) -> Size | None:
    """``(width, height)`` claimed by an encoded image's header, or ``None`` if unknown.

    Args:
        data: the file's bytes (the whole file: a TIFF's first directory may sit at its end).
    """
    view = memoryview(data).cast("B")
    head = bytes(view[:32])
    try:
        if head.startswith(_PNG):
            return _png(view)
        if head.startswith(b"\xff\xd8"):
            return _jpeg(view)
        if head.startswith(b"BM"):
            width, height = struct.unpack_from("<ii", view, 18)
            return abs(width), abs(height)
        if head.startswith((b"GIF87a", b"GIF89a")):
            return struct.unpack_from("<HH", view, 6)
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            return _webp(view)
        if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
            return _tiff(view)
        if head.startswith((b"P7", b"PF", b"Pf")) or _PNM_MAGIC.match(head):
            return _pnm(bytes(view[:4096]))
    except (struct.error, OverflowError, ValueError):  # cut short, or absurd offsets/numbers
        return None
    return None


def structure_problem(data: bytes | memoryview) -> str | None:
    """Why an encoded image's container cannot be intact, checked before decoding; or None.

    Only PNG is walked (every chunk's declared length must fit in what is left of the file);
    other formats give None.
    """
    view = memoryview(data).cast("B")
    if bytes(view[:8]) != _PNG:
        return None
    pos, size = 8, len(view)
    while pos + 8 <= size:
        length, kind = struct.unpack_from(">I4s", view, pos)
        if length > size - pos - 12:
            name = kind.decode("latin-1")
            return (f"PNG chunk {name!r} claims {length} bytes, the file has "
                    f"{max(0, size - pos - 12)} left")
        if kind == b"IEND":
            break
        pos += 12 + length
    return None


def _png(view: memoryview) -> Size | None:
    if bytes(view[12:16]) != b"IHDR":
        return None
    return struct.unpack_from(">II", view, 16)


def _jpeg(view: memoryview) -> Size | None:
    """Walk the marker segments to the first start-of-frame (within the first 1 MiB)."""
    end = min(len(view), 1 << 20)
    pos = 2
    while pos + 9 <= end:
        if view[pos] != 0xFF:
            return None
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", view, pos + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack_from(">HH", view, pos + 5)
            return width, height
        pos += 2 + length
    return None


def _webp(view: memoryview) -> Size | None:
    chunk = bytes(view[12:16])
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the 3-byte frame tag and start code
        width, height = struct.unpack_from("<HH", view, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature byte, then 14-bit (width-1), (height-1)
        (bits,) = struct.unpack_from("<I", view, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit (canvas width-1), (canvas height-1)
        w = int.from_bytes(bytes(view[24:27]), "little")
        h = int.from_bytes(bytes(view[27:30]), "little")
        return w + 1, h + 1
    return None


def _tiff(view: memoryview) -> Size | None:
    """ImageWidth (256) and ImageLength (257) of the first directory."""
    order = "<" if bytes(view[:2]) == b"II" else ">"
    big = view[2] == 0x2B or view[3] == 0x2B  # BigTIFF: 8-byte offsets and counts
    if big:
        (offset,) = struct.unpack_from(order + "Q", view, 8)
        (count,) = struct.unpack_from(order + "Q", view, offset)
        entry, first, value_at = 20, offset + 8, 12
    else:
        (offset,) = struct.unpack_from(order + "I", view, 4)
        (count,) = struct.unpack_from(order + "H", view, offset)
        entry, first, value_at = 12, offset + 2, 8
    found: dict[int, int] = {}
    for i in range(min(count, 4096)):
        at = first + i * entry
        tag, kind = struct.unpack_from(order + "HH", view, at)
        if tag in (256, 257):
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                return None
            (found[tag],) = struct.unpack_from(order + fmt, view, at + value_at)
            if len(found) == 2:
                return found[256], found[257]
    return None


def _pnm(head: bytes) -> Size | None:
    if head.startswith(b"P7"):  # PAM: "WIDTH n" and "HEIGHT n" lines
        fields = {key: int(value) for key, value in _PAM_FIELD.findall(head)}
        if b"WIDTH" in fields and b"HEIGHT" in fields:
            return fields[b"WIDTH"], fields[b"HEIGHT"]
        return None
    tokens = []
    pos = 2
    for _ in range(2):  # width and height follow the magic, with comments allowed between
        match = _PNM_TOKEN.match(head, pos)
        if match is None or not match.group(1).isdigit():
            return None
        tokens.append(int(match.group(1)))
        pos = match.end()
    return tokens[0], tokens[1]
