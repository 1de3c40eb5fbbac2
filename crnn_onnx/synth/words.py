"""Texts for the synthetic word crops: what to write, and which texts are held out.

:func:`split_of_text` assigns every normalised label to ``"train"`` or ``"heldout"`` (one in
ten, by a stable hash), so that a held-out set never shares a word with training;
:class:`WordSource` draws texts of one split.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from crnn_onnx.config import DEFAULT_CHARSET
from crnn_onnx.errors import CRNNError

__all__ = ["LONG_MAX", "LONG_MIN", "Split", "WordSource", "normalise_label", "split_of_text"]

Split = Literal["train", "heldout"]

_WORD_FILES = ("/usr/share/dict/words",)
_HELDOUT_TEXT_MODULUS = 10  # one text in ten (by hash) is held out
#: Fewest characters of a long text's label (:attr:`WordSource.long`).
LONG_MIN = 13
#: Most characters of a text's label where long texts are drawn (``max_len`` to ask for).
LONG_MAX = 24


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def split_of_text(label: str) -> Split:
    """``"heldout"`` for one normalised label in ten (stable across runs and machines)."""
    return "heldout" if _stable_hash(label) % _HELDOUT_TEXT_MODULUS == 0 else "train"


def normalise_label(text: str, charset: str = DEFAULT_CHARSET) -> str:
    """Lower-case ``text`` and keep only characters of ``charset`` (upstream's label rule)."""
    allowed = set(charset)
    return "".join(ch for ch in text.lower() if ch in allowed)



_SYLLABLES = ("ka", "lo", "mi", "ten", "ar", "ve", "sun", "tra", "po", "den", "gri", "ul",
              "ne", "sho", "ba", "rin", "ex", "qu", "zo", "ly", "chi", "for", "wa", "mel")


@dataclass
class WordSource:
    """Draws texts: dictionary words, names, numbers, codes, mixed and random strings.

    Words come from the system dictionary (Debian's ``wamerican``) when installed; otherwise
    from pronounceable syllable combinations. Only texts of the requested split are returned.

    ``compounds`` is the share of CamelCase compounds (``PayPal``, ``SaiGon``, ``RoomB12``):
    brand names and logos put capitals inside a word. ``long`` is the share of long texts
    (labels of :data:`LONG_MIN` to ``max_len`` characters: long dictionary words, compounds of
    three or four words, long codes and numbers), which a model needs to see to read them at
    their own width. At 0 (the defaults) neither spends a random draw, so the texts a seed
    gives do not depend on the options.
    """

    split: Split = "train"
    max_len: int = 16
    charset: str = DEFAULT_CHARSET
    compounds: float = 0.0
    long: float = 0.0

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
        self.long_words = [w for w in self.words if len(w) >= LONG_MIN]

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

    def _long(self, rng: random.Random) -> str:
        """A text whose label is probably :data:`LONG_MIN` characters or more."""
        kind = rng.random()
        if kind < 0.35 and self.long_words:
            return rng.choice(self.long_words)
        if kind < 0.75:  # compounds: three or four words, joined or CamelCase
            parts = [self._dictionary(rng, names=rng.random() < 0.3)
                     for _ in range(rng.choice([3, 3, 4]))]
            if rng.random() < 0.5:
                return "".join(part.capitalize() for part in parts)
            return "".join(part.lower() for part in parts)
        alphabet = rng.choice([string.digits, string.ascii_uppercase + string.digits,
                               string.ascii_lowercase + string.digits])
        # codes and numbers, sometimes in groups (the separators are not in the label)
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(LONG_MIN, self.max_len)))
        if rng.random() < 0.4:
            step = rng.randint(3, 5)
            text = rng.choice(["-", " ", "."]).join(text[i:i + step]
                                                    for i in range(0, len(text), step))
        return text

    def draw(self, rng: random.Random) -> str:
        """One text (case and light punctuation applied) whose label lies in this split."""
        for _ in range(100):
            wants_long = bool(self.long) and rng.random() < self.long
            if wants_long:
                text = self._long(rng)
                case = rng.random()
            elif self.compounds and rng.random() < self.compounds:
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
            shortest = LONG_MIN if wants_long else 1
            if shortest <= len(label) <= self.max_len and split_of_text(label) == self.split:
                return text
        raise CRNNError("could not draw a text for this split")  # pragma: no cover
