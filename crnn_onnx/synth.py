"""Synthetic word crops for training and evaluating CRNN recognisers.

Renders words with real TrueType/OpenType fonts (Pillow) and degrades them the way crops from
a text detector look: varied case, size, weight, width and slant, tight and loose crops,
dark-on-light and light-on-dark, colour, gradients and texture, blur, noise, small rotation
and perspective, low resolution and JPEG artefacts.

Train/held-out separation lives here, in code: :func:`split_of_font` assigns whole font
families and :func:`split_of_text` assigns words to ``"train"`` or ``"heldout"``, so a
held-out set never shares a font family or a word with training.

Needs Pillow (``pip install 'crnn-onnx[synth]'``); it is not used on the inference path.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from crnn_onnx.atomic import atomic_path
from crnn_onnx.config import DEFAULT_CHARSET
from crnn_onnx.errors import CRNNError

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

Split = Literal["train", "heldout"]

#: Font families (file-name prefixes, case-insensitive, separators ignored) that never
#: appear in training: a stand-in for fonts the model has not seen.
HELDOUT_FAMILIES: tuple[str, ...] = (
    "vollkorn", "cabin", "courierprime", "karla", "andika", "arapey", "play", "fanwood",
    "carlito",
)

#: Fonts that draw symbols, not Latin letters, for a-z (file-name fragments, normalised).
_SYMBOL_FONTS = ("symbol", "dingbat", "d050000l", "opens", "math", "cmex", "cmsy", "msam",
                 "msbm", "emoji", "esint", "wasy", "rsfs", "kanji", "stmary", "music")

_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
_WORD_FILES = ("/usr/share/dict/words",)
_HELDOUT_TEXT_MODULUS = 10  # one text in ten (by hash) is held out


def _norm_name(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def font_family(path: str | Path) -> str:
    """A font file's family key: its name up to the first separator, normalised."""
    stem = Path(path).stem.replace("_", "-").replace(" ", "-")
    return _norm_name(stem.split("-")[0])


def split_of_font(path: str | Path) -> Split:
    """``"heldout"`` when the font file belongs to a :data:`HELDOUT_FAMILIES` family."""
    name = _norm_name(Path(path).stem)
    return "heldout" if name.startswith(HELDOUT_FAMILIES) else "train"


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def split_of_text(label: str) -> Split:
    """``"heldout"`` for one normalised label in ten (stable across runs and machines)."""
    return "heldout" if _stable_hash(label) % _HELDOUT_TEXT_MODULUS == 0 else "train"


def normalise_label(text: str, charset: str = DEFAULT_CHARSET) -> str:
    """Lower-case ``text`` and keep only characters of ``charset`` (upstream's label rule)."""
    allowed = set(charset)
    return "".join(ch for ch in text.lower() if ch in allowed)


# --- fonts -------------------------------------------------------------------------------

def _glyph(font: object, ch: str) -> bytes:
    mask = font.getmask(ch)  # type: ignore[attr-defined]
    return bytes(mask.size) + bytes(np.asarray(mask, dtype=np.uint8))


def _covers_charset(path: Path) -> bool:
    """Whether the font draws distinct, non-empty glyphs for a-z and 0-9."""
    from PIL import ImageFont

    try:
        font = ImageFont.truetype(str(path), 32)
    except OSError:
        return False
    try:
        notdef = _glyph(font, "\ue000")
        masks = {}
        for ch in "aeghkmoqsxz0123456789AEGKMQRW":
            data = _glyph(font, ch)
            if not data.strip(b"\x00") or data == notdef:
                return False
            masks[ch] = data
    except (OSError, ValueError):
        return False
    # Symbol fonts map letters to the same few shapes; real text fonts draw them apart.
    return len(set(masks.values())) >= len(masks) - 2


@lru_cache(maxsize=8)
def _discover_cached(dirs: tuple[str, ...]) -> tuple[Path, ...]:
    found: list[Path] = []
    for root in dirs:
        root_path = Path(root).expanduser()
        if not root_path.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(root_path):
            for name in sorted(files):
                if name.lower().endswith((".ttf", ".otf")):
                    found.append(Path(dirpath) / name)
    fonts = [
        p for p in sorted(found)
        if not any(s in _norm_name(p.stem) for s in _SYMBOL_FONTS) and _covers_charset(p)
    ]
    return tuple(fonts)


