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
import re
import string
from pathlib import Path

from crnn_onnx.config import DEFAULT_CHARSET

EVERY = 10  # a tenth held out
BLOCK = 40  # crops of one block (fewer in a small folder)
MAX_LEN = 24  # stage 5's longest label (26 frames at width 100): keeps its split exact
_IGNORED = frozenset(string.punctuation + " ´`")
_NUMBER = re.compile(r"(\d+)")


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
    """(file name, label) of the usable crops, in natural file-name order."""
    crops = []
    for line in (folder / "labels.tsv").read_text(encoding="utf-8").splitlines():
        name, _, raw = line.partition("\t")
        label = map_label(raw)
        if label and len(label) <= MAX_LEN and (folder / name).is_file():
            crops.append((name, label))
    return sorted(crops, key=lambda c: tuple(int(p) if p.isdigit() else p
                                             for p in _NUMBER.split(c[0])))


def split(root: Path, name: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    crops = read_folder(root / name)
    if (root / name / "photos.tsv").is_file():  # whole photos
        photo = dict(line.split("\t") for line in
                     (root / name / "photos.tsv").read_text(encoding="utf-8").splitlines())
        order = list(dict.fromkeys(photo[file] for file, _ in crops))
        held = set(order[EVERY - 1::EVERY])
        is_val = [photo[file] in held for file, _ in crops]
    else:  # blocks of consecutive crops
        block = max(4, min(BLOCK, len(crops) // (3 * EVERY)))
        is_val = [(i // block) % EVERY == EVERY - 1 for i in range(len(crops))]
    return ([c for c, v in zip(crops, is_val, strict=True) if not v],
            [c for c, v in zip(crops, is_val, strict=True) if v])


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
