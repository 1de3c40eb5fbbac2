"""Synthetic word crops for training and evaluating CRNN recognisers.

Renders words with real TrueType/OpenType fonts (Pillow) and degrades them the way crops from
a text detector look: varied case, size, weight, width and slant, tight and loose crops,
dark-on-light and light-on-dark, colour, gradients and texture, blur, noise, small rotation
and perspective, low resolution and JPEG artefacts.

Train/held-out separation lives here, in code: :func:`split_of_font` assigns whole font
families and :func:`split_of_text` assigns words to ``"train"`` or ``"heldout"``, so a
held-out set never shares a font family or a word with training.

Fonts and their split live in :mod:`crnn_onnx.synth_fonts`, texts and theirs in
:mod:`crnn_onnx.synth_words`; this module renders and writes, and re-exports their names.

Needs Pillow (``pip install 'crnn-onnx[synth]'``); it is not used on the inference path.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crnn_onnx.atomic import atomic_path
from crnn_onnx.errors import CRNNError
from crnn_onnx.synth_fonts import HELDOUT_FAMILIES, discover_fonts, font_family, split_of_font
from crnn_onnx.synth_words import Split, WordSource, normalise_label, split_of_text

__all__ = [
    "HELDOUT_FAMILIES",
    "Sample",
    "WordSource",
    "discover_fonts",
    "font_family",
    "normalise_label",
    "render_word",
    "split_of_font",
    "split_of_text",
    "synth_samples",
    "write_dataset",
]


@dataclass(frozen=True)
class Sample:
    """One synthetic crop: ``image`` BGR uint8 (H, W, 3), its normalised ``label``, and the
    ``text`` and ``font`` it was drawn with."""

    image: np.ndarray
    label: str
    text: str
    font: str


def _colours(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(background, foreground) RGB with enough luminance contrast to be readable."""
    mode = rng.random()
    for _ in range(50):
        if mode < 0.55:  # dark on light, mostly grey
            bg_l, fg_l = rng.randint(150, 255), rng.randint(0, 110)
        elif mode < 0.8:  # light on dark
            bg_l, fg_l = rng.randint(0, 110), rng.randint(150, 255)
        else:  # anything with contrast
            bg_l, fg_l = rng.randint(0, 255), rng.randint(0, 255)
        if abs(bg_l - fg_l) < 70:
            continue
        tint = 0 if rng.random() < 0.5 else 60

        def colour(level: int, tint: int = tint) -> tuple[int, int, int]:
            return tuple(int(np.clip(level + rng.randint(-tint, tint), 0, 255)) for _ in range(3))  # type: ignore[return-value]

        return colour(bg_l), colour(fg_l)
    return (255, 255, 255), (0, 0, 0)


