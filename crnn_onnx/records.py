"""Writing prediction records: text, JSON, JSON Lines and CSV, to a stream or atomically to a file.

Every format carries the same record, ``path``, ``text``, ``confidence`` and ``error``
(``error`` is null on success; ``text`` and ``confidence`` are null on failure):

* ``text``: ``path<TAB>text<TAB>confidence`` per line; a failure is ``path<TAB>error: reason``;
* ``json``: one JSON array of record objects;
* ``jsonl``: one record object per line;
* ``csv``: a ``path,text,confidence,error`` header, then one row per record (nulls empty).

Writers stream: each record is written as soon as it is given, so a long run can be piped.

Output is always valid UTF-8, whatever the file names. A name that is not valid UTF-8
(possible on Linux; Python hands it over with lone surrogates, PEP 383) is written in JSON
as ``\\udcXX`` escapes, which ``json.loads`` + ``os.fsencode`` turn back into the exact name,
and in text and CSV with its undecodable bytes as ``\\xNN``. In the text format a tab,
newline or carriage return inside a field is written as ``\\t``, ``\\n``, ``\\r``, so that
every record stays one line of tab-separated fields.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal, TextIO

from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.predictor import Prediction

__all__ = ["FORMATS", "OutputFormat", "RecordWriter", "atomic_output", "output_record"]

OutputFormat = Literal["text", "json", "jsonl", "csv"]
FORMATS: tuple[str, ...] = ("text", "json", "jsonl", "csv")
_FIELDS = ("path", "text", "confidence", "error")
#: Confidences are written with this many decimals.
_DECIMALS = 6


class RecordWriter:
    """Write :class:`~crnn_onnx.inference.predictor.Prediction` records to a text stream in one
    format.

    Args:
        stream: where to write (stdout, or a file opened with ``newline=""``).
        fmt: ``text``, ``json``, ``jsonl`` or ``csv``.

    Call :meth:`close` once at the end (it finishes the JSON array; the stream stays open).
    """

    def __init__(self, stream: TextIO, fmt: OutputFormat) -> None:
        if fmt not in FORMATS:
            raise CRNNError(f"unknown output format {fmt!r} (known: {', '.join(FORMATS)})")
        self._stream = stream
        self._fmt = fmt
        self._count = 0
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            with _write_errors():
                self._csv.writerow(_FIELDS)

    def write(self, prediction: Prediction) -> None:
        """Write one record.

        Raises:
            CRNNError: the stream cannot be written (disk full, I/O error); a broken pipe
                (the reader went away) propagates as :class:`BrokenPipeError`.
        """
        record = output_record(prediction)
        with _write_errors():
            if self._fmt == "jsonl":
                self._stream.write(_json(record) + "\n")
            elif self._fmt == "json":
                self._stream.write(("[\n  " if self._count == 0 else ",\n  ") + _json(record))
            elif self._csv is not None:
                self._csv.writerow(
                    ["" if record[key] is None else _printable(record[key]) for key in _FIELDS]
                )
            elif prediction.error is not None:
                self._stream.write(
                    f"{_text_field(record['path'])}\terror: {_text_field(prediction.error)}\n"
                )
            else:
                self._stream.write(f"{_text_field(record['path'])}\t{_text_field(record['text'])}"
                                   f"\t{record['confidence']:.4f}\n")
            self._count += 1
            self._stream.flush()

    def close(self) -> None:
        """Finish the output (closes the JSON array)."""
        with _write_errors():
            if self._fmt == "json":
                self._stream.write("[]\n" if self._count == 0 else "\n]\n")
            self._stream.flush()


@contextmanager
def _write_errors() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise  # the reader has gone (`| head`): the CLI exits quietly
    except OSError as err:
        raise CRNNError(f"cannot write the results: {err.strerror or err}") from None


def _json(record: dict[str, Any]) -> str:
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: \u escapes keep the record exact, and ASCII
        line = json.dumps(record)
    return line


def _printable(value: Any) -> Any:
    """``value`` unchanged, unless it is a string that is not valid UTF-8 (lone surrogates):
    then its undecodable bytes as ``\\xNN`` (other lone surrogates as ``\\uXXXX``)."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(map(_escape_surrogate, value))
    return value


def _escape_surrogate(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    return ch


_TEXT_ESCAPES = str.maketrans({"\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text_field(value: str) -> str:
    """A field of the text format: printable, and without the tab and line separators."""
    return _printable(value).translate(_TEXT_ESCAPES)


def output_record(prediction: Prediction) -> dict[str, Any]:
    """The record every format writes: :meth:`Prediction.to_record` with the confidence
    rounded to the written precision (also used for Parquet by :mod:`crnn_onnx.scale.ray_bulk`)."""
    record = prediction.to_record()
    if record["confidence"] is not None:
        record["confidence"] = round(record["confidence"], _DECIMALS)
    return record


@contextmanager
def atomic_output(path: str | Path | None) -> Iterator[TextIO]:
    """A text stream for the results: stdout, or a file that appears only when complete.

    With a path, the results go to a temporary file beside it, which replaces ``path`` (an
    atomic rename) when the block ends without an exception; on an exception the
    temporary file is removed and ``path`` is left as it was. A symbolic link is followed
    (the file it points to is replaced, the link kept). A path that exists but is not a
    regular file (``/dev/stdout``, a named pipe) is written directly: it cannot be
    replaced, and must not be.

    Raises:
        CRNNError: the folder does not exist or is not writable, ``path`` cannot be
            replaced (e.g. it is a directory), or writing fails (disk full).
    """
    if path is None:
        yield sys.stdout
        return
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    if target.exists() and not target.is_file() and not target.is_dir():
        yield from _direct_output(target)
        return
    folder = target.parent
    if not folder.is_dir():
        raise CRNNError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist")
    if target.is_dir():
        raise CRNNError(f"cannot write {str(target)!r}: it is a directory")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise CRNNError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
            try:
                stream.flush()
                os.fsync(stream.fileno())
            except OSError as err:  # disk full or I/O error surfacing at the end
                raise CRNNError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600 files
        try:
            os.replace(tmp_name, target)
        except OSError as err:
            raise CRNNError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp_name)
        raise


def _direct_output(target: Path) -> Iterator[TextIO]:
    try:
        stream = open(target, "w", encoding="utf-8", newline="")
    except OSError as err:
        raise CRNNError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
    with stream:
        yield stream


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
