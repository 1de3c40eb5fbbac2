"""scripts/split_real.py: the shipped model's validation split of the real crops, kept apart
from training by block and by photo, with labels on the model's charset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "split_real", Path(__file__).resolve().parent.parent / "scripts" / "split_real.py")
assert _SPEC is not None and _SPEC.loader is not None
split_real = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(split_real)


def _folder(root: Path, name: str, labels: list[str], photos: list[str] | None = None) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    lines = []
    for i, label in enumerate(labels):
        (folder / f"word_{i + 1}.png").write_bytes(b"png")
        lines.append(f"word_{i + 1}.png\t{label}")
    (folder / "labels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if photos is not None:
        (folder / "photos.tsv").write_text(
            "".join(f"word_{i + 1}.png\t{p}\n" for i, p in enumerate(photos)), encoding="utf-8")


def test_labels_map_to_the_charset_or_are_dropped() -> None:
    assert split_real.map_label("Hello, World!") == "helloworld"
    assert split_real.map_label("###") is None  # nothing left
    assert split_real.map_label("Café") is None  # a letter the charset lacks


def test_blocks_and_photos_stay_on_one_side(tmp_path: Path) -> None:
    root = tmp_path / "real"
    _folder(root, "blocks", [f"w{i}" for i in range(400)])
    photos = [f"p{i // 3}" for i in range(300)]  # 100 photos of 3 crops
    _folder(root, "photos", [f"w{i}" for i in range(300)], photos)
    train, val = split_real.split(root, "blocks")
    assert len(val) == 39 and len(train) == 361  # blocks 9, 19, 29 of 13 crops (400 // 30)
    numbers = sorted(int(name[5:-4]) - 1 for name, _ in val)
    assert numbers[:13] == list(range(117, 130))  # the tenth block, whole
    train, val = split_real.split(root, "photos")
    held = {photos[int(name[5:-4]) - 1] for name, _ in val}
    kept = {photos[int(name[5:-4]) - 1] for name, _ in train}
    assert len(held) == 10 and not held & kept


def test_writes_folders_finetune_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, out = tmp_path / "real", tmp_path / "split"
    _folder(root, "a", [f"w{i}" for i in range(60)])
    monkeypatch.setattr("sys.argv", ["split_real.py", str(root), str(out), "--sets", "a"])
    split_real.main()
    train = (out / "train" / "a" / "labels.tsv").read_text(encoding="utf-8").splitlines()
    val = (out / "val" / "real" / "labels.tsv").read_text(encoding="utf-8").splitlines()
    assert len(train) + len(val) == 60 and val[0].startswith("a-word_")
    assert all((out / "train" / "a" / line.split("\t")[0]).resolve().is_file() for line in train)
    with pytest.raises(SystemExit):  # never writes into an existing split
        split_real.main()
