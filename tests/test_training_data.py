"""Real training crops: labels mapped to the charset, a validation split by blocks, and
augmentation that keeps a crop a crop."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from crnn_onnx.errors import CRNNError
from crnn_onnx.training.augment import augment_crop
from crnn_onnx.training.canvas import resize_and_pad
from crnn_onnx.training.real import RealCrop, map_label, read_real_folder, validation_split


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("Genaxis Theatre", "genaxistheatre"),  # two words in one crop, as published
        ("62-03", "6203"),  # punctuation dropped, as evaluation drops it
        ("EXIT!", "exit"),
        ("café", None),  # a letter outside the charset: the label cannot be trusted
        ("###", None),  # ICDAR's "do not care": nothing left
        ("", None),
    ],
)
def test_labels_map_to_the_charset_or_are_dropped(raw: str, label: str | None) -> None:
    assert map_label(raw) == label


def _fixture(folder: Path, lines: list[str], files: list[str]) -> None:
    folder.mkdir()
    for name in files:
        cv2.imwrite(str(folder / name), np.full((20, 60, 3), 200, np.uint8))
    (folder / "labels.tsv").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_a_folder_reads_in_natural_order_and_reports_what_it_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "ic15"
    _fixture(folder,
             ["word_10.png\tExit", "word_2.png\tcafé", "word_1.png\tCAR PARK", "",
              "word_3.png\t" + "x" * 30, "word_4.png\tgone"],
             ["word_1.png", "word_2.png", "word_3.png", "word_10.png"])
    crops, dropped = read_real_folder(folder)
    assert [c.path.name for c in crops] == ["word_1.png", "word_10.png"]
    assert [c.label for c in crops] == ["carpark", "exit"]
    assert crops[0].raw == "CAR PARK" and crops[0].folder == "ic15"
    assert dropped == {"unmappable": 1, "too long": 1, "missing file": 1}


def test_a_folder_without_labels_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match=r"labels\.tsv"):
        read_real_folder(tmp_path)


def test_validation_takes_whole_blocks_from_every_folder() -> None:
    crops = [RealCrop(Path(f"{i}.png"), "a", "a", "big") for i in range(1200)]
    crops += [RealCrop(Path(f"{i}.png"), "a", "a", "small") for i in range(120)]
    train, val = validation_split(crops, every=10, block=40)
    assert len(train) + len(val) == len(crops)
    assert not {id(c) for c in train} & {id(c) for c in val}
    big = [int(c.path.stem) for c in val if c.folder == "big"]
    # every 10th block of 40: the 10th, 20th and 30th
    assert big == [*range(360, 400), *range(760, 800), *range(1160, 1200)]
    small = [int(c.path.stem) for c in val if c.folder == "small"]
    assert len(small) >= 12 and small == sorted(small)  # blocks of 4: 36-39, 76-79, 116-119
    assert validation_split(crops) == validation_split(crops)


def test_augmented_crops_stay_crops_and_follow_the_seed() -> None:
    crop = np.zeros((24, 80, 3), np.uint8)
    cv2.putText(crop, "shop", (3, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    outputs = [augment_crop(crop, random.Random(seed)) for seed in range(30)]
    for seed, out in enumerate(outputs):
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        assert 12 <= out.shape[0] <= 36 and 60 <= out.shape[1] <= 100
        assert np.array_equal(out, augment_crop(crop, random.Random(seed)))
    assert len({out.tobytes() for out in outputs}) == len(outputs)


def test_crops_are_fitted_to_the_model_canvas(default_config) -> None:
    wide = np.full((20, 300, 3), 7, np.uint8)
    narrow = np.full((40, 40, 3), 9, np.uint8)
    fitted = resize_and_pad(wide, default_config)
    assert fitted.shape == (32, 100, 3) and fitted.dtype == np.uint8 and (fitted == 7).all()
    fitted = resize_and_pad(narrow, default_config)
    assert (fitted[:, :32] == 9).all() and (fitted[:, 32:] == 128).all()