def discover_fonts(split: Split | None = None, dirs: Sequence[str] = _FONT_DIRS
                   ) -> list[Path]:
    """Installed fonts that can draw the charset, optionally only those of one split.

    Raises:
        CRNNError: no usable font is installed (install DejaVu: ``apt-get install fonts-dejavu``).
    """
    fonts = [p for p in _discover_cached(tuple(dirs)) if split is None or split_of_font(p) == split]
    if not fonts:
        which = f"{split} " if split else ""
        raise CRNNError(f"no usable {which}fonts found under {', '.join(dirs)}")
    return fonts


# --- texts -------------------------------------------------------------------------------

_SYLLABLES = ("ka", "lo", "mi", "ten", "ar", "ve", "sun", "tra", "po", "den", "gri", "ul",
              "ne", "sho", "ba", "rin", "ex", "qu", "zo", "ly", "chi", "for", "wa", "mel")


@dataclass
class WordSource:
    """Draws texts: dictionary words, names, numbers, codes, mixed and random strings.

    Words come from the system dictionary (Debian's ``wamerican``) when installed; otherwise
    from pronounceable syllable combinations. Only texts of the requested split are returned.

    ``compounds`` is the share of CamelCase compounds (``PayPal``, ``SaiGon``, ``RoomB12``):
    brand names and logos put capitals inside a word. At 0 (the default) no random draw is
    spent on it, so the texts of a seed are the same as before the option existed.
    """

    split: Split = "train"
    max_len: int = 16
    charset: str = DEFAULT_CHARSET
    compounds: float = 0.0

    def __post_init__(self) -> None:
        words: list[str] = []
        for path in _WORD_FILES:
            try:
                words = Path(path).read_text(encoding="utf-8", errors="ignore").split()
                break
            except OSError:
                continue
        words = [w for w in words if w.isascii() and w.isalpha() and len(w) <= self.max_len]
        words = [w for w in dict.fromkeys(words) if split_of_text(w.lower()) == self.split]
        self.names = [w for w in words if w[0].isupper()]
        self.words = [w for w in words if w[0].islower()]

    def _dictionary(self, rng: random.Random, names: bool) -> str:
        pool = self.names if names else self.words
        if pool:
            return rng.choice(pool)
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))

    def _raw(self, rng: random.Random) -> str:
        kind = rng.random()
        if kind < 0.50:
            return self._dictionary(rng, names=False)
        if kind < 0.62:
            return self._dictionary(rng, names=True)
        if kind < 0.72:  # numbers: counts, years, prices, phone-like groups
            n = rng.choice([rng.randint(0, 99), rng.randint(100, 9999), rng.randint(1900, 2039),
                            rng.randint(10_000, 99_999_999)])
            text = str(n)
            if rng.random() < 0.15:
                text += rng.choice([".", ",", ".5", ".00", "%"])
            return text
        if kind < 0.84:  # codes: AB12C, x7k9, 3F0A2
            alphabet = rng.choice([string.ascii_uppercase + string.digits,
                                   string.ascii_lowercase + string.digits,
                                   string.hexdigits, string.ascii_letters + string.digits])
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 10)))
        if kind < 0.92:  # word with digits: room12, 4you, b2b
            word = self._dictionary(rng, names=False)[:8]
            digits = str(rng.randint(0, 999))
            return word + digits if rng.random() < 0.6 else digits + word
        # random letters, no language model to lean on
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 12)))

    def _compound(self, rng: random.Random) -> str:
        """Two or three short words or names joined in CamelCase, sometimes with digits."""
        parts = [self._dictionary(rng, names=rng.random() < 0.4)[:rng.randint(2, 7)]
                 for _ in range(rng.choice([2, 2, 2, 3]))]
        if rng.random() < 0.15:
            parts.append(str(rng.randint(0, 99)))
        return "".join(part.capitalize() for part in parts)

    def draw(self, rng: random.Random) -> str:
        """One text (case and light punctuation applied) whose label lies in this split."""
        for _ in range(100):
            if self.compounds and rng.random() < self.compounds:
                text = self._compound(rng)
                case = 1.0  # the capitals inside are the point: keep them
            else:
                text = self._raw(rng)
                case = rng.random()
            if case < 0.25:
                text = text.upper()
            elif case < 0.55:
                text = text.capitalize()
            elif case < 0.95 and text[:1].isupper() and rng.random() < 0.5:
                text = text.lower()
            if rng.random() < 0.04:  # punctuation a detector keeps in the crop but labels drop
                text = (rng.choice(["", "(", '"', "'"]) + text
                        + rng.choice([".", ",", ":", ")", "!", "?", "'s"]))
            label = normalise_label(text, self.charset)
            if 1 <= len(label) <= self.max_len and split_of_text(label) == self.split:
                return text
        raise CRNNError("could not draw a text for this split")  # pragma: no cover


# --- rendering ---------------------------------------------------------------------------

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