def _background(rng: random.Random, h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    """(h, w, 3) uint8 RGB: flat, gradient, or blotchy texture around ``rgb``."""
    base = np.empty((h, w, 3), np.float32)
    base[:] = rgb
    kind = rng.random()
    if kind < 0.35:
        return base.astype(np.uint8)
    if kind < 0.7:
        amp = rng.uniform(10, 50)
        ramp = np.linspace(-amp, amp, w if rng.random() < 0.6 else h, dtype=np.float32)
        base += ramp[None, :, None] if ramp.shape[0] == w else ramp[:, None, None]
    else:
        small = np.random.default_rng(rng.getrandbits(32)).normal(
            0, rng.uniform(8, 30), (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
        base += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base, 0, 255).astype(np.uint8)


def render_word(text: str, font_path: str | Path, rng: random.Random) -> np.ndarray:
    """Render ``text`` with one font and random styling: BGR uint8 (H, W, 3) crop.

    The crop's height is roughly the text's height plus a random margin, as a detector
    would cut it; the width follows the text.
    """
    from PIL import Image, ImageDraw, ImageFont

    size = rng.randint(22, 64)
    font = ImageFont.truetype(str(font_path), size)
    bg, fg = _colours(rng)
    stroke = 1 if size > 30 and rng.random() < 0.15 else 0
    spacing = rng.choice([0.0] * 6 + [rng.uniform(-0.06, 0.25)]) * size

    # Lay out glyph by glyph when letter spacing is changed, else as one run (kerning kept).
    ascent, descent = font.getmetrics()
    if spacing:
        advances = [font.getlength(ch) + spacing for ch in text]
        text_w = int(sum(advances) + size)
    else:
        advances = []
        text_w = int(font.getlength(text) + size)
    canvas_h = ascent + descent + size
    mask = Image.new("L", (max(text_w, 8) + 2 * size, canvas_h + size), 0)
    draw = ImageDraw.Draw(mask)
    x0, y0 = size, size // 2
    if advances:
        x = float(x0)
        for ch, adv in zip(text, advances, strict=True):
            draw.text((x, y0), ch, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
            x += adv
    else:
        draw.text((x0, y0), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    alpha: np.ndarray = np.asarray(mask, dtype=np.float32) / 255.0

    # Geometry: width scaling, slant, small rotation, then a tight box around the ink.
    h, w = alpha.shape
    sx = rng.uniform(0.75, 1.3) if rng.random() < 0.5 else 1.0
    shear = rng.uniform(-0.3, 0.3) if rng.random() < 0.25 else 0.0
    angle = math.radians(rng.uniform(-4, 4)) if rng.random() < 0.4 else 0.0
    ca, sa = math.cos(angle), math.sin(angle)
    affine = np.array([[sx * ca, -sa + shear * ca, 0], [sx * sa, ca + shear * sa, 0]], np.float32)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float32) @ affine.T
    affine[:, 2] = -corners.min(axis=0)
    out_w, out_h = (corners.max(axis=0) - corners.min(axis=0)).astype(int) + 1
    alpha = cv2.warpAffine(alpha, affine, (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(alpha > 0.3)
    if len(xs) == 0:
        raise CRNNError(f"font {Path(font_path).name} drew nothing for {text!r}")
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    ink_h = bottom - top

    # Crop margins: mostly a little air, sometimes loose, sometimes clipped by a pixel.
    def margin(scale: float) -> int:
        r = rng.random()
        if r < 0.1:
            return -rng.randint(0, max(1, int(ink_h * 0.06)))
        if r < 0.75:
            return rng.randint(0, max(1, int(ink_h * 0.2 * scale)))
        return rng.randint(0, max(1, int(ink_h * 0.6 * scale)))

    top, bottom = top - margin(1), bottom + margin(1)
    left, right = left - margin(1.5), right + margin(1.5)
    pad = max(0, -top, -left, bottom - alpha.shape[0], right - alpha.shape[1])
    if pad:
        alpha = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        top, bottom, left, right = top + pad, bottom + pad, left + pad, right + pad
    alpha = alpha[top:bottom, left:right]
    ch_, cw_ = alpha.shape

    # Compose colours: ink over a background, then photometric degradations.
    background = _background(rng, ch_, cw_, bg).astype(np.float32)
    ink = np.empty_like(background)
    ink[:] = fg
    if rng.random() < 0.15:  # uneven ink
        ink += rng.uniform(-40, 40) * np.linspace(0, 1, cw_, dtype=np.float32)[None, :, None]
    image: np.ndarray = background * (1 - alpha[..., None]) + ink * alpha[..., None]

    if rng.random() < 0.08:  # a stray line (underline, table rule, box edge)
        y = rng.choice([rng.randint(0, max(0, ch_ // 8)), rng.randint(ch_ * 7 // 8, ch_ - 1)])
        cv2.line(image, (0, y), (cw_ - 1, y), tuple(float(c) for c in fg), rng.randint(1, 2))
    if rng.random() < 0.2:  # perspective
        d = 0.06 * min(ch_, cw_)
        src = np.array([[0, 0], [cw_, 0], [cw_, ch_], [0, ch_]], np.float32)
        dst = src + np.array([[rng.uniform(-d, d), rng.uniform(-d, d)] for _ in range(4)],
                             np.float32)
        matrix = cv2.getPerspectiveTransform(src, dst)
        image = cv2.warpPerspective(image, matrix, (cw_, ch_), borderMode=cv2.BORDER_REPLICATE)
    blur = rng.random()
    if blur < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.3 + size / 40))
    elif blur < 0.32:
        k = rng.randint(2, 4)
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        image = cv2.filter2D(image, -1, kernel)
    if rng.random() < 0.3:  # sensor noise
        image += np.random.default_rng(rng.getrandbits(32)).normal(
            0, rng.uniform(2, 14), image.shape).astype(np.float32)
    if rng.random() < 0.3:  # low resolution: down then up again
        f = rng.uniform(0.35, 0.8)
        small = cv2.resize(image, (max(1, int(cw_ * f)), max(1, int(ch_ * f))),
                           interpolation=cv2.INTER_AREA)
        image = cv2.resize(small, (cw_, ch_), interpolation=cv2.INTER_LINEAR)
    image = np.clip(image, 0, 255).astype(np.uint8)
    bgr: np.ndarray = np.ascontiguousarray(image[..., ::-1])
    if rng.random() < 0.35:  # JPEG artefacts
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(15, 90)])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            bgr = decoded
    if rng.random() < 0.1:
        bgr = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return bgr


def synth_samples(n: int, *, split: Split = "train", seed: int = 0,
                  fonts: Sequence[str | Path] | None = None,
                  words: WordSource | None = None) -> Iterator[Sample]:
    """Yield ``n`` random samples of one split, reproducibly for a given ``seed``.

    Args:
        n: number of samples.
        split: ``"train"`` or ``"heldout"``: which fonts and which texts to draw from.
        seed: random seed; the same seed, fonts and word list give the same samples.
        fonts: font files to use instead of the installed fonts of ``split``.
        words: a text source instead of the default one for ``split``.
    """
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
            image = render_word(text, font, rng)
        except (CRNNError, OSError, ValueError):
            continue  # a font missing a glyph; draw again
        yield Sample(image=image, label=normalise_label(text), text=text, font=font.name)
        produced += 1


def write_dataset(out_dir: str | Path, count: int, *, split: Split = "heldout", seed: int = 0,
                  fonts: Sequence[str | Path] | None = None, compounds: float = 0.0) -> Path:
    """Render ``count`` crops as PNG files plus a ``labels.tsv`` (``name<TAB>label``).

    The result is what ``crnn-onnx eval`` reads. Files are named ``000000.png`` onwards; the
    labels file is written last, atomically, so a folder with a ``labels.tsv`` is complete.
    ``compounds`` is the share of CamelCase texts (see :class:`WordSource`); at 0 a seed
    renders the same crops as it always has.

    Returns:
        The path of ``labels.tsv``.

    Raises:
        CRNNError: the folder cannot be created or written.
    """
    out = Path(out_dir)
    lines = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        words = WordSource(split=split, compounds=compounds)
        samples = synth_samples(count, split=split, seed=seed, fonts=fonts, words=words)
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
