"""Labelled crops for training, in memory: read, fitted to the charset, split, drawn.

Sets are those evaluation reads (:func:`crnn_onnx.evaluation.datasets.read_labelled_set`: a
``labels.tsv`` or its folder, an LMDB folder), and folders of pre-rendered shards
(``scripts/render_pool.py``: ``.npz`` files of fitted ``images`` and their ``labels``), for
replaying large rendered pools. Images are decoded once and kept as uint8 BGR
crops at their own size; :meth:`CropSet.draw` augments a random few afresh each time and fits
them to the model's canvas at the batch's width. :func:`holdout_split` carves a deterministic
validation split out of the data by groups (a receipt, a photo), so crops of one source never
sit on both sides.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crnn_onnx.config import CRNNConfig, WidthPolicy
from crnn_onnx.errors import CRNNError
from crnn_onnx.evaluation.datasets import LabelledImage, read_labelled_set
from crnn_onnx.inference.images import decode_image, read_image
from crnn_onnx.training.augment import augment_crop
from crnn_onnx.training.canvas import resize_and_pad
from crnn_onnx.training.labels import LabelFit, OutsidePolicy, fit_labels
from crnn_onnx.training.widths import crop_widths

__all__ = ["CropSet", "ReadReport", "holdout_split", "read_crops", "read_groups"]

_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class ReadReport:
    """What reading some sets kept and left out.

    Attributes:
        labelled: lines (or LMDB entries) read.
        kept: crops kept.
        unreadable: images that could not be decoded (left out).
        too_long: labels longer than the model can emit at its width (left out).
        fit: the charset fitting (characters outside it, crops skipped or emptied).
    """

    labelled: int
    kept: int
    unreadable: int
    too_long: int
    fit: LabelFit


@dataclass
class CropSet:
    """Decoded crops and their fitted labels.

    Attributes:
        images: (H, W, 3) uint8 BGR crops at their own size.
        labels: the labels, on the charset.
        names: where each crop came from (a path, or ``DATASET/image-%09d``).
    """

    images: list[np.ndarray]
    labels: list[str]
    names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int]) -> CropSet:
        return CropSet([self.images[i] for i in indices], [self.labels[i] for i in indices],
                       [self.names[i] for i in indices])

    def __add__(self, other: CropSet) -> CropSet:
        return CropSet(self.images + other.images, self.labels + other.labels,
                       self.names + other.names)

    def fitted(self, config: CRNNConfig, policy: WidthPolicy = "fixed"
               ) -> list[tuple[np.ndarray, list[str]]]:
        """Every crop on the model canvas, unaugmented, at its input width under ``policy``
        (as inference fits it): one ((n, 32, W, 3) uint8 BGR, labels) pair per width W."""
        widths = crop_widths(self.images, config, policy)
        out = []
        for width in sorted(set(widths)):
            picks = [i for i, w in enumerate(widths) if w == width]
            out.append((np.stack([resize_and_pad(self.images[i], config, width)
                                  for i in picks]), [self.labels[i] for i in picks]))
        return out

    def draw(self, n: int, rng: random.Random, config: CRNNConfig, *, augment: float,
             pool: Sequence[int] | None = None, width: int | None = None
             ) -> tuple[np.ndarray, list[str]]:
        """``n`` crops drawn at random (with replacement) from ``pool`` (default: all), each
        augmented with probability ``augment``, fitted to ``width`` (default: the config's):
        (n, 32, width, 3) uint8 BGR and their labels."""
        width = config.width if width is None else width
        pool = range(len(self.labels)) if pool is None else pool
        picks = [pool[rng.randrange(len(pool))] for _ in range(n)]
        images = [augment_crop(self.images[i], rng) if rng.random() < augment
                  else self.images[i] for i in picks]
        if not images:
            return np.empty((0, config.height, width, 3), np.uint8), []
        return (np.stack([resize_and_pad(image, config, width) for image in images]),
                [self.labels[i] for i in picks])


def _decode(item: LabelledImage) -> np.ndarray | None:
    if item.error is not None:
        return None
    try:
        return decode_image(item.data) if item.data is not None else read_image(item.path)
    except CRNNError:
        return None


def read_crops(sources: Sequence[str | Path], charset: Sequence[str], policy: OutsidePolicy,
               *, max_label: int) -> tuple[CropSet, ReadReport]:
    """Read and decode labelled sets, fitting their labels to ``charset``.

    Args:
        sources: ``labels.tsv`` files, folders holding one, LMDB folders, or folders of
            ``.npz`` shards.
        charset: the model's characters.
        policy: what to do with characters outside the charset (see
            :mod:`crnn_onnx.training.labels`).
        max_label: longest label kept (the model emits ``sequence_length(width)`` frames and
            CTC needs a blank between repeated letters).

    Raises:
        CRNNError: a source is missing or unreadable, or the policy refuses a label.
    """
    items: list[LabelledImage] = []
    decoded: dict[int, np.ndarray] = {}  # item index -> already decoded image (shards)
    for source in sources:
        path = Path(source)
        tsv = path.is_dir() and (path / "labels.tsv").is_file()
        shards = sorted(path.glob("*.npz")) if path.is_dir() and not tsv else []
        if shards:
            for shard in shards:
                with np.load(shard) as content:
                    for i, (image, label) in enumerate(
                            zip(content["images"], content["labels"], strict=True)):
                        decoded[len(items)] = image
                        items.append(LabelledImage(shard / str(i), str(label)))
            continue
        if not path.exists():
            raise CRNNError(f"training data {str(source)!r} not found")
        items += read_labelled_set(path)
    fit = fit_labels([item.text for item in items], charset, policy,
                     source=f"labels in {', '.join(map(str, sources))}")
    crops = CropSet([], [], [])
    unreadable = too_long = 0
    for index, (item, label) in enumerate(zip(items, fit.labels, strict=True)):
        if label is None:
            continue
        if len(label) > max_label:
            too_long += 1
            continue
        image = decoded[index] if index in decoded else _decode(item)
        if image is None:
            unreadable += 1
            continue
        crops.images.append(image)
        crops.labels.append(label)
        crops.names.append(str(item.path))
    return crops, ReadReport(len(items), len(crops), unreadable, too_long, fit)


def read_groups(path: str | Path) -> dict[str, str]:
    """A ``file<TAB>group`` TSV (a receipt, a photo per crop): file name -> group.

    Raises:
        CRNNError: unreadable, or a line without a tab.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise CRNNError(f"cannot read groups {str(path)!r}: {err}") from None
    groups: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, group = line.partition("\t")
        if not sep:
            raise CRNNError(f"{path}:{number}: expected 'file<TAB>group'")
        groups[name] = group.strip()
    return groups


def _natural_key(name: str) -> tuple[object, ...]:
    return tuple(int(part) if part.isdigit() else part for part in _NUMBER.split(name))


def holdout_split(names: Sequence[str], fraction: float, *,
                  groups: Mapping[str, str] | None = None, block: int = 40
                  ) -> tuple[list[int], list[int]]:
    """Deterministic (train, validation) indices, about ``fraction`` of the crops held out.

    Crops are grouped by ``groups`` (file name -> group; a crop it does not name is its own
    group), or else into blocks of ``block`` consecutive crops in natural name order (crops
    cut from one image sit together; fewer in a small set). Every k-th group,
    k = round(1 / fraction), is held out, so the split does not depend on a random seed and
    is the same on every run.

    Raises:
        CRNNError: ``fraction`` is not within (0, 0.5], or fewer than two groups result.
    """
    if not 0.0 < fraction <= 0.5:
        raise CRNNError(f"holdout must be within (0, 0.5], got {fraction}")
    order = sorted(range(len(names)), key=lambda i: _natural_key(Path(names[i]).name))
    every = max(2, round(1 / fraction))
    # Small sets get smaller blocks, so that at least three blocks can be held out.
    block = max(1, min(block, len(names) // (3 * every)))
    keys: list[str] = []
    for rank, i in enumerate(order):
        name = Path(names[i]).name
        keys.append(groups.get(name, name) if groups is not None else str(rank // block))
    distinct = list(dict.fromkeys(keys))
    if len(distinct) < 2:
        raise CRNNError(f"{len(names)} crops make {len(distinct)} group(s): too little data to "
                        "hold some out; give a validation set")
    held = {key for n, key in enumerate(distinct) if n % every == every - 1}
    if not held:  # fewer groups than ``every``: hold out the last one
        held = {distinct[-1]}
    train = sorted(i for i, key in zip(order, keys, strict=True) if key not in held)
    val = sorted(i for i, key in zip(order, keys, strict=True) if key in held)
    return train, val
