"""Lexicon: normalisation to the charset, file reading, the prefix trie, restriction, search."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from crnn_onnx.config import DEFAULT_CHARSET
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.charmask import class_mask
from crnn_onnx.inference.lexicon import Lexicon, TrieNode

CHARSET = tuple(DEFAULT_CHARSET)


def test_words_are_normalised_like_ground_truth() -> None:
    lex = Lexicon.from_words([" Hello ", "WORLD", "hello", "", "   ", "b2b\t"], CHARSET)
    assert lex.words == ("b2b", "hello", "world")  # sorted, merged, stripped, lower-cased
    assert len(lex) == 3
    assert "hello" in lex
    assert "Hello" not in lex  # membership is of normalised words
    assert 3 not in lex
    assert (lex.skipped, lex.skipped_examples) == (0, ())


def test_unreadable_words_are_skipped_whole_and_counted_once() -> None:
    words = ["don't", "naïve", "ok", "Don't", "e-mail", "a b", "x_y", "C++", "ok!", "fine"]
    lex = Lexicon.from_words(words, CHARSET)
    assert lex.words == ("fine", "ok")  # never truncated to "dont", "nave", ...
    assert lex.skipped == 7  # "don't" and "Don't" are one word once lower-cased
    assert lex.skipped_examples == ("don't", "naïve", "e-mail", "a b", "x_y")


def test_empty_lexicon_is_an_error() -> None:
    with pytest.raises(CRNNError, match=r"^lexicon holds no word the model can read$"):
        Lexicon.from_words(["", "  "], CHARSET)
    with pytest.raises(CRNNError, match=r"\(2 words hold characters outside its charset "
                                        r"0-9a-z, e\.g\. 'Ärger'\)$"):
        Lexicon.from_words(["Ärger", "ß"], CHARSET)


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("Apple\n\n  pear  \r\nkiwi\npëar\n", encoding="utf-8")
    lex = Lexicon.from_file(path, CHARSET)
    assert lex.words == ("apple", "kiwi", "pear")
    assert (lex.skipped, lex.skipped_examples) == (1, ("pëar",))


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match=r"^cannot read lexicon '.*missing\.txt': "):
        Lexicon.from_file(tmp_path / "missing.txt", CHARSET)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(CRNNError, match=r"is not UTF-8 text$"):
        Lexicon.from_file(latin1, CHARSET)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CRNNError, match=r"^lexicon '.*empty\.txt' holds no word"):
        Lexicon.from_file(empty, CHARSET)


def _walk(lex: Lexicon, text: str) -> TrieNode | None:
    node: TrieNode | None = lex.root()
    for ch in text:
        if node is None:
            return None
        node = lex.child(node, ch)
    return node


def test_trie_child_and_is_word() -> None:
    lex = Lexicon.from_words(["car", "card", "care", "cat", "dog"], CHARSET)
    root = lex.root()
    assert lex.prefix(root) == ""
    assert not lex.is_word(root)
    car = _walk(lex, "car")
    assert car is not None
    assert lex.is_word(car)
    assert lex.prefix(car) == "car"
    assert lex.words[car[0]:car[1]] == ("car", "card", "care")
    ca = _walk(lex, "ca")
    assert ca is not None and not lex.is_word(ca)
    assert lex.child(car, "t") is None
    assert _walk(lex, "cx") is None
    assert _walk(lex, "dogs") is None
    assert lex.child(root, "ca") == ca  # a multi-character token moves two levels


@settings(max_examples=examples(80))
@given(st.lists(st.text("abc", min_size=1, max_size=5), min_size=1, max_size=25),
       st.text("abcd", max_size=6))
def test_trie_matches_brute_force(words: list[str], prefix: str) -> None:
    lex = Lexicon.from_words(words, tuple("abcd"))
    node = _walk(lex, prefix)
    having = [w for w in lex.words if w.startswith(prefix)]
    if not having:
        assert node is None
        return
    assert node is not None
    assert list(lex.words[node[0]:node[1]]) == having
    assert lex.prefix(node) == prefix
    assert lex.is_word(node) == (prefix in set(words))


def test_trie_handles_the_highest_code_point() -> None:
    top = chr(0x10FFFF)
    lex = Lexicon.from_words(["a" + top, "a" + top + "b", "ab"], ("a", "b", top))
    node = _walk(lex, "a" + top)
    assert node is not None
    assert lex.words[node[0]:node[1]] == ("a" + top, "a" + top + "b")


def _random_words(count: int, seed: int = 0) -> list[str]:
    """``count`` random lower-case words of 1-12 letters, made without a Python loop per
    character."""
    rng = np.random.default_rng(seed)
    text = (rng.integers(97, 123, size=count * 12, dtype=np.uint8)).tobytes().decode("ascii")
    lengths = rng.integers(1, 13, size=count).tolist()
    return [text[i * 12: i * 12 + n] for i, n in enumerate(lengths)]


def test_a_100k_word_lexicon_builds_and_answers_quickly() -> None:
    words = _random_words(100_000)
    start = time.perf_counter()
    lex = Lexicon.from_words(words, CHARSET)
    built = time.perf_counter() - start
    queries = words[:2000]
    start = time.perf_counter()
    for word in queries:
        node = _walk(lex, word)
        assert node is not None and lex.is_word(node)
    walked = time.perf_counter() - start
    assert built < 1.0, f"building took {built:.2f} s"
    assert walked / sum(map(len, queries)) < 1e-4, f"{walked:.2f} s for {len(queries)} words"


def test_label_ids() -> None:
    lex = Lexicon.from_words(["ab"], tuple("abc"))
    assert lex.label_ids("cab") == (3, 1, 2)
    with pytest.raises(CRNNError, match="cannot be spelled"):
        lex.label_ids("abd")


def test_multi_character_charset_entries() -> None:
    charset = ("a", "ch", "c", "h")
    lex = Lexicon.from_words(["chac", "ah", "x"], charset)
    assert lex.words == ("ah", "chac")
    assert lex.skipped == 1
    assert lex.label_ids("chac") == (2, 1, 3)  # the longer entry first
    assert lex.label_ids("cha") == (2, 1)
    assert Lexicon.from_words(["chh"], charset).label_ids("chh") == (2, 4)


def test_restrict_keeps_words_the_mask_allows() -> None:
    lex = Lexicon.from_words(["abc", "a1", "42", "zz"], CHARSET)
    assert lex.restrict(class_mask(CHARSET)) is lex
    digits = class_mask(CHARSET, allowlist="0123456789")
    only = lex.restrict(digits)
    assert only.words == ("42",)
    assert (only.skipped, only.skipped_examples) == (3, ("a1", "abc", "zz"))
    assert lex.restrict(digits) is only  # cached
    assert lex.restrict(class_mask(CHARSET, blocklist="z")).words == ("42", "a1", "abc")
    with pytest.raises(CRNNError, match=r"every lexicon word holds a character the mask "
                                        r"disallows \(allowed: 7-9"):
        lex.restrict(class_mask(CHARSET, allowlist="789"))


def test_restrict_with_multi_character_entries() -> None:
    charset = ("a", "ch", "c", "h")
    lex = Lexicon.from_words(["chac", "ah", "cc"], charset)
    no_h = lex.restrict(np.array([True, True, True, True, False]))
    assert no_h.words == ("cc", "chac")  # "chac" is still spelled with the "ch" entry
    no_ch_h = lex.restrict(np.array([True, True, False, True, False]))
    assert no_ch_h.words == ("cc",)


def test_nearest_by_edit_distance() -> None:
    lex = Lexicon.from_words(["hello", "help", "world", "yellow", "hell"], CHARSET)
    first, second, empty = lex.nearest(["helo", "wrld", ""], 3)
    assert first == ["hell", "hello", "help"]  # distance 1 each; ties in word order
    assert second[0] == "world"
    assert empty == ["hell", "help", "hello"]  # shortest first
    assert len(lex.nearest(["x"], 50)[0]) == 5
    assert lex.nearest([], 3) == []
