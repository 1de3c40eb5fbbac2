"""CTC greedy decoding: properties, hand-made cases, equivalence with upstream's loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis_budget import examples

from crnn_onnx.config import BLANK_INDEX
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.decoder import Decoded, ctc_greedy_decode, frame_max_probs

CHARSET = tuple("abc")


def _one_hot_logits(sequences: list[list[int]], num_classes: int = 4) -> np.ndarray:
    """(T, N, C) logits whose argmax per frame is the given class ids (10 vs 0)."""
    t_len = len(sequences[0])
    logits = np.zeros((t_len, len(sequences), num_classes), dtype=np.float32)
    for n, seq in enumerate(sequences):
        for t, cls in enumerate(seq):
            logits[t, n, cls] = 10.0
    return logits


def upstream_best_path(logits: np.ndarray, charset: tuple[str, ...]) -> list[str]:
    """Plain-loop re-implementation of upstream CRNN-TextRec best_path_decode."""
    texts = []
    for n in range(logits.shape[1]):
        seq = logits[:, n, :].astype(np.float64)
        log_probs = seq - np.log(np.exp(seq - seq.max(1, keepdims=True)).sum(1, keepdims=True))
        best = [int(np.argmax(frame)) for frame in log_probs]
        chars, prev = [], None
        for cls in best:
            if cls != prev and cls != 0:
                chars.append(charset[cls - 1])
            prev = cls
        texts.append("".join(chars))
    return texts


# Hand-made cases: (frame class ids, expected text); 0 is the blank.
CASES = [
    ([1, 1, 0, 1], "aa"),  # "aa-a": a repeat separated by a blank stays two characters
    ([1, 1, 1, 1], "a"),  # repeats merge
    ([0, 0, 0, 0], ""),  # all blank
    ([1, 2, 3, 0], "abc"),
    ([0, 3, 3, 0], "c"),
    ([2, 0, 2, 2], "bb"),
]


@pytest.mark.parametrize(("ids", "expected"), CASES)
def test_hand_made_cases(ids: list[int], expected: str) -> None:
    (result,) = ctc_greedy_decode(_one_hot_logits([ids]), CHARSET)
    assert result.text == expected
    assert len(result.char_probs) == len(expected)


def test_batch_decodes_each_sequence() -> None:
    logits = _one_hot_logits([[1, 1, 0, 1], [0, 0, 0, 0], [3, 2, 1, 1]])
    assert [r.text for r in ctc_greedy_decode(logits, CHARSET)] == ["aa", "", "cba"]


def test_confidence_is_mean_of_run_max_probs() -> None:
    logits = np.zeros((3, 1, 4), dtype=np.float32)
    logits[0, 0] = [0, 2, 0, 0]  # 'a', weaker frame
    logits[1, 0] = [0, 5, 0, 0]  # 'a', same run, stronger: the run takes this one
    logits[2, 0] = [0, 0, 3, 0]  # 'b'
    probs = frame_max_probs(logits)[:, 0]
    (result,) = ctc_greedy_decode(logits, CHARSET)
    assert result.text == "ab"
    np.testing.assert_allclose(result.char_probs, [probs[1], probs[2]], rtol=1e-6)
    assert result.confidence == pytest.approx((probs[1] + probs[2]) / 2, rel=1e-6)


def test_empty_text_confidence_is_mean_blank_probability() -> None:
    logits = np.zeros((2, 1, 4), dtype=np.float32)
    logits[:, 0, BLANK_INDEX] = [4.0, 1.0]
    probs = frame_max_probs(logits)[:, 0]
    (result,) = ctc_greedy_decode(logits, CHARSET)
    assert result == Decoded("", pytest.approx(float(probs.mean()), rel=1e-6), ())


def test_empty_batch_and_errors() -> None:
    assert ctc_greedy_decode(np.zeros((5, 0, 4), np.float32), CHARSET) == []
    with pytest.raises(CRNNError, match="4 classes"):
        ctc_greedy_decode(np.zeros((5, 1, 4), np.float32), tuple("ab"))
    with pytest.raises(CRNNError, match=r"\(T, N, C\)"):
        ctc_greedy_decode(np.zeros((5, 4), np.float32), CHARSET)
    with pytest.raises(CRNNError, match="no frames"):
        ctc_greedy_decode(np.zeros((0, 1, 4), np.float32), CHARSET)


def test_stable_softmax_with_huge_logits() -> None:
    logits = np.full((2, 1, 4), -1e30, dtype=np.float32)
    logits[:, 0, 2] = 1e30
    (result,) = ctc_greedy_decode(logits, CHARSET)
    assert result.text == "b"
    assert result.confidence == 1.0


@st.composite
def _logits(draw: st.DrawFn, *, integral: bool = False) -> tuple[np.ndarray, tuple[str, ...]]:
    """(T, N, C) float32 logits and a charset of C - 1 characters.

    ``integral`` draws whole-number logits: ties are then exact and every other gap is at
    least 1, so argmax over raw logits and over upstream's log_softmax cannot disagree by
    rounding (with arbitrary floats a gap below float32 resolution can vanish in log_softmax).
    """
    size = draw(st.integers(1, 6))
    charset = tuple("xyzw€é"[:size])
    t_len = draw(st.integers(1, 30))
    n = draw(st.integers(0, 5))
    if integral:
        elements = st.integers(-1000, 1000).map(float)
    else:
        elements = st.floats(-1e4, 1e4, width=32, allow_nan=False, allow_infinity=False)
    logits = draw(hnp.arrays(np.float32, (t_len, n, size + 1), elements=elements))
    return logits, charset


@settings(max_examples=examples(150))
@given(_logits())
def test_properties(case: tuple[np.ndarray, tuple[str, ...]]) -> None:
    logits, charset = case
    results = ctc_greedy_decode(logits, charset)
    assert len(results) == logits.shape[1]
    for result in results:
        assert set(result.text) <= set(charset)
        assert len(result.text) <= logits.shape[0]
        assert 0.0 <= result.confidence <= 1.0
        assert len(result.char_probs) == len(result.text)
        assert all(0.0 <= p <= 1.0 for p in result.char_probs)


@settings(max_examples=examples(100))  # drawing arrays element by element costs ~10 ms an example
@given(_logits(integral=True))
def test_matches_upstream_loop(case: tuple[np.ndarray, tuple[str, ...]]) -> None:
    logits, charset = case
    results = ctc_greedy_decode(logits, charset)
    assert [r.text for r in results] == upstream_best_path(logits, charset)


@settings(max_examples=examples(50))
@given(st.integers(1, 40), st.integers(1, 4), st.floats(-50, 50))
def test_all_blank_gives_empty_text(t_len: int, n: int, other: float) -> None:
    logits = np.full((t_len, n, 4), other, dtype=np.float32)
    logits[:, :, BLANK_INDEX] = other + 1.0
    for result in ctc_greedy_decode(logits, CHARSET):
        assert result.text == ""
        assert 0.0 < result.confidence <= 1.0
        assert result.char_probs == ()
