"""The realistic renderer: reproducible, legible, labels that name only the word drawn."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from crnn_onnx.synth.backgrounds import BackgroundBank
from crnn_onnx.synth.dataset import synth_samples, write_dataset
from crnn_onnx.synth.lettering import relief
from crnn_onnx.synth.scene import MAX_NEIGHBOUR_VISIBLE, _crop_box, render_scene_word
from crnn_onnx.synth.words import normalise_label

pytest.importorskip("PIL", reason="the generator needs Pillow (the 'synth' extra)")


@pytest.fixture(scope="module")
def bank() -> BackgroundBank:
    """Three noisy 'photographs', made here."""
    rng = np.random.default_rng(0)
    return BackgroundBank([rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
                           for _ in range(3)])


@pytest.fixture(scope="module")
def dejavu(dejavu_fonts: list[Path]) -> list[Path]:
    """DejaVuSans.ttf alone."""
    return dejavu_fonts[:1]


def test_scene_crops_are_reproducible_and_well_formed(bank: BackgroundBank,
                                                      dejavu: list[Path]) -> None:
    for seed in range(12):
        a = render_scene_word("Crossing42", dejavu[0], random.Random(seed), bank)
        b = render_scene_word("Crossing42", dejavu[0], random.Random(seed), bank)
        assert np.array_equal(a, b)
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
        assert a.shape[0] >= 8 and a.shape[1] > a.shape[0]


@pytest.mark.slow  # renders whole sets to compare them
def test_realism_off_renders_the_sets_of_before(tmp_path: Path, bank: BackgroundBank,
                                                dejavu_fonts: list[Path]) -> None:
    def render(name: str, **kwargs: float) -> tuple[str, list[bytes]]:
        labels = write_dataset(tmp_path / name, 6, split="train", seed=8,
                               fonts=dejavu_fonts[:2], backgrounds=bank, **kwargs)
        images = [p.read_bytes() for p in sorted(labels.parent.glob("*.png"))]
        return labels.read_text(encoding="utf-8"), images

    default = render("default")
    assert render("zero", realism=0.0) == default
    assert render("scene", realism=1.0)[1] != default[1]


def test_street_view_shrinks_the_text_and_washes_out_its_colours() -> None:
    """SVT's signs: text 40 px high seen at 10-20 px and upsampled keeps its size but loses
    its finest detail (1 px stripes) and much of its saturation."""
    from crnn_onnx.synth.effects import street_view

    image = np.zeros((60, 200, 3), np.float32)
    image[:, ::2] = (250, 20, 20)  # red and green stripes, one pixel each
    image[:, 1::2] = (20, 250, 20)
    for seed in range(5):
        out = street_view(image, random.Random(seed), size=40)
        assert out.shape == image.shape and out.dtype == np.float32
        detail = np.abs(np.diff(out, axis=1)).mean() / np.abs(np.diff(image, axis=1)).mean()
        assert detail < 0.2
        spread = (out.max(axis=2) - out.min(axis=2)).mean() / 230
        assert spread < 0.9
        assert np.array_equal(out, street_view(image, random.Random(seed), size=40))


def test_relief_letters_show_by_light_and_shade_on_their_edges() -> None:
    """Carved or raised letters (SVT's stone and metal signs) have no colour of their own:
    inside them the ground changes little, one edge is lit and the other shaded, and the
    ground away from them is untouched."""
    ground = np.full((60, 200, 3), 128, np.float32)
    letters = np.zeros((60, 200), np.float32)
    letters[20:40, 50:150] = 1.0  # one thick stroke
    for seed in range(40):
        out = relief(ground, letters, random.Random(seed), size=30)
        assert out.shape == ground.shape and out.dtype == np.float32
        assert np.array_equal(out, relief(ground, letters, random.Random(seed), size=30))
        change = out[..., 0] - 128.0
        assert np.abs(change[28:33, 70:131]).max() <= 25.0 + 1e-3  # the face: a faint tint
        assert change.max() >= 12.0 and change.min() <= -12.0  # a lit and a shaded edge
        assert np.allclose(out[:8], 128.0) and np.allclose(out[-8:], 128.0)


def test_realism_outside_zero_to_one_is_refused() -> None:
    from crnn_onnx.errors import CRNNError

    with pytest.raises(CRNNError, match="realism"):
        next(synth_samples(1, realism=1.5))


@pytest.mark.slow  # renders scenes and reads them with the shipped model
def test_scene_labels_are_what_the_shipped_model_reads(bank: BackgroundBank,
                                                       dejavu: list[Path]) -> None:
    """Labels match what is drawn: the shipped model reads most scene crops as labelled (a
    label naming a neighbour's letter, or a word cut off, would fail this)."""
    from crnn_onnx.inference.options import PredictorOptions
    from crnn_onnx.inference.predictor import Predictor

    samples = list(synth_samples(40, split="train", seed=21, fonts=dejavu, realism=1.0,
                                 backgrounds=bank))
    assert all(s.label == normalise_label(s.text) for s in samples)
    predictor = Predictor(_shipped(), PredictorOptions(device="cpu"))
    read = predictor.predict([s.image for s in samples])
    matches = sum(p.text == s.label for p, s in zip(read, samples, strict=True))
    assert matches >= 28, [(p.text, s.label) for p, s in zip(read, samples, strict=True)]


def _shipped() -> Path:
    from crnn_onnx.weights import default_model_path

    return default_model_path()


@pytest.mark.parametrize("seed", range(40))
def test_crop_box_keeps_the_word_and_at_most_a_sliver_of_a_neighbour(seed: int) -> None:
    size = 40
    text = np.zeros((80, 400), np.float32)
    text[20:60, 100:300] = 1.0  # the word's ink
    side = np.zeros_like(text)
    side[20:60, 30:50] = 1.0  # a letter further out: never in the crop
    side[20:60, 60:85] = 1.0  # a neighbouring letter 15 px to the left, 25 px wide
    side[20:60, 315:319] = 1.0  # and a thin one (an l) to the right, 4 px wide
    top, bottom, left, right = _crop_box(text, side, random.Random(seed), size)
    assert left <= 100 + 0.06 * 40 and right >= 300 - 0.06 * 40  # the word stays in
    assert 85 - left <= MAX_NEIGHBOUR_VISIBLE * 25  # a sliver of the wide letter at most
    assert right <= 315  # nothing of the thin one: a whole stroke would read as a letter
    assert top < 60 and bottom > 20
