"""Atomic output: a file appears complete or not at all, and a failure keeps the old one."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from crnn_onnx.atomic import atomic_path
from crnn_onnx.errors import CRNNError


def test_file_appears_only_when_the_block_completes(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "model.onnx"
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"half")
        assert not out.exists()  # nothing at the destination while writing
        assert tmp.parent == out.parent and tmp.name.startswith(".model.onnx.")
        tmp.write_bytes(b"whole")
    assert out.read_bytes() == b"whole"
    assert os.listdir(out.parent) == ["model.onnx"]


def test_failure_keeps_the_previous_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "labels.tsv"
    out.write_text("previous")
    with pytest.raises(RuntimeError, match="verification failed"):
        with atomic_path(out) as tmp:
            tmp.write_text("new but unverified")
            raise RuntimeError("verification failed")
    assert out.read_text() == "previous"
    assert os.listdir(tmp_path) == ["labels.tsv"]


def test_disk_full_while_writing_is_one_error_naming_the_file(tmp_path: Path) -> None:
    out = tmp_path / "best.pth"
    with pytest.raises(CRNNError) as err:
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"x")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(err.value) == f"cannot write {str(out)!r}: No space left on device"
    assert os.listdir(tmp_path) == []


def test_directory_and_missing_folder_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match=r"it is a directory; give a file name$"):
        with atomic_path(tmp_path):
            pytest.fail("the block must not run")
    with pytest.raises(CRNNError, match=r"it is a directory; give a file name ending \.onnx$"):
        with atomic_path(tmp_path, suffix=".onnx"):
            pytest.fail("the block must not run")
    missing = tmp_path / "nope" / "out.txt"
    with pytest.raises(CRNNError, match="does not exist"):
        with atomic_path(missing, make_parents=False):
            pytest.fail("the block must not run")
    assert not missing.parent.exists()
