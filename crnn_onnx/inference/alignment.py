"""Exact CTC scores of given labellings: likelihood (forward algorithm) and best alignment.

Both run over the standard CTC state graph of a labelling ``c1 c2 ... cL``: the 2L + 1
states ``blank c1 blank c2 ... cL blank``, where a path may stay in a state, move to the
next one, or skip a blank between two different characters. They are vectorised over many
(sequence, labelling) pairs at once; the Python loop runs over the T frames only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from crnn_onnx.config import BLANK_INDEX

__all__ = [
    "batch_log_likelihoods",
    "ctc_log_likelihood",
    "ctc_log_probs",
    "labelling_confidences",
]

# Largest T * pairs * states handled at once (float64 emissions: 32 MiB).
_CHUNK_ELEMENTS = 1 << 22


def ctc_log_probs(logits: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Log-softmax over the classes, with disallowed classes removed and the rest renormalised.

    Args:
        logits: (T, N, C) finite raw logits (any real dtype).
        mask: (C,) bool, True where a class may be emitted (the blank must be), or None.

    Returns:
        (T, N, C) float64 log-probabilities; ``-inf`` for classes ``mask`` disallows.
    """
    x = np.array(logits, dtype=np.float64)  # a copy, edited in place below
    if mask is not None:
        x[:, :, ~np.asarray(mask, dtype=bool)] = -np.inf
    x -= x.max(axis=2, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=2, keepdims=True))
    return x


def _extended(labels: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, S) extended labels (blanks around and between characters), (P,) lengths, and a
    (P, S) penalty: 0 where a state may be reached by skipping the blank before it (a
    character unlike the one before that blank), ``-inf`` elsewhere.
    """
    lengths = np.array([len(lab) for lab in labels], dtype=np.int64)
    states = 2 * int(lengths.max(initial=0)) + 1
    ext = np.full((len(labels), states), BLANK_INDEX, dtype=np.int64)
    for i, lab in enumerate(labels):
        ext[i, 1 : 2 * len(lab) : 2] = lab
    skip = np.full(ext.shape, -np.inf)
    skip[:, 2:][(ext[:, 2:] != BLANK_INDEX) & (ext[:, 2:] != ext[:, :-2])] = 0.0
    return ext, lengths, skip


def _chunks(pairs: int, t_len: int, states: int) -> Iterator[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(1, t_len * states))
    for start in range(0, pairs, step):
        yield slice(start, min(pairs, start + step))


def _start(emit0: np.ndarray) -> np.ndarray:
    """(P, S + 2) scores after the first frame, behind two ``-inf`` columns so that the
    scores one and two states back are plain views (``buf[:, 1:-1]``, ``buf[:, :-2]``)."""
    buf = np.full((emit0.shape[0], emit0.shape[1] + 2), -np.inf)
    buf[:, 2:4] = emit0[:, :2]  # a path starts in the first blank or the first character
    return buf


def _end_states(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The final blank (2L) and the last character (2L - 1, or 2L where L is 0)."""
    return 2 * lengths, np.maximum(2 * lengths - 1, 0)


def batch_log_likelihoods(log_probs: np.ndarray, seq_index: np.ndarray,
                          labels: Sequence[Sequence[int]]) -> np.ndarray:
    """Exact CTC log-likelihoods ``log p(labels[p] | sequence seq_index[p])`` (forward algorithm).

    Args:
        log_probs: (T, N, C) float64 log-probabilities (:func:`ctc_log_probs`).
        seq_index: (P,) int, the sequence each labelling is scored against.
        labels: P labellings, each a sequence of class ids >= 1 (no blanks).

    Returns:
        (P,) float64; ``-inf`` where no alignment fits (too long for T, or a class with
        probability 0).
    """
    t_len = log_probs.shape[0]
    seq = np.asarray(seq_index, dtype=np.int64)
    ext, lengths, skip = _extended(labels)
    out = np.empty(len(labels), dtype=np.float64)
    for part in _chunks(len(labels), t_len, ext.shape[1]):
        emit = log_probs[:, seq[part, None], ext[part]]  # (T, P, S)
        buf, pen = _start(emit[0]), skip[part]
        for t in range(1, t_len):
            step = np.logaddexp(buf[:, 2:], buf[:, 1:-1])
            step = np.logaddexp(step, buf[:, :-2] + pen, out=step)
            np.add(step, emit[t], out=buf[:, 2:])
        alpha = buf[:, 2:]
        rows = np.arange(alpha.shape[0])
        last_blank, last_char = _end_states(lengths[part])
        end = np.logaddexp(alpha[rows, last_blank], alpha[rows, last_char])
        # With L = 0 both end states are the one blank state: do not count it twice.
        out[part] = np.where(lengths[part] == 0, alpha[rows, last_blank], end)
    return out


