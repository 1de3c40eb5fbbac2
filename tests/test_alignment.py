"""Exact CTC scores: the forward algorithm against brute force, and Viterbi confidences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis_budget import examples

from crnn_onnx.inference import alignment
from crnn_onnx.inference.alignment import (
    batch_log_likelihoods,
    ctc_log_likelihood,
    ctc_log_probs,
    labelling_confidences,
)
from crnn_onnx.inference.decoder import ctc_greedy_decode


def _collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    """The labelling an alignment spells: repeats merged, blanks (0) dropped."""
    return tuple(c for i, c in enumerate(path) if c != 0 and (i == 0 or path[i - 1] != c))


def _brute_force(log_probs: np.ndarray) -> dict[tuple[int, ...], float]:
    """labelling -> summed probability of its alignments, by enumerating all C**T paths."""
    totals: dict[tuple[int, ...], float] = {}
    t_len, num_classes = log_probs.shape
    for path in itertools.product(range(num_classes), repeat=t_len):
        p = float(np.exp(sum(log_probs[t, c] for t, c in enumerate(path))))
        totals[_collapse(path)] = totals.get(_collapse(path), 0.0) + p
    return totals


_small_logits = st.integers(1, 5).flatmap(lambda t: hnp.arrays(
    np.float32, (t, 1, 3), elements=st.floats(-5, 5, width=32)))


@settings(max_examples=examples(60))
@given(_small_logits)
def test_forward_matches_brute_force_enumeration(logits: np.ndarray) -> None:
    log_probs = ctc_log_probs(logits)[:, 0]
    totals = _brute_force(log_probs)
    assert sum(totals.values()) == pytest.approx(1.0)
    for labels, p in totals.items():
        assert np.exp(ctc_log_likelihood(log_probs, labels)) == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize(
    ("t_len", "labels"),
    [
        (2, (1, 1)),  # a repeat needs a blank between its copies: 3 frames
        (2, (1, 2, 1)),  # longer than T
    ],
)
def test_labelling_without_alignment_has_zero_likelihood(t_len: int, labels: tuple[int, ...]
                                                        ) -> None:
    log_probs = ctc_log_probs(np.zeros((t_len, 1, 3)))[:, 0]
    assert ctc_log_likelihood(log_probs, labels) == -np.inf
    ((confidence, char_probs),) = labelling_confidences(log_probs[:, None], [labels])
    assert confidence == 0.0
    assert char_probs == (0.0,) * len(labels)


def test_masked_class_gets_zero_probability() -> None:
    mask = np.array([True, True, False])
    log_probs = ctc_log_probs(np.zeros((3, 1, 3)), mask)
    assert np.isneginf(log_probs[:, 0, 2]).all()
    np.testing.assert_allclose(np.exp(log_probs[:, 0, :2]), 0.5)
    assert ctc_log_likelihood(log_probs[:, 0], (2,)) == -np.inf


def test_batch_scores_mixed_lengths_and_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    log_probs = ctc_log_probs(rng.normal(size=(7, 3, 4)) * 2)
    labels = [(), (1,), (2, 2), (1, 2, 3), (3,), (1, 1, 1)]
    seq = np.array([0, 1, 2, 0, 1, 2])
    single = [ctc_log_likelihood(log_probs[:, s], lab) for s, lab in zip(seq, labels, strict=True)]
    np.testing.assert_allclose(batch_log_likelihoods(log_probs, seq, labels), single)
    monkeypatch.setattr(alignment, "_CHUNK_ELEMENTS", 1)  # one pair per chunk
    np.testing.assert_allclose(batch_log_likelihoods(log_probs, seq, labels), single)


def _peaky(draw: st.DrawFn, num_classes: int) -> np.ndarray:
    """(T, N, C) float32 logits with one class per frame ahead of the rest by >= 2."""
    t_len, n = draw(st.integers(1, 30)), draw(st.integers(1, 4))
    base = draw(hnp.arrays(np.float32, (t_len, n, num_classes),
                           elements=st.floats(-3, 3, width=32)))
    winners = draw(hnp.arrays(np.int64, (t_len, n), elements=st.integers(0, num_classes - 1)))
    np.put_along_axis(base, winners[:, :, None], 9.0, axis=2)  # 9 beats 3 by at least 6
    return base


@settings(max_examples=examples(100))
@given(st.data())
def test_viterbi_confidence_of_greedy_text_equals_greedy_confidence(data: st.DataObject
                                                                    ) -> None:
    charset = tuple("abcd")
    logits = _peaky(data.draw, len(charset) + 1)
    greedy = ctc_greedy_decode(logits, charset)
    labels = [[charset.index(ch) + 1 for ch in r.text] for r in greedy]
    for r, (confidence, char_probs) in zip(
            greedy, labelling_confidences(ctc_log_probs(logits), labels), strict=True):
        assert confidence == pytest.approx(r.confidence, rel=1e-5)
        np.testing.assert_allclose(char_probs, r.char_probs, rtol=1e-5)


def test_confidence_takes_best_frame_of_each_character() -> None:
    probs = np.array([
        [0.1, 0.6, 0.3],  # 'a'
        [0.1, 0.8, 0.1],  # 'a' again, stronger: the character takes 0.8
        [0.7, 0.2, 0.1],  # blank
        [0.2, 0.1, 0.7],  # 'b'
    ])
    log_probs = np.log(probs)[:, None, :]
    ((confidence, char_probs),) = labelling_confidences(log_probs, [(1, 2)])
    np.testing.assert_allclose(char_probs, [0.8, 0.7])
    assert confidence == pytest.approx(0.75)
    ((empty_conf, empty_probs),) = labelling_confidences(log_probs, [()])
    assert empty_probs == ()
    assert empty_conf == pytest.approx(probs[:, 0].mean())
