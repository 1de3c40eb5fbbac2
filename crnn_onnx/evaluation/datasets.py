"""Labelled sets to evaluate on: a ``labels.tsv`` beside its images, or an LMDB dataset.

* ``labels.tsv``: ``relative/path<TAB>text`` lines, paths relative to the file's folder (what
  ``crnn-onnx synth`` writes); blank lines and ``#`` comments are skipped. Its folder may be
  named instead of the file.
* LMDB, the format of deep-text-recognition-benchmark and PARSeq: keys ``num-samples``,
  ``image-%09d`` (encoded image bytes) and ``label-%09d`` (UTF-8 text), counting from 1;
  needs the ``lmdb`` package (the ``lmdb`` extra). An entry whose image is missing is kept,
  with its error, so that it counts as unreadable rather than vanishing from the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.extras import require

__all__ = ["LabelledImage", "read_labelled_set", "read_labels", "read_lmdb"]


@dataclass(frozen=True)
class LabelledImage:
    """One labelled image.

    Attributes:
        path: where it is: a file, or ``DATASET/image-000000001`` for an LMDB entry.
        text: the ground truth as written in the set.
        data: the encoded image for an LMDB entry; ``None`` for a file (read from ``path``).
        error: why the entry has no image (a broken LMDB entry), else ``None``.
    """

    path: Path
    text: str
    data: bytes | None = None
    error: str | None = None


def read_labelled_set(path: str | Path) -> list[LabelledImage]:
    """A ``labels.tsv`` file (or the folder holding it), or an LMDB dataset (its folder or
    its ``data.mdb``).

    Raises:
        CRNNError: a folder holds neither; otherwise as :func:`read_labels` or
            :func:`read_lmdb`.
    """
    path = Path(path)
    if path.is_dir() and (path / "labels.tsv").is_file():
        return read_labels(path / "labels.tsv")
    if path.is_dir() and not (path / "data.mdb").is_file():
        raise CRNNError(f"{str(path)!r} holds neither labels.tsv nor an LMDB dataset (data.mdb)")
    if path.is_dir() or path.suffix == ".mdb":
        return read_lmdb(path)
    return read_labels(path)


def read_labels(path: str | Path) -> list[LabelledImage]:
    """Read a ``relative/path<TAB>text`` TSV.

    Raises:
        CRNNError: the file is unreadable, empty, or a line has no tab (line number given).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise CRNNError(f"cannot read labels {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise CRNNError(f"labels {str(path)!r} is not UTF-8 text") from None
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        rel, sep, text = line.partition("\t")
        if not sep or not rel:
            raise CRNNError(f"{path}:{number}: expected 'relative/path<TAB>text'")
        items.append(LabelledImage(path=path.parent / rel, text=text))
    if not items:
        raise CRNNError(f"labels {str(path)!r} holds no labelled images")
    return items


def read_lmdb(path: str | Path) -> list[LabelledImage]:
    """Read every entry of an LMDB dataset into memory (word crops are small).

    Raises:
        CRNNError: lmdb missing; not an LMDB environment; no ``num-samples`` key or a
            label that is missing or not UTF-8.
    """
    lmdb = require("lmdb", extra="lmdb", purpose="evaluating an LMDB dataset")
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    try:
        env = lmdb.open(str(folder), readonly=True, lock=False, readahead=False,
                        meminit=False, max_readers=1)
    except lmdb.Error as err:
        raise CRNNError(f"cannot open LMDB dataset {str(folder)!r}: {one_line(err)}") from None
    items = []
    try:
        with env.begin(write=False) as txn:
            raw = txn.get(b"num-samples")
            try:
                count = int(raw)
            except (TypeError, ValueError):
                raise CRNNError(f"LMDB dataset {str(folder)!r} has no valid 'num-samples' "
                                "key") from None
            for index in range(1, count + 1):
                label_key, image_key = b"label-%09d" % index, b"image-%09d" % index
                label = txn.get(label_key)
                if label is None:
                    raise CRNNError(f"LMDB dataset {str(folder)!r}: {label_key.decode()} "
                                    "is missing")
                try:
                    text = bytes(label).decode("utf-8")
                except UnicodeDecodeError:
                    raise CRNNError(f"LMDB dataset {str(folder)!r}: {label_key.decode()} is "
                                    "not UTF-8") from None
                data = txn.get(image_key)
                where = folder / image_key.decode()
                if data is None:
                    items.append(LabelledImage(where, text, error="no image stored"))
                else:
                    items.append(LabelledImage(where, text, data=bytes(data)))
    finally:
        env.close()
    if not items:
        raise CRNNError(f"LMDB dataset {str(folder)!r} holds no labelled images")
    return items
