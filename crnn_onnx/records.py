"""Writing prediction records to a text stream: text, JSON, JSON Lines and CSV.

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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, TextIO, get_args

from crnn_onnx.errors import CRNNError
from crnn_onnx.results import CHAR_CONFIDENCES, RECORD_FIELDS, Prediction, printable

__all__ = ["FORMATS", "OutputFormat", "RecordWriter"]

OutputFormat = Literal["text", "json", "jsonl", "csv"]
FORMATS: tuple[str, ...] = get_args(OutputFormat)


class RecordWriter:
    """Write :class:`~crnn_onnx.results.Prediction` records to a text stream in one
    format.

    Args:
        stream: where to write (stdout, or a file opened with ``newline=""``).
        fmt: ``text``, ``json``, ``jsonl`` or ``csv``.
        char_confidences: add the per-character probabilities: a ``char_confidences`` list
            in JSON, a column of space-separated numbers in CSV (the text format has none).

    Call :meth:`close` once at the end (it finishes the JSON array; the stream stays open).
    """

    def __init__(self, stream: TextIO, fmt: OutputFormat, *,
                 char_confidences: bool = False) -> None:
        if fmt not in FORMATS:
            raise CRNNError(f"unknown output format {fmt!r} (known: {', '.join(FORMATS)})")
        self._stream = stream
        self._fmt = fmt
        self._count = 0
        self._char_confidences = char_confidences
        self._fields = (*RECORD_FIELDS, CHAR_CONFIDENCES) if char_confidences else RECORD_FIELDS
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            with _write_errors():
                self._csv.writerow(self._fields)

    def write(self, prediction: Prediction) -> None:
        """Write one record.

        Raises:
            CRNNError: the stream cannot be written (disk full, I/O error); a broken pipe
                (the reader went away) propagates as :class:`BrokenPipeError`.
        """
        record = prediction.record(char_confidences=self._char_confidences)
        with _write_errors():
            if self._fmt == "jsonl":
                self._stream.write(_json(record) + "\n")
            elif self._fmt == "json":
                self._stream.write(("[\n  " if self._count == 0 else ",\n  ") + _json(record))
            elif self._csv is not None:
                self._csv.writerow([_csv_field(record[key]) for key in self._fields])
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


_TEXT_ESCAPES = str.maketrans({"\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text_field(value: str) -> str:
    """A field of the text format: printable, and without the tab and line separators."""
    return printable(value).translate(_TEXT_ESCAPES)


def _csv_field(value: Any) -> Any:
    """A CSV cell: nulls empty, strings printable, lists as space-separated values."""
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(map(str, value))
    return printable(value) if isinstance(value, str) else value
