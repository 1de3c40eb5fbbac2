"""Foreign errors become the one-line messages the CLI prints."""

from __future__ import annotations

import pytest

from crnn_onnx.errors import one_line

REPORT = "  first summary\n\n  detail   two\nfinal complaint  \n"


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        ("all", "first summary detail two final complaint"),
        ("first", "first summary"),
        ("last", "final complaint"),
    ],
)
def test_one_line_keeps_the_asked_for_lines(keep: str, expected: str) -> None:
    assert one_line(RuntimeError(REPORT), keep=keep) == expected  # type: ignore[arg-type]
    assert one_line(REPORT, keep=keep) == expected  # type: ignore[arg-type]


def test_one_line_cuts_long_text_to_the_limit() -> None:
    text = one_line("x" * 1000, limit=50)
    assert len(text) == 50 and text.endswith("...")


def test_one_line_names_an_error_without_text() -> None:
    assert one_line(TimeoutError()) == "TimeoutError"
    assert one_line("  \n ") == "unknown error"
