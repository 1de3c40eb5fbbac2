"""Restrict which characters a decoder may emit (an allowlist, a blocklist, or both).

A mask is a (C,) bool array over the model's classes, True where the class may be emitted;
the blank (class :data:`~crnn_onnx.config.BLANK_INDEX`) is always allowed. It is applied to
the logits *before* decoding, so the decoder picks the best path among the allowed
characters instead of deleting forbidden characters from an already decoded string.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crnn_onnx.config import BLANK_INDEX
from crnn_onnx.errors import CRNNError, UsageError

__all__ = ["MASKED_LOGIT", "check_mask", "class_mask", "describe_charset", "mask_logits"]

#: Logit given to disallowed classes: finite (so checks for NaN and infinity still pass) yet
#: so low that its softmax probability is exactly 0 next to any logit a model emits.
MASKED_LOGIT = np.float32(-1e30)

_MAX_SHOWN = 8  # characters named in an error message


def describe_charset(charset: Sequence[str], limit: int = 60) -> str:
    """A short, readable summary of a charset: runs of 3+ consecutive code points as ``a-z``.

    Args:
        charset: the characters (class ``i + 1`` is ``charset[i]``).
        limit: longer summaries are cut and end with ``...``.

    Returns:
        e.g. ``"0-9a-z"`` for the default charset.
    """
    parts: list[str] = []
    i = 0
    while i < len(charset):
        j = i
        while (j + 1 < len(charset) and len(charset[j]) == 1 and len(charset[j + 1]) == 1
               and ord(charset[j + 1]) == ord(charset[j]) + 1):
            j += 1
        parts.append(f"{charset[i]}-{charset[j]}" if j - i >= 2 else "".join(charset[i:j + 1]))
        i = j + 1
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown(chars: str, charset: Sequence[str], parameter: str) -> None:
    known = set(charset)
    unknown = list(dict.fromkeys(ch for ch in chars if ch not in known))
    if unknown:
        shown = ", ".join(repr(ch) for ch in unknown[:_MAX_SHOWN])
        more = f" and {len(unknown) - _MAX_SHOWN} more" if len(unknown) > _MAX_SHOWN else ""
        raise UsageError(
            f"{parameter} holds characters the model cannot read: {shown}{more} "
            f"(its charset: {describe_charset(charset)})"
        )


def class_mask(charset: Sequence[str], allowlist: str | None = None,
               blocklist: str | None = None) -> np.ndarray:
    """Which classes a decoder may emit.

    A class is allowed when its character is in ``allowlist`` (every character when it is
    ``None``) and not in ``blocklist``. With both, the result is the allowlist minus the
    blocklist; it may allow nothing but the blank, and then every crop reads as empty.
    ``allowlist`` and ``blocklist`` name single characters, so a multi-character charset
    entry is allowed only when no allowlist is given and it is not blocked as a whole.

    Args:
        charset: the model's characters; class ``i`` (i >= 1) is ``charset[i - 1]``.
        allowlist: the only characters that may be emitted, or ``None`` for all.
        blocklist: characters that must never be emitted, or ``None`` for none.

    Returns:
        (C,) bool array, C = ``len(charset) + 1``; entry 0 (the blank) is always True.

    Raises:
        CRNNError: ``allowlist`` is the empty string, or ``allowlist`` or ``blocklist``
            holds a character that is not in the charset.
    """
    mask = np.ones(len(charset) + 1, dtype=bool)
    entries = np.array(list(charset), dtype=object)
    if allowlist is not None:
        if allowlist == "":
            raise UsageError("allowlist is empty; give None to allow every character")
        _unknown(allowlist, charset, "allowlist")
        mask[1:] = np.isin(entries, list(set(allowlist)))
    if blocklist:
        _unknown(blocklist, charset, "blocklist")
        mask[1:] &= ~np.isin(entries, list(set(blocklist)))
    mask[BLANK_INDEX] = True
    return mask


def check_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """``mask`` as a (C,) bool array, after checking it fits a model with ``num_classes``.

    Raises:
        CRNNError: wrong shape or dtype, or the blank is not allowed.
    """
    m = np.asarray(mask)
    if m.dtype != np.bool_ or m.shape != (num_classes,):
        raise CRNNError(
            f"mask must be a ({num_classes},) bool array (one entry per class, blank "
            f"included), got {m.dtype} of shape {m.shape}"
        )
    if not m[BLANK_INDEX]:
        raise CRNNError(f"mask must allow the blank (class {BLANK_INDEX})")
    return m


def mask_logits(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``logits`` in which disallowed classes can never win.

    Args:
        logits: (T, N, C) raw logits (any real dtype).
        mask: (C,) bool, from :func:`class_mask`.

    Returns:
        (T, N, C) float32 copy where every class with ``mask`` False holds
        :data:`MASKED_LOGIT`; its softmax probability is then 0, and the allowed classes'
        probabilities are renormalised among themselves.

    Raises:
        CRNNError: ``logits`` is not 3-D, or ``mask`` does not fit its classes.
    """
    x = np.asarray(logits)
    if x.ndim != 3:
        raise CRNNError(f"expected (T, N, C) logits, got an array of shape {x.shape}")
    m = check_mask(mask, x.shape[2])
    out = x.astype(np.float32)  # always a copy
    out[:, :, ~m] = MASKED_LOGIT
    return out
