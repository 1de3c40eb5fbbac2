"""The decoder the options ask for: greedy or beam search, an allowlist or blocklist, a
lexicon; built once per Predictor and applied to every batch of logits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from crnn_onnx.errors import UsageError
from crnn_onnx.inference.beam import ctc_beam_decode
from crnn_onnx.inference.charmask import class_mask, mask_logits
from crnn_onnx.inference.decoder import Decoded, ctc_greedy_decode
from crnn_onnx.inference.lexicon import Lexicon
from crnn_onnx.inference.options import PredictorOptions

__all__ = ["Decode", "build_decoder", "load_lexicon"]

logger = logging.getLogger(__name__)

#: (T, N, C) float32 logits -> N decoded sequences.
Decode = Callable[[np.ndarray], list[Decoded]]


def load_lexicon(options: PredictorOptions, charset: Sequence[str]) -> Lexicon | None:
    """The lexicon ``options.lexicon`` names (a file, or the words themselves), or ``None``;
    words the model cannot read are reported once, in one log line.

    Raises:
        CRNNError: the file cannot be read, or holds no word the model can read.
    """
    if options.lexicon is None:
        return None
    if isinstance(options.lexicon, tuple):
        lexicon = Lexicon.from_words(options.lexicon, charset)
    else:
        lexicon = Lexicon.from_file(options.lexicon, charset)
    if lexicon.skipped:
        examples = ", ".join(repr(w) for w in lexicon.skipped_examples)
        logger.warning("lexicon: %d of its words hold characters outside the model's charset "
                       "and were skipped (e.g. %s)", lexicon.skipped, examples)
    return lexicon


def build_decoder(options: PredictorOptions, charset: Sequence[str]) -> Decode:
    """The decoding ``options`` describe, for a model with ``charset``.

    ``decoder`` None means greedy without a lexicon and beam search with one.

    Raises:
        CRNNError: an allowlist or blocklist with characters the model cannot read; a
            lexicon with ``decoder='greedy'``; a lexicon that cannot be read.
    """
    mask = (class_mask(charset, options.allowlist, options.blocklist)
            if options.allowlist is not None or options.blocklist is not None else None)
    lexicon = load_lexicon(options, charset)
    decoder = options.decoder or ("beam" if lexicon is not None else "greedy")
    if decoder == "greedy":
        if lexicon is not None:
            raise UsageError("a lexicon needs decoder='beam' (the greedy decoder reads free "
                             "text)")
        if mask is None:
            return lambda logits: ctc_greedy_decode(logits, charset)
        allowed = mask
        return lambda logits: ctc_greedy_decode(mask_logits(logits, allowed), charset)
    width = options.beam_width
    return lambda logits: ctc_beam_decode(logits, charset, beam_width=width, lexicon=lexicon,
                                          mask=mask)
