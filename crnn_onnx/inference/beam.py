"""CTC beam search decoding, free or restricted to the words of a lexicon, in pure numpy.

Without a lexicon this is CTC prefix beam search (Hannun et al., 2014): every prefix keeps
the probability of its alignments ending in a blank and ending in its last character, equal
prefixes merge, and a repeated character needs a blank between its copies. With a
:class:`~crnn_onnx.inference.lexicon.Lexicon` it is word beam search for one word per crop:
a prefix may only grow along the lexicon's trie, and the answer is always a lexicon word.

The numpy part (log-softmax, masking, per-frame candidate pruning, skipping frames that
cannot change the ranking) runs over the whole batch; the beam bookkeeping is Python, per
sequence, over the frames and candidates left.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crnn_onnx.config import BLANK_INDEX
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.alignment import (
    batch_log_likelihoods,
    ctc_log_probs,
    labelling_confidences,
)
from crnn_onnx.inference.charmask import check_mask
from crnn_onnx.inference.decoder import Decoded, check_logits
from crnn_onnx.inference.lexicon import Lexicon, TrieNode

__all__ = ["FALLBACK_WORDS", "MAX_CANDIDATES", "PRUNE_PROB", "ctc_beam_decode"]

#: A class below this softmax probability in a frame is not tried as an extension there.
PRUNE_PROB = 1e-4
#: At most this many classes (the most probable) are tried per frame.
MAX_CANDIDATES = 8
#: Words nearest (by edit distance) to the free reading that are scored exactly when no
#: beam ends on a lexicon word.
FALLBACK_WORDS = 30

# One frame for the beam loop: the blank's probability (0 when pruned) and the
# (class, probability) pairs of the character candidates.
_Frame = tuple[float, list[tuple[int, float]]]


def _candidate_frames(log_probs: np.ndarray) -> list[list[_Frame]]:
    """Per sequence, the frames the beam loop must visit, with their candidate classes.

    A frame keeps the classes with probability >= :data:`PRUNE_PROB` (at most
    :data:`MAX_CANDIDATES`, and always its most probable one). A frame whose only candidate
    is the same single class as the previous frame's is dropped: after the first such frame
    every beam ends in that class (or in a blank), so repeating it scales every beam by the
    same factor and cannot change their order.
    """
    probs = np.exp(log_probs).transpose(1, 0, 2)  # (N, T, C)
    top = probs.argmax(axis=2)
    keep = probs >= PRUNE_PROB
    np.put_along_axis(keep, top[:, :, None], True, axis=2)
    if probs.shape[2] > MAX_CANDIDATES:
        kth = -np.partition(-probs, MAX_CANDIDATES - 1, axis=2)[:, :, MAX_CANDIDATES - 1]
        keep &= probs >= kth[:, :, None]
    single = keep.sum(axis=2) == 1
    repeat = np.zeros(single.shape, dtype=bool)
    repeat[:, 1:] = single[:, 1:] & single[:, :-1] & (top[:, 1:] == top[:, :-1])
    keep &= ~repeat[:, :, None]
    n_idx, t_idx, c_idx = np.nonzero(keep)
    values = probs[n_idx, t_idx, c_idx].tolist()
    frames: list[list[_Frame]] = [[] for _ in range(probs.shape[0])]
    key = (-1, -1)
    chars: list[tuple[int, float]] = []
    for n, t, c, p in zip(n_idx.tolist(), t_idx.tolist(), c_idx.tolist(), values, strict=True):
        if (n, t) != key:
            key, chars = (n, t), []
            frames[n].append((0.0, chars))
        if c == BLANK_INDEX:
            frames[n][-1] = (p, chars)
        else:
            chars.append((c, p))
    return frames


def _greedy_labels(log_probs: np.ndarray) -> list[tuple[int, ...]]:
    """Best-path labelling of every sequence: argmax per frame, repeats merged, blanks out."""
    ids = log_probs.argmax(axis=2).T  # (N, T)
    keep = ids != BLANK_INDEX
    keep[:, 1:] &= ids[:, 1:] != ids[:, :-1]
    return [tuple(row[k].tolist()) for row, k in zip(ids, keep, strict=True)]


class _Search:
    """Prefix beam search over one sequence; prefixes are integer ids in a prefix tree.

    With a lexicon a prefix exists only if it leads along the lexicon's trie; ``trie_cache``
    (shared across the sequences of a batch) remembers each (trie node, class) lookup.
    """

    def __init__(self, num_classes: int, charset: Sequence[str], lexicon: Lexicon | None,
                 trie_cache: dict[tuple[TrieNode, int], TrieNode | None]) -> None:
        self.num_classes = num_classes
        self.charset = charset
        self.lexicon = lexicon
        self.trie_cache = trie_cache
        self.parent = [-1]
        self.last = [BLANK_INDEX]
        self.node: list[TrieNode] = [lexicon.root()] if lexicon is not None else []
        self.children: dict[int, int] = {}  # prefix id * C + class -> child id, -1 if none

    def _child(self, pid: int, cls: int) -> int:
        key = pid * self.num_classes + cls
        cid = self.children.get(key)
        if cid is not None:
            return cid
        cid = len(self.parent)
        if self.lexicon is not None:
            tkey = (self.node[pid], cls)
            if tkey in self.trie_cache:
                tnode = self.trie_cache[tkey]
            else:
                tnode = self.trie_cache[tkey] = self.lexicon.child(tkey[0],
                                                                   self.charset[cls - 1])
            if tnode is None:
                self.children[key] = -1
                return -1
            self.node.append(tnode)
        self.parent.append(pid)
        self.last.append(cls)
        self.children[key] = cid
        return cid

    def run(self, frames: list[_Frame], beam_width: int) -> list[int]:
        """The surviving prefix ids after the last frame, most probable first."""
        beams: dict[int, list[float]] = {0: [1.0, 0.0]}  # id -> [ends in blank, in char]
        for blank_p, chars in frames:
            nxt: dict[int, list[float]] = {}
            for pid, (pb, pnb) in beams.items():
                total = pb + pnb
                if blank_p:
                    entry = nxt.get(pid)
                    if entry is None:
                        nxt[pid] = [total * blank_p, 0.0]
                    else:
                        entry[0] += total * blank_p
                last = self.last[pid]
                for cls, p in chars:
                    if cls == last:  # a repeat continues the prefix; a new copy needs a blank
                        if pnb:
                            entry = nxt.get(pid)
                            if entry is None:
                                nxt[pid] = [0.0, pnb * p]
                            else:
                                entry[1] += pnb * p
                        mass = pb * p
                    else:
                        mass = total * p
                    if not mass:
                        continue
                    cid = self._child(pid, cls)
                    if cid < 0:
                        continue
                    entry = nxt.get(cid)
                    if entry is None:
                        nxt[cid] = [0.0, mass]
                    else:
                        entry[1] += mass
            ranked = sorted(nxt.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True)
            if not ranked:  # every extension left the lexicon
                return []
            scale = ranked[0][1][0] + ranked[0][1][1]  # keeps the best prefix at 1: no underflow
            beams = {pid: [pb / scale, pnb / scale] for pid, (pb, pnb) in ranked[:beam_width]}
        return list(beams)

    def labels(self, pid: int) -> tuple[int, ...]:
        out: list[int] = []
        while pid > 0:
            out.append(self.last[pid])
            pid = self.parent[pid]
        return tuple(reversed(out))


def _most_likely(log_probs: np.ndarray, candidates: list[list[tuple[int, ...]]]
                 ) -> list[tuple[int, ...]]:
    """Per sequence, the candidate labelling with the highest exact CTC likelihood (the
    first on ties); a lone candidate wins without being scored."""
    pairs = [(i, cand) for i, cands in enumerate(candidates) if len(cands) > 1 for cand in cands]
    scores = batch_log_likelihoods(log_probs, np.array([i for i, _ in pairs], dtype=np.int64),
                                   [cand for _, cand in pairs]) if pairs else np.zeros(0)
    best = [cands[0] for cands in candidates]
    best_score = [-np.inf] * len(candidates)
    for (i, cand), score in zip(pairs, scores.tolist(), strict=True):
        if score > best_score[i]:
            best[i], best_score[i] = cand, score
    return best


def ctc_beam_decode(logits: np.ndarray, charset: Sequence[str], *, beam_width: int = 10,
                    lexicon: Lexicon | None = None, mask: np.ndarray | None = None
                    ) -> list[Decoded]:
    """Beam-search CTC decoding of a batch, optionally restricted to a lexicon's words.

    Without a lexicon, the final beams and the greedy (best-path) labelling are rescored by
    their exact CTC likelihood and the most likely one wins, so the result is never less
    likely than greedy decoding's. With a lexicon, the answer is the word, among the final
    beams that end on a complete word, with the highest exact CTC likelihood; when no beam
    ends on a word, the :data:`FALLBACK_WORDS` words nearest by edit distance to the greedy
    reading are scored exactly instead, so every result is a lexicon word.

    Confidence formula (the same for every decoder): take the most probable (Viterbi)
    alignment of the decoded text in the masked, renormalised softmax ``p``; a character's
    probability is the highest ``p`` of its class over the frames aligned to it, and the
    confidence is the mean of those. An empty text's confidence is the mean over all T
    frames of the blank's ``p``. For the greedy text this equals
    :func:`~crnn_onnx.inference.decoder.ctc_greedy_decode`'s confidence.

    Args:
        logits: (T, N, C) float32 raw logits, T >= 1, C == len(charset) + 1, blank at
            class 0; every value finite.
        charset: the characters; class ``i`` (i >= 1) is ``charset[i - 1]``.
        beam_width: prefixes kept after each frame (>= 1).
        lexicon: words the output must be one of, built for ``charset``; None for free text.
        mask: (C,) bool classes that may be emitted
            (:func:`~crnn_onnx.inference.charmask.class_mask`); disallowed classes get
            probability 0 before decoding, and lexicon words that need them are left out.

    Returns:
        N :class:`~crnn_onnx.inference.decoder.Decoded` results, in batch order.

    Raises:
        CRNNError: the logits are malformed (as for ``ctc_greedy_decode``), ``beam_width``
            is below 1, ``mask`` does not fit, ``lexicon`` was built for another charset,
            or ``mask`` disallows a character of every lexicon word.
    """
    x = check_logits(logits, charset)
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) \
            or beam_width < 1:
        raise CRNNError(f"beam_width must be a whole number >= 1, got {beam_width!r}")
    m = check_mask(mask, x.shape[2]) if mask is not None else None
    if lexicon is not None:
        if lexicon.charset != tuple(charset):
            raise CRNNError("lexicon was built for a different charset than the model's")
        if m is not None:
            lexicon = lexicon.restrict(m)
    n = x.shape[1]
    if n == 0:
        return []
    log_probs = ctc_log_probs(x, m)
    greedy = _greedy_labels(log_probs)
    trie_cache: dict[tuple[TrieNode, int], TrieNode | None] = {}
    per_seq: list[list[tuple[int, ...]]] = []
    for i, frames in enumerate(_candidate_frames(log_probs)):
        search = _Search(x.shape[2], charset, lexicon, trie_cache)
        found = search.run(frames, int(beam_width))
        if lexicon is None:
            per_seq.append(list(dict.fromkeys([*map(search.labels, found), greedy[i]])))
        else:
            per_seq.append(list(dict.fromkeys(
                search.labels(pid) for pid in found if lexicon.is_word(search.node[pid]))))
    if lexicon is not None:
        lost = [i for i, cands in enumerate(per_seq) if not cands]
        readings = ["".join(charset[c - 1] for c in greedy[i]) for i in lost]
        for i, words in zip(lost, lexicon.nearest(readings, FALLBACK_WORDS), strict=True):
            per_seq[i] = [lexicon.label_ids(word) for word in words]
    chosen = _most_likely(log_probs, per_seq)
    return [
        Decoded("".join(charset[c - 1] for c in labels), confidence, char_probs)
        for labels, (confidence, char_probs) in zip(
            chosen, labelling_confidences(log_probs, chosen), strict=True)
    ]
