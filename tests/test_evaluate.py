"""Scoring and labels-file parsing behind `crnn-onnx eval`."""

from __future__ import annotations

from pathlib import Path

import pytest

from crnn_onnx.config import DEFAULT_CHARSET
from crnn_onnx.errors import CRNNError
from crnn_onnx.evaluation.datasets import read_labels
from crnn_onnx.evaluation.evaluate import score


def test_read_labels_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    labels = tmp_path / "sub" / "labels.tsv"
    labels.write_text("# comment\na.png\tHello\n\nimgs/b.png\tx y\n", encoding="utf-8")
    items = read_labels(labels)
    assert [(i.path, i.text) for i in items] == [
        (tmp_path / "sub" / "a.png", "Hello"),
        (tmp_path / "sub" / "imgs" / "b.png", "x y"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a.png Hello\n", "labels.tsv:1: expected"),  # space instead of a tab
        ("ok.png\tok\n\tmissing-path\n", "labels.tsv:2: expected"),
        ("# only a comment\n", "holds no labelled images"),
    ],
)
def test_read_labels_rejects_malformed_files(tmp_path: Path, content: str, message: str) -> None:
    labels = tmp_path / "labels.tsv"
    labels.write_text(content, encoding="utf-8")
    with pytest.raises(CRNNError, match=message):
        read_labels(labels)


def test_read_labels_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match="cannot read labels") as info:
        read_labels(tmp_path / "nope.tsv")
    assert "\n" not in str(info.value)


def test_score_normalises_truth_to_the_charset_case_insensitively() -> None:
    report = score(["Hello!", "WORLD", "abc"], ["hello", "world", "abd"], DEFAULT_CHARSET)
    assert report.total == 3
    assert report.correct == 2
    assert report.word_accuracy == pytest.approx(2 / 3)
    # one substitution over 5 + 5 + 3 characters
    assert report.cer == pytest.approx(1 / 13)
    assert report.confusions == [("c", "d", 1)]
    assert report.mistakes == [("2", "abc", "abd")]


def test_score_counts_unreadable_images_as_wrong() -> None:
    report = score(["abc", "de"], [None, "de"], DEFAULT_CHARSET, ["x.png", "y.png"])
    assert report.failed == 1
    assert report.correct == 1
    assert report.cer == pytest.approx(3 / 5)


def test_score_reports_accuracy_by_length_and_insertions_deletions() -> None:
    report = score(["ab", "cd", "efgh"], ["ab", "c", "efgxh"], DEFAULT_CHARSET)
    assert report.by_length == {2: (2, 0.5), 4: (1, 0.0)}
    assert sorted(report.confusions) == [("", "x", 1), ("d", "", 1)]
    as_dict = report.as_dict()
    assert as_dict["by_length"] == {
        "2": {"images": 2, "word_accuracy": 0.5},
        "4": {"images": 1, "word_accuracy": 0.0},
    }
