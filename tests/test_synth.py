"""The synthetic word generator: splits kept apart, labels true to the text, reproducible."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from crnn_onnx.config import DEFAULT_CHARSET
from crnn_onnx.errors import CRNNError
from crnn_onnx.synth import words as words_module
from crnn_onnx.synth.backgrounds import BackgroundBank
from crnn_onnx.synth.dataset import synth_samples, write_dataset
from crnn_onnx.synth.fonts import discover_fonts, font_family, split_of_font
from crnn_onnx.synth.words import LONG_MAX, LONG_MIN, WordSource, normalise_label, split_of_text

pytest.importorskip("PIL", reason="the generator needs Pillow (the 'synth' extra)")


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("/usr/share/fonts/opentype/cabin/Cabin-Bold.otf", "heldout"),
        ("Courier Prime Bold.ttf", "heldout"),
        ("Vollkorn-Regular.ttf", "heldout"),
        ("DejaVuSans.ttf", "train"),
        ("LiberationSerif-Italic.ttf", "train"),
    ],
)
def test_fonts_are_split_by_family(name: str, split: str) -> None:
    assert split_of_font(name) == split


def test_font_family_groups_weights_of_one_family() -> None:
    assert font_family("Cabin-Bold.otf") == font_family("Cabin-Regular.otf") == "cabin"
    assert font_family("Courier Prime Bold.ttf") == "courier"


def test_text_split_is_stable_and_holds_out_about_a_tenth() -> None:
    words = [f"word{i}" for i in range(5000)]
    held = [w for w in words if split_of_text(w) == "heldout"]
    assert 0.07 < len(held) / len(words) < 0.13
    assert [split_of_text(w) for w in words[:50]] == [split_of_text(w) for w in words[:50]]


@pytest.mark.parametrize(
    ("text", "label"),
    [("Hello, World!", "helloworld"), ("AB-12", "ab12"), ("café", "caf"), ("", "")],
)
def test_labels_are_lower_cased_to_the_charset(text: str, label: str) -> None:
    assert normalise_label(text) == label


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_word_source_only_draws_texts_of_its_split(split: str) -> None:
    source = WordSource(split=split)  # type: ignore[arg-type]
    rng = random.Random(3)
    for _ in range(200):
        label = normalise_label(source.draw(rng))
        assert 1 <= len(label) <= source.max_len
        assert set(label) <= set(DEFAULT_CHARSET)
        assert split_of_text(label) == split


def test_samples_are_reproducible_and_well_formed() -> None:
    fonts = discover_fonts("train")[:3]
    first = list(synth_samples(5, seed=11, fonts=fonts))
    again = list(synth_samples(5, seed=11, fonts=fonts))
    for a, b in zip(first, again, strict=True):
        assert a.label == b.label == normalise_label(a.text)
        assert np.array_equal(a.image, b.image)
        assert a.image.dtype == np.uint8
        assert a.image.ndim == 3 and a.image.shape[2] == 3
        assert a.image.shape[0] >= 8 and a.image.shape[1] >= 4


def test_missing_fonts_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match="no usable"):
        discover_fonts(dirs=(str(tmp_path),))


def test_tests_see_only_what_a_new_machine_has(dejavu_fonts: list[Path]) -> None:
    """conftest hides what was installed by hand (``only_what_a_new_machine_has``): the
    renderer finds the DejaVu core faces, no held-out family and no photographs, and says
    which script installs them."""
    assert discover_fonts() == sorted(dejavu_fonts)
    with pytest.raises(CRNNError, match=r"heldout fonts .*scripts/install_fonts\.sh"):
        discover_fonts("heldout")
    with pytest.raises(CRNNError, match=r"scripts/install_synth_assets\.sh"):
        BackgroundBank.from_dirs()


def test_write_dataset_writes_images_and_labels(tmp_path: Path) -> None:
    fonts = discover_fonts("train")[:2]
    labels = write_dataset(tmp_path / "set", 4, split="train", seed=5, fonts=fonts)
    lines = labels.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    for line in lines:
        name, label = line.split("\t")
        assert (labels.parent / name).is_file()
        assert label == normalise_label(label)
    assert not list(labels.parent.glob("*.tmp"))


@pytest.mark.slow  # renders two datasets
def test_write_dataset_passes_compounds_on_and_defaults_to_none(
        tmp_path: Path) -> None:
    fonts = discover_fonts("train")[:2]

    def render(name: str, **kwargs: float) -> tuple[str, list[bytes]]:
        labels = write_dataset(tmp_path / name, 6, split="train", seed=8, fonts=fonts, **kwargs)
        images = [p.read_bytes() for p in sorted(labels.parent.glob("*.png"))]
        return labels.read_text(encoding="utf-8"), images

    default, zero, camel = render("default"), render("zero", compounds=0.0), render(
        "camel", compounds=1.0)
    assert zero == default  # same labels, byte-identical crops
    assert camel[0] != default[0]


def test_compounds_put_capitals_inside_words() -> None:
    source = WordSource(split="train", compounds=1.0)
    rng = random.Random(5)
    for _ in range(100):
        text = source.draw(rng)
        letters = "".join(ch for ch in text if ch.isalpha())
        assert any(ch.isupper() for ch in letters[1:]), text
        label = normalise_label(text)
        assert 1 <= len(label) <= source.max_len
        assert split_of_text(label) == "train"


def test_long_texts_have_13_to_24_characters_of_every_kind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long words need long training texts: ``long`` draws labels of LONG_MIN..max_len
    characters (dictionary words, compounds, codes), still of their split."""
    words = tmp_path / "words"  # a dictionary of this test's own, whatever the machine has
    words.write_text("\n".join(["cat", "window", "Paris", "internationalization",
                                "counterrevolutionary", "electroencephalograph",
                                "characteristically", "uncharacteristically"]))
    monkeypatch.setattr(words_module, "_WORD_FILES", (str(words),))
    source = WordSource(split="train", long=1.0, max_len=LONG_MAX)
    assert source.long_words
    rng = random.Random(6)
    labels = [normalise_label(source.draw(rng)) for _ in range(200)]
    assert all(LONG_MIN <= len(label) <= LONG_MAX for label in labels)
    assert all(split_of_text(label) == "train" for label in labels)
    assert any(label.isdigit() for label in labels)  # numbers and codes
    assert any(label in {w.lower() for w in source.long_words} for label in labels)
    assert max(map(len, labels)) > 16  # beyond what the default max_len allows