def ctc_log_likelihood(log_probs: np.ndarray, label_ids: Sequence[int]) -> float:
    """Exact CTC log-likelihood of one labelling (forward algorithm).

    Args:
        log_probs: (T, C) float log-probabilities of one sequence (blank at class 0).
        label_ids: class ids >= 1 of the labelling, without blanks.

    Returns:
        ``log`` of the summed probability of every alignment of ``label_ids``; ``-inf`` if
        there is none.
    """
    lp = np.asarray(log_probs, dtype=np.float64)[:, None, :]
    return float(batch_log_likelihoods(lp, np.zeros(1, np.int64), [list(label_ids)])[0])


def labelling_confidences(log_probs: np.ndarray, labels: Sequence[Sequence[int]]
                          ) -> list[tuple[float, tuple[float, ...]]]:
    """Confidence and per-character probabilities of one labelling per sequence.

    Take the most probable alignment (Viterbi) of ``labels[n]`` in sequence n's softmax
    ``p = exp(log_probs)``. A character's probability is the highest ``p`` of its class over
    the frames aligned to it; the confidence is the mean of those probabilities. For an
    empty labelling it is the mean over all T frames of the blank's probability. For the
    greedy labelling the Viterbi alignment is the per-frame argmax path, so this matches
    :func:`~crnn_onnx.inference.decoder.ctc_greedy_decode`. A labelling with no alignment
    at all gets confidence 0 and character probabilities 0.

    Args:
        log_probs: (T, N, C) float64 log-probabilities (:func:`ctc_log_probs`).
        labels: N labellings, class ids >= 1.

    Returns:
        N pairs ``(confidence, char_probs)``, each value within [0, 1].
    """
    t_len = log_probs.shape[0]
    ext, lengths, skip = _extended(labels)
    char_probs = np.zeros((len(labels), max(1, ext.shape[1] // 2)), dtype=np.float64)
    feasible = np.zeros(len(labels), dtype=bool)
    for part in _chunks(len(labels), t_len, ext.shape[1]):
        seq = np.arange(part.start, part.stop)
        emit = log_probs[:, seq[:, None], ext[part]]  # (T, P, S)
        rows = np.arange(len(seq))
        back = np.zeros(emit.shape, dtype=np.int64)  # 0 stay, 1 from s - 1, 2 from s - 2
        buf, pen = _start(emit[0]), skip[part]
        for t in range(1, t_len):
            stay, one, two = buf[:, 2:], buf[:, 1:-1], buf[:, :-2] + pen
            best = np.maximum(stay, one)
            np.greater(one, stay, out=back[t])  # ties keep the earlier option
            back[t][two > best] = 2
            np.maximum(best, two, out=best)
            np.add(best, emit[t], out=buf[:, 2:])
        alpha = buf[:, 2:]
        last_blank, last_char = _end_states(lengths[part])
        state = np.where(alpha[rows, last_char] > alpha[rows, last_blank], last_char, last_blank)
        feasible[part] = np.isfinite(alpha[rows, state])
        path = np.empty((t_len, len(seq)), dtype=np.int64)
        for t in range(t_len - 1, -1, -1):
            path[t] = state
            state = state - back[t, rows, state]
        frame_p = np.exp(np.take_along_axis(emit, path[:, :, None], 2)[:, :, 0])  # (T, P)
        on_char = path % 2 == 1
        t_idx, p_idx = np.nonzero(on_char)
        np.maximum.at(char_probs, (seq[p_idx], path[t_idx, p_idx] // 2), frame_p[t_idx, p_idx])
    blank_mean = np.exp(log_probs[:, :, BLANK_INDEX]).mean(axis=0)
    results: list[tuple[float, tuple[float, ...]]] = []
    for n, length in enumerate(lengths.tolist()):
        if length == 0:
            results.append((_unit(blank_mean[n]), ()))
        elif not feasible[n]:
            results.append((0.0, (0.0,) * length))
        else:
            probs = tuple(_unit(p) for p in char_probs[n, :length])
            results.append((_unit(sum(probs) / length), probs))
    return results


def _unit(value: float | np.floating) -> float:
    """A Python float clipped to [0, 1] (rounding can overshoot by an ulp)."""
    return min(1.0, max(0.0, float(value)))
