"""CTC greedy (best-path) decoding with confidences, in pure numpy.

Follows upstream CRNN-TextRec's ``best_path_decode``: argmax per frame, merge repeated
classes, drop the blank (class :data:`~crnn_onnx.config.BLANK_INDEX`, 0), and map class
``i`` to ``charset[i - 1]``. The softmax is monotonic, so the argmax of raw logits equals
upstream's argmax of ``log_softmax``; probabilities are only computed for the confidences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crnn_onnx.config import BLANK_INDEX
from crnn_onnx.errors import CRNNError

__all__ = ["Decoded", "check_logits", "ctc_greedy_decode", "frame_max_probs",
           "nonfinite_sequences"]


@dataclass(frozen=True)
class Decoded:
    """One decoded sequence.

    Attributes:
        text: the recognised characters.
        confidence: in [0, 1]; see :func:`ctc_greedy_decode` for the formula.
        char_probs: one probability per character of ``text`` (its softmax probability,
            the highest over the frames of its run).
    """

    text: str
    confidence: float
    char_probs: tuple[float, ...]


def frame_max_probs(logits: np.ndarray) -> np.ndarray:
    """Softmax probability of the winning class of every frame, computed stably.

    Args:
        logits: (..., C) raw logits (any float dtype).

    Returns:
        (...) float32 array (float64 for float64 logits): ``max_c softmax(logits)[..., c]``,
        which equals ``1 / sum_c exp(logits[..., c] - max(logits))``; within (0, 1] for
        finite logits.
    """
    x = np.asarray(logits)
    if x.dtype != np.float64:
        # float64 stays float64: a finite float64 logit can overflow float32 to inf.
        x = x.astype(np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)
    return (1.0 / np.exp(shifted).sum(axis=-1)).astype(x.dtype, copy=False)


def nonfinite_sequences(logits: np.ndarray) -> np.ndarray:
    """Which sequences of a (T, N, C) logits batch hold a NaN or infinite value.

    Returns:
        (N,) bool array. The :class:`~crnn_onnx.inference.predictor.Predictor` uses it to
        turn such inputs
        into error records and decode the rest, since :func:`ctc_greedy_decode` refuses them.
    """
    x = np.asarray(logits)
    if x.ndim != 3:
        raise CRNNError(f"expected (T, N, C) logits, got an array of shape {x.shape}")
    return ~np.isfinite(x).all(axis=(0, 2))


def check_logits(logits: np.ndarray, charset: Sequence[str]) -> np.ndarray:
    """``logits`` as an array, checked for decoding: (T, N, C) real values, T >= 1,
    C == len(charset) + 1, every value finite.

    Raises:
        CRNNError: as :func:`ctc_greedy_decode` describes.
    """
    x = np.asarray(logits)
    if x.dtype.kind not in "fiub":
        raise CRNNError(f"expected real-valued logits, got dtype {x.dtype}")
    if x.ndim != 3:
        raise CRNNError(f"expected (T, N, C) logits, got an array of shape {x.shape}")
    t_len, n, c = x.shape
    if t_len < 1:
        raise CRNNError("the model output has no frames (T = 0)")
    if c != len(charset) + 1:
        raise CRNNError(
            f"the model outputs {c} classes but the charset has {len(charset)} characters "
            f"(+ 1 blank = {len(charset) + 1}); model and charset do not belong together"
        )
    bad = np.flatnonzero(nonfinite_sequences(x)) if n else np.zeros(0, np.int64)
    if bad.size:
        raise CRNNError(
            f"the model output holds NaN or infinite values (in {bad.size} of {n} sequences, "
            f"first at batch index {bad[0]})"
        )
    return x


def ctc_greedy_decode(logits: np.ndarray, charset: Sequence[str]) -> list[Decoded]:
    """Best-path CTC decoding of a batch of sequences.

    Confidence formula: the mean over the decoded characters of each character's softmax
    probability, where a character's probability is the highest max-softmax probability
    among the consecutive frames that were merged into it (its run). For an empty result
    (every frame blank or only blank after merging) the confidence is the mean over all T
    frames of the winning class's probability, i.e. how sure the model is that the crop
    holds no text. Both lie in [0, 1].

    Args:
        logits: (T, N, C) float32 raw logits (sequence first, as the model emits them);
            T >= 1, N >= 0, C == len(charset) + 1 with the blank at class 0. Any real
            dtype; every value must be finite.
        charset: the characters; class ``i`` (i >= 1) is ``charset[i - 1]``.

    Returns:
        N :class:`Decoded` results, in batch order.

    Raises:
        CRNNError: ``logits`` is not 3-D or not real numbers, T is 0, C does not match the
            charset, or a value is NaN or infinite. A broken or overflowing model (an fp16
            graph, say) produces those; no text read from them could be trusted, so they
            are refused rather than decoded into confident-looking garbage.
    """
    x = check_logits(logits, charset)
    t_len, n, _ = x.shape
    if n == 0:
        return []

    # Batch-major (N, T) views, so that one flat index walks each sequence in order.
    ids = x.argmax(axis=2).T  # (N, T) int64
    probs = frame_max_probs(x).T  # (N, T) float32

    # A run starts where the class changes (and at every sequence's first frame).
    starts = np.ones((n, t_len), dtype=bool)
    starts[:, 1:] = ids[:, 1:] != ids[:, :-1]
    flat_starts = np.flatnonzero(starts)
    run_ids = ids.reshape(-1)[flat_starts]
    run_probs = np.maximum.reduceat(probs.reshape(-1), flat_starts)
    run_seq = flat_starts // t_len
    keep = run_ids != BLANK_INDEX
    run_ids, run_probs, run_seq = run_ids[keep], run_probs[keep], run_seq[keep]

    # Split the kept runs per sequence; counts may be zero.
    bounds = np.searchsorted(run_seq, np.arange(n + 1))
    empty_conf = probs.mean(axis=1)
    table = np.array(["", *charset], dtype=object)
    results: list[Decoded] = []
    for i in range(n):
        lo, hi = bounds[i], bounds[i + 1]
        if lo == hi:
            results.append(Decoded("", _unit(empty_conf[i]), ()))
            continue
        chars = table[run_ids[lo:hi]]
        char_probs = tuple(_unit(p) for p in run_probs[lo:hi])
        results.append(Decoded("".join(chars), _unit(np.mean(run_probs[lo:hi])), char_probs))
    return results


def _unit(value: float | np.floating) -> float:
    """A Python float clipped to [0, 1] (float32 rounding can overshoot by an ulp)."""
    return min(1.0, max(0.0, float(value)))
