"""CTC beam search, free and lexicon-constrained: agreement with greedy decoding and brute
force, allowlists, the lexicon fallback, and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis_budget import examples

from crnn_onnx.config import DEFAULT_CHARSET
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.alignment import ctc_log_likelihood, ctc_log_probs
from crnn_onnx.inference.beam import ctc_beam_decode
from crnn_onnx.inference.charmask import class_mask
from crnn_onnx.inference.decoder import Decoded, ctc_greedy_decode
from crnn_onnx.inference.lexicon import Lexicon

ABC = tuple("abc")
FULL = tuple(DEFAULT_CHARSET)
DIGITS = "0123456789"


def _one_hot_logits(ids: list[int], num_classes: int = 4) -> np.ndarray:
    """(T, 1, C) logits whose argmax per frame is the given class ids (10 vs 0)."""
    logits = np.zeros((len(ids), 1, num_classes), dtype=np.float32)
    logits[np.arange(len(ids)), 0, ids] = 10.0
    return logits


def _likelihood(logits: np.ndarray, n: int, text: str, charset: tuple[str, ...]) -> float:
    ids = [charset.index(ch) + 1 for ch in text]
    return ctc_log_likelihood(ctc_log_probs(logits)[:, n], ids)


@st.composite
def _peaky(draw: st.DrawFn, num_classes: int, margin: float = 10.0,
           winners: tuple[int, ...] | None = None, max_t: int = 30) -> np.ndarray:
    """(T, N, C) float32 logits where one class per frame (from ``winners``, default any)
    leads every other class by at least ``margin``."""
    t_len, n = draw(st.integers(1, max_t)), draw(st.integers(1, 4))
    logits = draw(hnp.arrays(np.float32, (t_len, n, num_classes),
                             elements=st.floats(-3, 3, width=32)))
    choices = winners if winners is not None else tuple(range(num_classes))
    won = draw(hnp.arrays(np.int64, (t_len, n), elements=st.sampled_from(choices)))
    np.put_along_axis(logits, won[:, :, None], 3.0 + margin, axis=2)
    return logits


def _random_logits(num_classes: int, low: float = -8.0, high: float = 8.0, max_t: int = 12
                   ) -> st.SearchStrategy[np.ndarray]:
    shapes = st.tuples(st.integers(1, max_t), st.integers(1, 3), st.just(num_classes))
    return hnp.arrays(np.float32, shapes, elements=st.floats(low, high, width=32))


def _assert_same_results(got: list[Decoded], want: list[Decoded]) -> None:
    assert [r.text for r in got] == [r.text for r in want]
    for g, w in zip(got, want, strict=True):
        assert g.confidence == pytest.approx(w.confidence, rel=1e-5)
        np.testing.assert_allclose(g.char_probs, w.char_probs, rtol=1e-5)


# (frame class ids, expected text); 0 is the blank.
CASES = [
    ([1, 1, 0, 1], "aa"),  # a repeat separated by a blank stays two characters
    ([1, 1, 1, 1], "a"),  # repeats merge
    ([0, 0, 0, 0], ""),
    ([1, 2, 3, 0], "abc"),
    ([2, 0, 2, 2], "bb"),
    ([3], "c"),  # a single frame
]


@pytest.mark.parametrize(("ids", "expected"), CASES)
def test_clear_inputs_read_like_greedy(ids: list[int], expected: str) -> None:
    logits = _one_hot_logits(ids)
    (result,) = ctc_beam_decode(logits, ABC)
    assert result.text == expected
    _assert_same_results([result], ctc_greedy_decode(logits, ABC))


def test_beam_finds_the_labelling_greedy_misses() -> None:
    # Each frame: blank 0.4, a 0.35, b 0.25. The best path is blank-blank (0.16), but the
    # alignments of "a" (aa, a-, -a) sum to 0.4025.
    probs = np.array([[0.4, 0.35, 0.25, 1e-9]] * 2)
    logits = np.log(probs)[:, None, :].astype(np.float32)
    assert ctc_greedy_decode(logits, ABC)[0].text == ""
    (result,) = ctc_beam_decode(logits, ABC, beam_width=3)
    assert result.text == "a"
    assert result.char_probs == pytest.approx((0.35,))  # its Viterbi frame
    assert result.confidence == pytest.approx(0.35)


@settings(max_examples=examples(80))
@given(_peaky(6), st.integers(1, 12))
def test_beam_equals_greedy_when_one_class_dominates_every_frame(logits: np.ndarray,
                                                                 beam_width: int) -> None:
    charset = tuple("abcde")
    _assert_same_results(ctc_beam_decode(logits, charset, beam_width=beam_width),
                         ctc_greedy_decode(logits, charset))


@settings(max_examples=examples(80))
@given(_random_logits(4), st.integers(1, 5))
def test_beam_text_is_never_less_likely_than_greedy(logits: np.ndarray, beam_width: int
                                                    ) -> None:
    beam = ctc_beam_decode(logits, ABC, beam_width=beam_width)
    for n, (b, g) in enumerate(zip(beam, ctc_greedy_decode(logits, ABC), strict=True)):
        assert _likelihood(logits, n, b.text, ABC) >= _likelihood(logits, n, g.text, ABC) - 1e-9
        assert 0.0 <= b.confidence <= 1.0
        assert len(b.char_probs) == len(b.text)


@settings(max_examples=examples(40))
@given(_random_logits(4))
def test_batch_decodes_like_each_sequence_alone(logits: np.ndarray) -> None:
    lex = Lexicon.from_words(["ab", "ba", "cab", "c"], ABC)
    for lexicon in (None, lex):
        whole = ctc_beam_decode(logits, ABC, lexicon=lexicon)
        alone = [ctc_beam_decode(logits[:, n:n + 1], ABC, lexicon=lexicon)[0]
                 for n in range(logits.shape[1])]
        assert whole == alone


@settings(max_examples=examples(40))
@given(_random_logits(len(FULL) + 1, max_t=26))
def test_allowlist_of_the_whole_charset_changes_nothing(logits: np.ndarray) -> None:
    everything = class_mask(FULL, allowlist=DEFAULT_CHARSET)
    assert ctc_beam_decode(logits, FULL, mask=everything) == ctc_beam_decode(logits, FULL)


_LETTERS_AND_BLANK = (0, *range(11, len(FULL) + 1))
_DIGITS_AND_BLANK = tuple(range(11))


@settings(max_examples=examples(40))
@given(_peaky(len(FULL) + 1, margin=4.0, winners=_LETTERS_AND_BLANK, max_t=26))
def test_digit_allowlist_reads_only_digits_from_letters(logits: np.ndarray) -> None:
    digits = class_mask(FULL, allowlist=DIGITS)
    for result in ctc_beam_decode(logits, FULL, mask=digits):
        assert set(result.text) <= set(DIGITS)


@settings(max_examples=examples(40))
@given(_peaky(len(FULL) + 1, winners=_DIGITS_AND_BLANK, max_t=26))
def test_digit_allowlist_reads_digits_like_greedy(logits: np.ndarray) -> None:
    digits = class_mask(FULL, allowlist=DIGITS)
    masked = ctc_beam_decode(logits, FULL, mask=digits)
    greedy = ctc_greedy_decode(logits, FULL)
    assert [r.text for r in masked] == [r.text for r in greedy]
    for m, g in zip(masked, greedy, strict=True):
        # The letters' share is renormalised onto the allowed classes: never less sure.
        assert m.confidence >= g.confidence - 1e-6


_small_lexicons = st.lists(st.text("abc", min_size=1, max_size=4), min_size=1, max_size=30)


@settings(max_examples=examples(80))
@given(_random_logits(4, -10, 10), _small_lexicons, st.integers(1, 6))
def test_lexicon_output_is_always_a_lexicon_word(logits: np.ndarray, words: list[str],
                                                 beam_width: int) -> None:
    lex = Lexicon.from_words(words, ABC)
    for result in ctc_beam_decode(logits, ABC, beam_width=beam_width, lexicon=lex):
        assert result.text in lex
        assert len(result.char_probs) == len(result.text)
        assert 0.0 <= result.confidence <= 1.0


@settings(max_examples=examples(80))
@given(_random_logits(4, -3, 3, max_t=8), _small_lexicons)
def test_lexicon_word_is_the_most_likely_word(logits: np.ndarray, words: list[str]) -> None:
    # Logits within [-3, 3] keep every class above the pruning threshold, and the beam is
    # wider than the trie has nodes: nothing is pruned, so the search is exact.
    lex = Lexicon.from_words(words, ABC)
    results = ctc_beam_decode(logits, ABC, beam_width=200, lexicon=lex)
    for n, result in enumerate(results):
        scores = {w: _likelihood(logits, n, w, ABC) for w in lex.words}
        assert result.text in lex
        assert scores[result.text] >= max(scores.values()) - 1e-9


def test_lexicon_falls_back_to_the_most_likely_near_word(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    # The first frame is a clear 'b', which starts no word, and every other class there is
    # below the pruning threshold: every beam leaves the trie, so the words nearest to the
    # reading "bab" ("ab", "cab") are scored exactly instead, and "cab" is the more likely.
    logits = np.zeros((3, 1, 4), dtype=np.float32)
    logits[0, 0] = [-5, -5, 10, 0]  # b; c second (p ~ 5e-5), blank and a far behind
    logits[1, 0] = [0, 10, 0, 0]  # a
    logits[2, 0] = [0, 0, 10, 0]  # b
    lex = Lexicon.from_words(["ab", "cab", "ccc"], ABC)
    looked_up: list[list[str]] = []
    nearest = Lexicon.nearest

    def spy(self: Lexicon, texts: list[str], limit: int) -> list[list[str]]:
        looked_up.append(list(texts))
        return nearest(self, texts, limit)

    monkeypatch.setattr(Lexicon, "nearest", spy)
    (result,) = ctc_beam_decode(logits, ABC, lexicon=lex)
    assert looked_up == [["bab"]]
    assert result.text == "cab"
    assert _likelihood(logits, 0, "cab", ABC) > _likelihood(logits, 0, "ab", ABC)
    assert result.char_probs[0] < 1e-4  # 'c' was never the winner of its frame


def test_lexicon_word_too_long_for_the_frames_is_still_returned() -> None:
    lex = Lexicon.from_words(["abcabc"], ABC)
    (result,) = ctc_beam_decode(_one_hot_logits([1, 2]), ABC, lexicon=lex)
    assert result == Decoded("abcabc", 0.0, (0.0,) * 6)


def test_mask_removes_lexicon_words_it_disallows() -> None:
    lex = Lexicon.from_words(["a1", "42", "zz"], FULL)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(10, 5, len(FULL) + 1)).astype(np.float32) * 4
    digits = class_mask(FULL, allowlist=DIGITS)
    assert {r.text for r in ctc_beam_decode(logits, FULL, lexicon=lex, mask=digits)} == {"42"}
    with pytest.raises(CRNNError, match="every lexicon word holds a character the mask"):
        ctc_beam_decode(logits, FULL, lexicon=lex, mask=class_mask(FULL, allowlist="xy"))


def test_empty_batch() -> None:
    assert ctc_beam_decode(np.zeros((5, 0, 4), np.float32), ABC) == []


@pytest.mark.parametrize(
    ("logits", "kwargs", "message"),
    [
        (np.zeros((5, 1, 4)), {"charset": tuple("ab")}, "4 classes but the charset has 2"),
        (np.zeros((5, 4)), {}, r"\(T, N, C\)"),
        (np.zeros((0, 1, 4)), {}, "no frames"),
        (np.full((2, 1, 4), np.nan), {}, "NaN or infinite values"),
        (np.zeros((2, 1, 4), dtype=complex), {}, "real-valued"),
        (np.zeros((2, 1, 4)), {"beam_width": 0}, "beam_width must be a whole number >= 1"),
        (np.zeros((2, 1, 4)), {"beam_width": 2.5}, "beam_width"),
        (np.zeros((2, 1, 4)), {"beam_width": True}, "beam_width"),
        (np.zeros((2, 1, 4)), {"mask": np.ones(3, bool)}, r"mask must be a \(4,\) bool"),
        (np.zeros((2, 1, 4)), {"lexicon": Lexicon.from_words(["ab"], tuple("abd"))},
         "lexicon was built for a different charset"),
    ],
)
def test_bad_input_is_refused(logits: np.ndarray, kwargs: dict, message: str) -> None:
    charset = kwargs.pop("charset", ABC)
    with pytest.raises(CRNNError, match=message):
        ctc_beam_decode(logits, charset, **kwargs)
