"""A new charset for a trained CRNN: the classifier rows of known characters carried over.

Class 0 (the CTC blank) and every character the old charset has keep their rows of
``head.fc`` (weight and bias); characters new to the model start from a fresh, small random
row, so that at first the model keeps reading as it did and never emits them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from crnn_onnx.config import BLANK_INDEX
from crnn_onnx.export.model import CRNN

__all__ = ["with_charset"]


def with_charset(model: CRNN, old: Sequence[str], new: Sequence[str], *, seed: int = 0
                 ) -> tuple[CRNN, list[str]]:
    """A copy of ``model`` whose classifier speaks ``new``.

    Args:
        model: a CRNN with ``len(old) + 1`` classes.
        old: the charset it was trained on.
        new: the charset wanted.
        seed: seeds the fresh rows.

    Returns:
        The new model (the backbone and LSTM shared with ``model``'s weights copied), and the
        characters that start fresh, in ``new``'s order.
    """
    if model.num_classes != len(old) + 1:
        raise ValueError(f"model has {model.num_classes} classes, charset gives {len(old) + 1}")
    out = CRNN(len(new) + 1)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.fc.")}
    out.load_state_dict(state, strict=False)
    old_index = {ch: i + 1 for i, ch in enumerate(old)}
    fresh = [ch for ch in new if ch not in old_index]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        old_w, old_b = model.head.fc.weight, model.head.fc.bias
        weight = torch.empty_like(out.head.fc.weight).normal_(0.0, 0.01, generator=generator)
        # A fresh class starts well below every trained one, so it is not emitted until learnt.
        bias = torch.full_like(out.head.fc.bias, float(old_b.min()) - 1.0)
        weight[BLANK_INDEX], bias[BLANK_INDEX] = old_w[BLANK_INDEX], old_b[BLANK_INDEX]
        for i, ch in enumerate(new, start=1):
            if ch in old_index:
                weight[i], bias[i] = old_w[old_index[ch]], old_b[old_index[ch]]
        out.head.fc.weight.copy_(weight)
        out.head.fc.bias.copy_(bias)
    return out.train(model.training), fresh
