"""Labelled sets: LMDB datasets as the scene-text community ships them, beside labels.tsv."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crnn_onnx.cli import app
from crnn_onnx.errors import CRNNError
from crnn_onnx.evaluation.datasets import read_labelled_set, read_lmdb

lmdb = pytest.importorskip("lmdb", reason="needs the lmdb extra")


def _crop(word: str) -> bytes:
    crop = np.full((32, 20 + 18 * len(word), 3), 225, np.uint8)
    cv2.putText(crop, word, (3, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (30, 30, 30), 2)
    ok, buf = cv2.imencode(".png", crop)
    assert ok
    return buf.tobytes()


def _write_lmdb(folder: Path, entries: dict[bytes, bytes]) -> Path:
    env = lmdb.open(str(folder), map_size=2**24)
    with env.begin(write=True) as txn:
        for key, value in entries.items():
            txn.put(key, value)
    env.close()
    return folder


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Four entries: two good crops, one corrupt image, one image missing."""
    return _write_lmdb(tmp_path / "set", {
        b"num-samples": b"4",
        b"image-000000001": _crop("gate"), b"label-000000001": b"GATE",
        b"image-000000002": b"\x89PNG\r\n\x1a\n not really", b"label-000000002": b"broken",
        b"label-000000003": b"gone",
        b"image-000000004": _crop("42"), b"label-000000004": b"42",
    })


def test_lmdb_entries_are_read_in_order_with_their_labels(dataset: Path) -> None:
    items = read_lmdb(dataset)
    assert [i.text for i in items] == ["GATE", "broken", "gone", "42"]
    assert [i.path.name for i in items] == [f"image-00000000{n}" for n in range(1, 5)]
    assert items[0].data is not None and items[0].data.startswith(b"\x89PNG")
    assert items[2].data is None and items[2].error == "no image stored"
    assert read_labelled_set(dataset / "data.mdb") == items  # the file names the set too


def test_lmdb_eval_reports_the_broken_entries_and_scores_the_rest(
        dataset: Path, exported_model: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(dataset), "--model", str(exported_model),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    assert report["total"] == 4 and report["failed"] == 2
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "image-000000002" in warnings[0] and "cannot decode image" in warnings[0]
    assert "image-000000003" in warnings[1] and "no image stored" in warnings[1]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({b"label-000000001": b"x"}, "no valid 'num-samples'"),
        ({b"num-samples": b"2", b"image-000000001": b"x", b"label-000000001": b"a"},
         "label-000000002 is missing"),
        ({b"num-samples": b"0"}, "holds no labelled images"),
    ],
)
def test_malformed_lmdb_is_one_clear_error(tmp_path: Path, entries: dict[bytes, bytes],
                                           message: str) -> None:
    folder = _write_lmdb(tmp_path / "bad", entries)
    with pytest.raises(CRNNError, match=message):
        read_lmdb(folder)


def test_a_folder_holding_labels_tsv_reads_as_that_file(tmp_path: Path) -> None:
    (tmp_path / "labels.tsv").write_text("a.png\tcat\nb.png\tdog\n", encoding="utf-8")
    assert read_labelled_set(tmp_path) == read_labelled_set(tmp_path / "labels.tsv")
    assert [item.path for item in read_labelled_set(tmp_path)] == [tmp_path / "a.png",
                                                                   tmp_path / "b.png"]


def test_a_folder_with_neither_labels_nor_lmdb_names_both(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match=r"neither labels\.tsv nor an LMDB dataset"):
        read_labelled_set(tmp_path)


def test_a_folder_that_is_no_lmdb_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match="cannot open LMDB dataset"):
        read_lmdb(tmp_path / "missing")


def test_lmdb_without_the_extra_names_it(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lmdb", None)
    with pytest.raises(CRNNError, match=r"needs lmdb: pip install 'crnn-onnx\[lmdb\]'"):
        read_lmdb(dataset)
