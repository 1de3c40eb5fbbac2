"""Carve the shipped model's validation split out of the real training crops.

Writes ``OUT/train/<set>/`` and ``OUT/val/<set>/`` (symlinks to the crops and a
``labels.tsv`` on the model's charset) and ``OUT/val/real/`` (every validation crop), which
``crnn-onnx finetune`` takes as DATA and ``--val``. ic15, iiit5k and svt are split as stage 5
was (every tenth block of consecutive crops of each folder, blocks of 40); ic03 by photo
(every tenth photo of ``photos.tsv``), so that no photo is on both sides.

Usage: python scripts/split_real.py ../shared/real-train OUT
"""

from __future__ import annotations

import argparse
import os
import string
from pathlib import Path

from crnn_onnx.config import DEFAULT_CHARSET
from crnn_onnx.training.data import holdout_split, read_groups

EVERY = 10  # a tenth held out
BLOCK = 40  # crops of one block (fewer in a small folder)
MAX_LEN = 24  # stage 5's longest label (26 frames at width 100): keeps its split exact
_IGNORED = frozenset(string.punctuation + " ´`")


def map_label(raw: str) -> str | None:
    """Lower case on the charset, punctuation and spaces dropped; None if anything else."""
    out = []
    for ch in raw.lower():
        if ch in DEFAULT_CHARSET:
            out.append(ch)
        elif ch not in _IGNORED:
            return None
    return "".join(out) or None


def read_folder(folder: Path) -> list[tuple[str, str]]:
    """(file name, label) of the usable crops, in the file's order."""
    crops = []
    for line in (folder / "labels.tsv").read_text(encoding="utf-8").splitlines():
        name, _, raw = line.partition("\t")
        label = map_label(raw)
        if label and len(label) <= MAX_LEN and (folder / name).is_file():
            crops.append((name, label))
    return crops


def split(root: Path, name: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, validation) of one folder: whole photos where it has ``photos.tsv``, else
    blocks of consecutive crops (:func:`crnn_onnx.training.data.holdout_split`)."""
    crops = read_folder(root / name)
    photos = root / name / "photos.tsv"
    groups = read_groups(photos) if photos.is_file() else None
    train, val = holdout_split([file for file, _ in crops], 1 / EVERY, groups=groups,
                               block=BLOCK)
    return [crops[i] for i in train], [crops[i] for i in val]


def write(folder: Path, source: Path, crops: list[tuple[str, str]], prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, label in crops:
        link = folder / f"{prefix}{name}"
        if not link.exists():
            os.symlink(source.resolve() / name, link)
        lines.append(f"{link.name}\t{label}\n")
    with (folder / "labels.tsv").open("a", encoding="utf-8") as out:
        out.writelines(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="../shared/real-train")
    parser.add_argument("out", type=Path, help="new folder")
    parser.add_argument("--sets", nargs="+", default=["ic15", "iiit5k", "svt", "ic03"])
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists")
    for name in args.sets:
        train, val = split(args.root, name)
        write(args.out / "train" / name, args.root / name, train)
        write(args.out / "val" / name, args.root / name, val)
        write(args.out / "val" / "real", args.root / name, val, prefix=f"{name}-")
        print(f"{name}: {len(train)} train, {len(val)} validation")


if __name__ == "__main__":
    main()
