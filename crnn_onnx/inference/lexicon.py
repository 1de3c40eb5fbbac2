"""A word list for lexicon-constrained decoding, searchable as a prefix trie.

The words are kept as one sorted tuple of unique strings. A trie node is the range
``[lo, hi)`` of the words that share its prefix, plus the prefix's length (its depth); a
child narrows the range with two binary searches. This needs no memory beyond the word list,
builds in one sort, and answers a child lookup in O(log n) string comparisons.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.charmask import describe_charset

__all__ = ["Lexicon", "TrieNode"]

#: A trie node: ``(lo, hi, depth)``; the words ``words[lo:hi]`` share their first ``depth``
#: characters, which are the node's prefix.
TrieNode = tuple[int, int, int]

_MAX_EXAMPLES = 5
_MAX_CODE_POINT = 0x10FFFF
_NEAREST_BATCH = 64  # strings per edit-distance matrix: 64 x 100k words is 6.4 MB


def _tokenise(word: str, index: dict[str, int], max_len: int) -> tuple[int, ...] | None:
    """``word`` as class ids of charset entries (``index``: entry -> class), or None."""
    if max_len == 1:
        try:
            return tuple([index[ch] for ch in word])
        except KeyError:
            return None
    # Multi-character entries: a split of the whole word, preferring longer entries first.
    n = len(word)
    tail: list[tuple[int, ...] | None] = [None] * (n + 1)
    tail[n] = ()
    for i in range(n - 1, -1, -1):
        for size in range(min(max_len, n - i), 0, -1):
            cls, rest = index.get(word[i:i + size]), tail[i + size]
            if cls is not None and rest is not None:
                tail[i] = (cls, *rest)
                break
    return tail[0]


class Lexicon:
    """The words a lexicon-constrained decoder may output, normalised to a model's charset.

    Words are normalised the way evaluation normalises ground truth: surrounding whitespace
    stripped and lower-cased. A word that then holds a character outside the charset is
    skipped whole (never truncated); duplicates merge; blank entries are ignored.

    Build one with :meth:`from_words` or :meth:`from_file`.

    Attributes:
        charset: the model's characters; class ``i`` (i >= 1) is ``charset[i - 1]``.
        skipped: how many distinct words were skipped for characters outside the charset.
        skipped_examples: up to 5 of those words, as given (stripped), for a message.
    """

    def __init__(self, words: Sequence[str], charset: Sequence[str], *, skipped: int = 0,
                 skipped_examples: Sequence[str] = ()) -> None:
        """Wrap ``words``; use :meth:`from_words` unless they are already normalised.

        Args:
            words: normalised words of the charset, sorted and unique.
            charset: the model's characters.
            skipped: distinct words left out while normalising.
            skipped_examples: a few of them.
        """
        self._words = tuple(words)
        self.charset = tuple(charset)
        self.skipped = skipped
        self.skipped_examples = tuple(skipped_examples)
        self._index = {entry: i + 1 for i, entry in enumerate(self.charset)}
        self._max_len = max((len(e) for e in self.charset), default=1)
        self._restricted: dict[bytes, Lexicon] = {}

    @classmethod
    def from_words(cls, words: Iterable[str], charset: Sequence[str], *,
                   source: str = "lexicon") -> Lexicon:
        """A lexicon of ``words``, normalised to ``charset``.

        Args:
            words: the words, in any order and case.
            charset: the model's characters.
            source: how messages name the word list (``"lexicon 'words.txt'"``).

        Raises:
            CRNNError: no word is left that the model can read.
        """
        index = {entry: i + 1 for i, entry in enumerate(charset)}
        max_len = max((len(e) for e in charset), default=1)
        single = set(charset) if max_len == 1 else None
        kept: set[str] = set()
        rejected: set[str] = set()
        examples: list[str] = []
        for raw in words:
            stripped = raw.strip()
            word = stripped.lower()
            if not word or word in kept or word in rejected:
                continue
            readable = (single.issuperset(word) if single is not None
                        else _tokenise(word, index, max_len) is not None)
            if readable:
                kept.add(word)
            else:
                rejected.add(word)
                if len(examples) < _MAX_EXAMPLES:
                    examples.append(stripped)
        if not kept:
            why = (f" ({len(rejected)} words hold characters outside its charset "
                   f"{describe_charset(charset)}, e.g. {examples[0]!r})" if rejected else "")
            raise CRNNError(f"{source} holds no word the model can read{why}")
        return cls(sorted(kept), charset, skipped=len(rejected), skipped_examples=examples)

    @classmethod
    def from_file(cls, path: str | Path, charset: Sequence[str]) -> Lexicon:
        """A lexicon read from a UTF-8 text file with one word per line.

        Blank lines and whitespace around words are ignored; see :meth:`from_words`.

        Raises:
            CRNNError: the file cannot be read, is not UTF-8, or holds no readable word.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise CRNNError(f"cannot read lexicon {str(path)!r}: {err.strerror or err}") from None
        except UnicodeDecodeError:
            raise CRNNError(f"lexicon {str(path)!r} is not UTF-8 text") from None
        return cls.from_words(text.splitlines(), charset, source=f"lexicon {str(path)!r}")

    @property
    def words(self) -> tuple[str, ...]:
        """The normalised words, sorted by code point."""
        return self._words

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        """Whether ``word`` (already normalised) is one of the words."""
        if not isinstance(word, str):
            return False
        i = bisect_left(self._words, word)
        return i < len(self._words) and self._words[i] == word

    def __repr__(self) -> str:
        return f"Lexicon({len(self._words)} words, {self.skipped} skipped)"

    # The trie ---------------------------------------------------------------------------

    def root(self) -> TrieNode:
        """The node of the empty prefix (every word)."""
        return (0, len(self._words), 0)

    def child(self, node: TrieNode, token: str) -> TrieNode | None:
        """The node of ``node``'s prefix followed by ``token``, or None if no word has it.

        Args:
            node: a node of this lexicon.
            token: a non-empty charset entry (usually one character).
        """
        lo, hi, depth = node
        words = self._words
        prefix = words[lo][:depth] + token
        new_lo = bisect_left(words, prefix, lo, hi)
        if new_lo == hi or not words[new_lo].startswith(prefix):
            return None
        # Every string that starts with ``prefix`` sorts below ``prefix`` with its last
        # character incremented, and every other string in the range sorts at or above it.
        last = ord(prefix[-1])
        if last < _MAX_CODE_POINT:
            new_hi = bisect_left(words, prefix[:-1] + chr(last + 1), new_lo, hi)
        else:
            size = len(prefix)
            new_hi = bisect_right(words, prefix, new_lo, hi, key=lambda w: w[:size])
        return (new_lo, new_hi, depth + len(token))

    def is_word(self, node: TrieNode) -> bool:
        """Whether ``node``'s prefix is itself a word (it sorts first in its range)."""
        return len(self._words[node[0]]) == node[2]

    def prefix(self, node: TrieNode) -> str:
        """The characters that lead from the root to ``node``."""
        return self._words[node[0]][: node[2]]

    # Use by the decoders ------------------------------------------------------------------

    def label_ids(self, word: str) -> tuple[int, ...]:
        """``word`` as class ids (class ``i`` is ``charset[i - 1]``).

        Raises:
            CRNNError: ``word`` cannot be spelled with the charset.
        """
        ids = _tokenise(word, self._index, self._max_len)
        if ids is None:
            raise CRNNError(f"the word {word!r} cannot be spelled with the model's charset")
        return ids

    def nearest(self, texts: Sequence[str], limit: int) -> list[list[str]]:
        """For each of ``texts``, up to ``limit`` words closest by edit distance.

        Args:
            texts: the strings to look up.
            limit: words returned per string (>= 1).

        Returns:
            One list per string: closest first, ties in word order.
        """
        found: list[list[str]] = []
        limit = min(limit, len(self._words))
        for start in range(0, len(texts), _NEAREST_BATCH):
            queries = list(texts[start : start + _NEAREST_BATCH])
            # Distances above 254 saturate; such words are never among the nearest few.
            dist = process.cdist(queries, self._words, scorer=Levenshtein.distance,
                                 dtype=np.uint8, score_cutoff=254, workers=1)
            for row in dist:
                part = np.argpartition(row, limit - 1)[:limit]
                order = part[np.lexsort((part, row[part]))]
                found.append([self._words[i] for i in order.tolist()])
        return found

    def restrict(self, mask: np.ndarray) -> Lexicon:
        """The words that use only classes ``mask`` allows (cached per mask).

        Args:
            mask: (C,) bool, True where a class may be emitted (see
                :func:`~crnn_onnx.inference.charmask.class_mask`).

        Returns:
            This lexicon when every class is allowed; otherwise a lexicon of the remaining
            words, whose ``skipped`` and ``skipped_examples`` describe the words left out.

        Raises:
            CRNNError: every word holds a character that ``mask`` disallows.
        """
        m = np.asarray(mask, dtype=bool)
        if m[1:].all():
            return self
        key = m.tobytes()
        cached = self._restricted.get(key)
        if cached is not None:
            return cached
        allowed = [e for e, ok in zip(self.charset, m[1:], strict=True) if ok]
        if self._max_len == 1:
            blocked = {e for e, ok in zip(self.charset, m[1:], strict=True) if not ok}
            kept = [w for w in self._words if blocked.isdisjoint(w)]
        else:
            index = {e: self._index[e] for e in allowed}
            kept = [w for w in self._words if _tokenise(w, index, self._max_len) is not None]
        if not kept:
            raise CRNNError(
                f"every lexicon word holds a character the mask disallows (allowed: "
                f"{describe_charset(allowed) or 'none'}; e.g. {self._words[0]!r})"
            )
        kept_set = set(kept)
        examples = list(islice((w for w in self._words if w not in kept_set), _MAX_EXAMPLES))
        result = Lexicon(kept, self.charset, skipped=len(self._words) - len(kept),
                         skipped_examples=examples)
        self._restricted[key] = result
        return result