def test_long_share_mixes_long_texts_into_ordinary_ones() -> None:
    source = WordSource(split="train", long=0.3, max_len=LONG_MAX)
    rng = random.Random(7)
    lengths = [len(normalise_label(source.draw(rng))) for _ in range(400)]
    share = sum(n >= LONG_MIN for n in lengths) / len(lengths)
    assert 0.2 < share < 0.45  # the long share plus the few ordinary texts that are long


def test_write_dataset_long_option_draws_long_labels(tmp_path: Path) -> None:
    fonts = discover_fonts("train")[:2]
    labels = write_dataset(tmp_path / "long", 5, split="train", seed=9, fonts=fonts, long=1.0)
    texts = [line.split("\t")[1] for line in labels.read_text(encoding="utf-8").splitlines()]
    assert len(texts) == 5 and all(len(text) >= LONG_MIN for text in texts)


def test_compounds_are_off_by_default_so_held_out_sets_keep_their_texts() -> None:
    default = WordSource(split="heldout")
    off = WordSource(split="heldout", compounds=0.0, long=0.0)
    assert default.compounds == 0.0 and default.long == 0.0
    rng_a, rng_b = random.Random(2026), random.Random(2026)
    assert [default.draw(rng_a) for _ in range(50)] == [off.draw(rng_b) for _ in range(50)]
