"""The toolkit's one exception type, and how foreign errors become one-line messages.

Library code raises :class:`CRNNError` for every expected failure (bad input, missing file,
unloadable model). The CLI turns it into one line on stderr and exit code 1 (2 for a
:class:`UsageError`); nothing else in the package calls ``sys.exit``. :func:`one_line`
squeezes the text of an error raised by a dependency (onnxruntime, OpenCV, Ray, Triton's
client) into that line.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["CRNNError", "UsageError", "one_line"]


class CRNNError(Exception):
    """An expected, user-facing failure; ``str(err)`` is the one-line message."""


class UsageError(CRNNError):
    """Arguments that cannot go together, or values the model cannot use (an allowlist of
    characters outside its charset): the caller's mistake, which the CLI exits 2 for."""


def one_line(err: BaseException | str, *, keep: Literal["all", "first", "last"] = "all",
             limit: int = 300) -> str:
    """``err``'s text as one line of at most ``limit`` characters.

    Args:
        err: an exception or a captured message.
        keep: ``"all"`` joins every line; ``"first"`` keeps the first non-empty line (the
            summary of a client library's multi-line report); ``"last"`` keeps the last one
            (the final complaint of a C library's log).
        limit: longer text is cut and ends with ``...``.

    Returns:
        The line; the exception's type name (or ``"unknown error"`` for a string) when there
        is no text at all.
    """
    lines = [" ".join(line.split()) for line in str(err).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(err).__name__ if isinstance(err, BaseException) else "unknown error"
    text = {"all": " ".join(lines), "first": lines[0], "last": lines[-1]}[keep]
    return text if len(text) <= limit else text[: limit - 3] + "..."
