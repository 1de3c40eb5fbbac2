"""Fonts for the synthetic word crops: the installed fonts that draw the charset, their family
keys, and which families are held out of training.

:func:`split_of_font` assigns whole font families to ``"train"`` or ``"heldout"``
(:data:`HELDOUT_FAMILIES`), so that a held-out set never shares a family with training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from crnn_onnx.errors import CRNNError
from crnn_onnx.synth.words import Split

__all__ = ["FONT_DIRS", "HELDOUT_FAMILIES", "discover_fonts", "font_family", "split_of_font"]

#: Font families (file-name prefixes, case-insensitive, separators ignored) that never
#: appear in training: a stand-in for fonts the model has not seen.
HELDOUT_FAMILIES: tuple[str, ...] = (
    "vollkorn", "cabin", "courierprime", "karla", "andika", "arapey", "play", "fanwood",
    "carlito",
)

#: Fonts that draw symbols, not Latin letters, for a-z (file-name fragments, normalised).
_SYMBOL_FONTS = ("symbol", "dingbat", "d050000l", "opens", "math", "cmex", "cmsy", "msam",
                 "msbm", "emoji", "esint", "wasy", "rsfs", "kanji", "stmary", "music")

#: Folders searched for installed fonts, in this order.
FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts",
)


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


def discover_fonts(split: Split | None = None, dirs: Sequence[str] | None = None
                   ) -> list[Path]:
    """Installed fonts that can draw the charset, optionally only those of one split.

    Args:
        split: only the fonts of this split; ``None``: all.
        dirs: folders to search; ``None``: :data:`FONT_DIRS`.

    Raises:
        CRNNError: no usable font of the split is installed. A new machine has DejaVu only,
            a training family: the held-out families come with ``scripts/install_fonts.sh``.
    """
    dirs = FONT_DIRS if dirs is None else tuple(dirs)
    fonts = [p for p in _discover_cached(tuple(dirs)) if split is None or split_of_font(p) == split]
    if not fonts:
        which = f"{split} " if split else ""
        raise CRNNError(f"no usable {which}fonts found under {', '.join(dirs)}; "
                        "scripts/install_fonts.sh installs them (Debian/Ubuntu, as root)")
    return fonts
