"""Allowlists and blocklists: which classes may be emitted, and masked logits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis_budget import examples

from crnn_onnx.config import BLANK_INDEX, DEFAULT_CHARSET
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.charmask import (
    MASKED_LOGIT,
    check_mask,
    class_mask,
    describe_charset,
    mask_logits,
)
from crnn_onnx.inference.decoder import ctc_greedy_decode, frame_max_probs

CHARSET = tuple(DEFAULT_CHARSET)


def _allowed(mask: np.ndarray) -> str:
    return "".join(ch for ch, ok in zip(CHARSET, mask[1:], strict=True) if ok)


# (allowlist, blocklist, the characters left)
CASES = [
    (None, None, DEFAULT_CHARSET),  # nothing given: everything
    ("0123456789", None, "0123456789"),
    ("9a0a", None, "09a"),  # order and repeats do not matter
    (None, "aeiou", "".join(ch for ch in DEFAULT_CHARSET if ch not in "aeiou")),
    ("abc123", "b2", "13ac"),  # allow minus block
    ("abc", "abc", ""),  # nothing but the blank: every crop reads as empty
    (None, "", DEFAULT_CHARSET),  # an empty blocklist blocks nothing
]


@pytest.mark.parametrize(("allowlist", "blocklist", "left"), CASES)
def test_class_mask_allows_what_is_asked(allowlist: str | None, blocklist: str | None,
                                         left: str) -> None:
    mask = class_mask(CHARSET, allowlist, blocklist)
    assert mask.shape == (len(CHARSET) + 1,)
    assert mask.dtype == np.bool_
    assert mask[BLANK_INDEX]
    assert _allowed(mask) == "".join(sorted(left))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allowlist": "aA!"}, r"^allowlist holds characters the model cannot read: 'A', '!' "
                               r"\(its charset: 0-9a-z\)$"),
        ({"blocklist": "xyZ"}, r"^blocklist holds characters .*: 'Z' "),
        ({"allowlist": "ABCDEFGHIJK"}, r"'H' and 3 more \("),  # long lists are cut
        ({"allowlist": ""}, r"^allowlist is empty"),
    ],
)
def test_class_mask_refuses_what_the_model_cannot_read(kwargs: dict[str, str], message: str
                                                       ) -> None:
    with pytest.raises(CRNNError, match=message) as err:
        class_mask(CHARSET, **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("charset", "summary"),
    [
        (CHARSET, "0-9a-z"),
        (tuple("abxyz"), "abx-z"),  # runs of two stay spelled out
        (tuple("a€é"), "a€é"),
        (("ch", "a", "b", "c"), "cha-c"),  # multi-character entries are never part of a run
    ],
)
def test_describe_charset(charset: tuple[str, ...], summary: str) -> None:
    assert describe_charset(charset) == summary


def test_describe_charset_is_cut_when_long() -> None:
    text = describe_charset(tuple("acegikmoqsuwy" * 3), limit=20)
    assert len(text) == 20
    assert text.endswith("...")


def test_mask_logits_is_a_finite_float32_copy() -> None:
    logits = np.arange(2 * 1 * 4, dtype=np.float64).reshape(2, 1, 4)
    mask = np.array([True, False, True, False])
    masked = mask_logits(logits, mask)
    assert masked.dtype == np.float32
    assert np.isfinite(masked).all()
    assert (masked[:, :, [1, 3]] == MASKED_LOGIT).all()
    np.testing.assert_array_equal(masked[:, :, [0, 2]], logits[:, :, [0, 2]])
    assert logits[0, 0, 1] == 1.0  # the input is untouched
    same_dtype = logits.astype(np.float32)
    assert mask_logits(same_dtype, mask) is not same_dtype


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.ones(3, dtype=bool), r"mask must be a \(4,\) bool array"),
        (np.ones(4, dtype=np.int64), "got int64"),
        (np.array([False, True, True, True]), "must allow the blank"),
    ],
)
def test_bad_masks_are_refused(mask: np.ndarray, message: str) -> None:
    with pytest.raises(CRNNError, match=message):
        mask_logits(np.zeros((2, 1, 4), np.float32), mask)
    with pytest.raises(CRNNError, match=message):
        check_mask(mask, 4)


def test_mask_logits_needs_three_dimensions() -> None:
    with pytest.raises(CRNNError, match=r"\(T, N, C\)"):
        mask_logits(np.zeros((2, 4), np.float32), np.ones(4, dtype=bool))


@settings(max_examples=examples(60))
@given(
    hnp.arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 3), st.just(5)),
               elements=st.floats(-1e4, 1e4, width=32)),
    st.text("wxyz", min_size=1, max_size=4),
)
def test_greedy_on_masked_logits_emits_only_allowed_characters(logits: np.ndarray,
                                                               allowlist: str) -> None:
    charset = tuple("wxyz")
    masked = mask_logits(logits, class_mask(charset, allowlist))
    assert frame_max_probs(masked).max() <= 1.0
    for result in ctc_greedy_decode(masked, charset):
        assert set(result.text) <= set(allowlist)
