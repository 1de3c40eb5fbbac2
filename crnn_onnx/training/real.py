"""Real labelled word crops for fine-tuning: folders of images with a ``labels.tsv``.

A folder holds images and ``labels.tsv`` lines ``file<TAB>label``, the label as published
(case, punctuation and spaces kept). :func:`read_real_folder` maps each label to the model's
charset the way evaluation does (lower case, punctuation and spaces dropped) and drops the
crops whose label cannot be mapped: letters outside the charset (``café``), nothing left
(``###``), or longer than the model can emit. :func:`validation_split` carves a validation
split out by blocks of consecutive crops, which in these datasets come from the same photo.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crnn_onnx.config import DEFAULT_CHARSET
from crnn_onnx.errors import CRNNError

__all__ = ["RealCrop", "map_label", "read_real_folder", "validation_split"]

_IGNORED = frozenset(string.punctuation + " ´`")
_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class RealCrop:
    """One real crop: its image ``path``, the mapped ``label``, the published ``raw`` label,
    and the ``folder`` it came from."""

    path: Path
    label: str
    raw: str
    folder: str


def map_label(raw: str, charset: str = DEFAULT_CHARSET) -> str | None:
    """The label on the model's charset, or ``None`` when it cannot be mapped.

    Letters are lower-cased; ASCII punctuation and spaces are dropped (evaluation drops them
    too); any other character outside the charset makes the label unmappable.
    """
    allowed = set(charset)
    out = []
    for ch in raw.lower():
        if ch in allowed:
            out.append(ch)
        elif ch not in _IGNORED:
            return None
    return "".join(out) or None


def _natural_key(name: str) -> tuple[object, ...]:
    return tuple(int(part) if part.isdigit() else part for part in _NUMBER.split(name))


def read_real_folder(folder: str | Path, charset: str = DEFAULT_CHARSET, max_len: int = 24
                     ) -> tuple[list[RealCrop], Counter[str]]:
    """Read one folder's ``labels.tsv``, in the files' natural order (``word_2`` before
    ``word_10``).

    Args:
        folder: a folder with ``labels.tsv`` and the images it names.
        charset: the model's characters.
        max_len: longest label kept (a width-100 model emits 26 frames, and CTC needs a
            frame between repeated letters).

    Returns:
        The usable crops, and how many lines were dropped for each reason (``unmappable``,
        ``too long``, ``missing file``).

    Raises:
        CRNNError: ``labels.tsv`` is missing, unreadable, or a line has no tab.
    """
    folder = Path(folder)
    labels = folder / "labels.tsv"
    try:
        lines = labels.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise CRNNError(f"cannot read {str(labels)!r}: {err.strerror or err}") from None
    crops: list[RealCrop] = []
    dropped: Counter[str] = Counter()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        name, sep, raw = line.partition("\t")
        if not sep:
            raise CRNNError(f"{labels}:{number}: expected 'file<TAB>label'")
        label = map_label(raw, charset)
        if label is None:
            dropped["unmappable"] += 1
        elif len(label) > max_len:
            dropped["too long"] += 1
        elif not (folder / name).is_file():
            dropped["missing file"] += 1
        else:
            crops.append(RealCrop(folder / name, label, raw, folder.name))
    crops.sort(key=lambda crop: _natural_key(crop.path.name))
    return crops, dropped


def validation_split(crops: Sequence[RealCrop], every: int = 10, block: int = 40
                     ) -> tuple[list[RealCrop], list[RealCrop]]:
    """(train, validation): of each folder's crops in order, every ``every``-th block of
    consecutive crops is validation (a tenth by default), so that crops cut from one photo
    mostly stay on one side. Blocks hold ``block`` crops, fewer in a small folder (so that it
    has at least three validation blocks), never fewer than 4."""
    if every < 2 or block < 1:
        raise CRNNError(f"every must be >= 2 and block >= 1, got {every} and {block}")
    sizes = Counter(crop.folder for crop in crops)
    blocks = {folder: max(4, min(block, n // (3 * every))) for folder, n in sizes.items()}
    train: list[RealCrop] = []
    val: list[RealCrop] = []
    position: Counter[str] = Counter()
    for crop in crops:
        i = position[crop.folder]
        position[crop.folder] += 1
        (val if (i // blocks[crop.folder]) % every == every - 1 else train).append(crop)
    return train, val
