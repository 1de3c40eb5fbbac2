"""Samples of a split, and labelled folders of them for ``crnn-onnx eval``.

Train/held-out separation lives in code: :func:`~crnn_onnx.synth.fonts.split_of_font` assigns
whole font families and :func:`~crnn_onnx.synth.words.split_of_text` assigns words to
``"train"`` or ``"heldout"``, so a held-out set never shares a font family or a word with
training.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crnn_onnx.atomic import atomic_path
from crnn_onnx.errors import CRNNError
from crnn_onnx.extras import require
from crnn_onnx.synth.backgrounds import BackgroundBank, default_bank
from crnn_onnx.synth.fonts import discover_fonts, font_family
from crnn_onnx.synth.render import render_word
from crnn_onnx.synth.scene import render_scene_word
from crnn_onnx.synth.words import LONG_MAX, Split, WordSource, normalise_label

__all__ = ["Sample", "require_pillow", "synth_samples", "write_dataset"]


def require_pillow(purpose: str = "synth", *, name: str = "Pillow", hint: str = "") -> None:
    """Fail with one line naming the ``synth`` extra when Pillow, which draws the text, is
    missing (``<purpose> needs <name>: pip install ...<hint>``).

    Raises:
        CRNNError: Pillow is not installed.
    """
    require("PIL", extra="synth", purpose=purpose, name=name, hint=hint)


@dataclass(frozen=True)
class Sample:
    """One synthetic crop: ``image`` BGR uint8 (H, W, 3), its normalised ``label``, and the
    ``text`` and ``font`` it was drawn with."""

    image: np.ndarray
    label: str
    text: str
    font: str


def synth_samples(n: int, *, split: Split = "train", seed: int = 0,
                  fonts: Sequence[str | Path] | None = None,
                  words: WordSource | None = None, realism: float = 0.0,
                  backgrounds: BackgroundBank | None = None) -> Iterator[Sample]:
    """Yield ``n`` random samples of one split, reproducibly for a given ``seed``.

    Args:
        n: number of samples.
        split: ``"train"`` or ``"heldout"``: which fonts and which texts to draw from.
        seed: random seed; the same seed, fonts, backgrounds and word list give the same
            samples.
        fonts: font files to use instead of the installed fonts of ``split``.
        words: a text source instead of the default one for ``split``.
        realism: the share of crops drawn by the realistic renderer
            (:func:`~crnn_onnx.synth.scene.render_scene_word`); at 0 no random draw is spent
            on it, so the crops a seed gives do not depend on the option.
        backgrounds: photographs for the realistic renderer; ``None`` loads the installed
            ones (:func:`~crnn_onnx.synth.backgrounds.default_bank`) when ``realism`` > 0.
    """
    if not 0.0 <= realism <= 1.0:
        raise CRNNError(f"realism must be within 0..1, got {realism}")
    bank = backgrounds if backgrounds is not None or not realism else default_bank()
    rng = random.Random(seed)
    font_list = [Path(f) for f in fonts] if fonts is not None else discover_fonts(split)
    # Families are drawn uniformly, then a file of that family, so that a family shipped
    # in fifty weights does not drown one shipped in two.
    families: dict[str, list[Path]] = {}
    for path in font_list:
        families.setdefault(font_family(path), []).append(path)
    family_files = list(families.values())
    source = words if words is not None else WordSource(split=split)
    produced = 0
    while produced < n:
        text = source.draw(rng)
        font = rng.choice(rng.choice(family_files))
        try:
            if realism and rng.random() < realism:
                image = render_scene_word(text, font, rng, bank)
            else:
                image = render_word(text, font, rng)
        except (CRNNError, OSError, ValueError, cv2.error):
            continue  # a font missing a glyph, or a degenerate crop of a tiny text: draw again
        yield Sample(image=image, label=normalise_label(text), text=text, font=font.name)
        produced += 1


def write_dataset(out_dir: str | Path, count: int, *, split: Split = "heldout", seed: int = 0,
                  fonts: Sequence[str | Path] | None = None, compounds: float = 0.0,
                  long: float = 0.0, realism: float = 0.0,
                  backgrounds: BackgroundBank | None = None) -> Path:
    """Render ``count`` crops as PNG files plus a ``labels.tsv`` (``name<TAB>label``).

    The result is what ``crnn-onnx eval`` reads. Files are named ``000000.png`` onwards; the
    labels file is written last, atomically, so a folder with a ``labels.tsv`` is complete.
    ``compounds`` is the share of CamelCase texts and ``long`` the share of long ones (labels
    of 13 to 24 characters; see :class:`WordSource`); ``realism`` the share of realistic
    crops, ``fonts`` and ``backgrounds`` what they are drawn with, as for
    :func:`synth_samples`. At 0 no share spends a random draw, so a seed's crops do not
    depend on whether the options exist.

    Returns:
        The path of ``labels.tsv``.

    Raises:
        CRNNError: the folder cannot be created or written.
    """
    require_pillow()
    out = Path(out_dir)
    lines = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        words = (WordSource(split=split, compounds=compounds, long=long, max_len=LONG_MAX)
                 if long else WordSource(split=split, compounds=compounds))
        samples = synth_samples(count, split=split, seed=seed, fonts=fonts, words=words,
                                realism=realism, backgrounds=backgrounds)
        for i, sample in enumerate(samples):
            name = f"{i:06d}.png"
            if not cv2.imwrite(str(out / name), sample.image):
                raise CRNNError(f"cannot write {out / name}")
            lines.append(f"{name}\t{sample.label}\n")
        labels = out / "labels.tsv"
        with atomic_path(labels) as tmp:
            tmp.write_text("".join(lines), encoding="utf-8")
    except OSError as err:
        raise CRNNError(f"cannot write dataset to {str(out)!r}: {err.strerror or err}") from None
    return labels
