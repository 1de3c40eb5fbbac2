"""What the toolkit answers for one input: a :class:`Prediction`, and the record every output
format (text, JSON, CSV, Parquet) writes for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CHAR_CONFIDENCES", "CONFIDENCE_DECIMALS", "RECORD_FIELDS", "Prediction", "printable"]

#: The fields of a record, in the order every format writes them.
RECORD_FIELDS: tuple[str, ...] = ("path", "text", "confidence", "error")
#: The optional field with one probability per character read.
CHAR_CONFIDENCES = "char_confidences"
#: Confidences are written with this many decimals.
CONFIDENCE_DECIMALS = 6


@dataclass(frozen=True)
class Prediction:
    """The result for one input: either text and confidence, or an error.

    Attributes:
        path: the input's path, or ``None`` for an array input.
        text: the recognised text; ``None`` when the input failed.
        confidence: in [0, 1] (see :func:`~crnn_onnx.inference.decoder.ctc_greedy_decode`);
            ``None`` when the input failed.
        char_probs: per-character probabilities, one per character of ``text``.
        error: ``None`` on success; otherwise a one-line reason.
    """

    path: str | None
    text: str | None = None
    confidence: float | None = None
    char_probs: tuple[float, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the input was recognised (no error)."""
        return self.error is None

    def record(self, *, char_confidences: bool = False) -> dict[str, Any]:
        """The output record: :data:`RECORD_FIELDS`, the confidence rounded to
        :data:`CONFIDENCE_DECIMALS` (JSON-ready; the path as given, see :func:`printable`);
        with ``char_confidences`` also :data:`CHAR_CONFIDENCES`, one rounded probability per
        character read (``None`` when the input failed)."""
        confidence = (round(self.confidence, CONFIDENCE_DECIMALS)
                      if self.confidence is not None else None)
        record: dict[str, Any] = {"path": self.path, "text": self.text,
                                  "confidence": confidence, "error": self.error}
        if char_confidences:
            record[CHAR_CONFIDENCES] = (None if not self.ok else
                                        [round(p, CONFIDENCE_DECIMALS) for p in self.char_probs])
        return record


def printable(value: str) -> str:
    """``value`` as valid UTF-8 text: unchanged, unless it holds lone surrogates (a file name
    that is not UTF-8, handed over by Python with PEP 383 escapes); then each undecodable
    byte becomes ``\\xNN`` and any other lone surrogate ``\\uXXXX``."""
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
