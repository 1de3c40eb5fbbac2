"""A CRNN on batches of fitted crops: the input tensor, the training mode, the forward pass,
word accuracy by validation set."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import torch

from crnn_onnx.config import CRNNConfig
from crnn_onnx.export.model import CRNN
from crnn_onnx.inference.decoder import ctc_greedy_decode

__all__ = ["Batches", "accuracy_by_set", "distillation", "forward", "to_tensor", "training_mode"]


def to_tensor(batch: np.ndarray, config: CRNNConfig) -> torch.Tensor:
    """(N, 32, W, 3) uint8 BGR -> (N, 3, 32, W) float32, the model's normalisation,
    channels-last in memory (oneDNN's fastest layout for the convolutions)."""
    x = torch.from_numpy(batch).float()
    if config.bgr_to_rgb:
        x = x.flip(-1)
    mean = torch.tensor(config.mean) * 255
    std = torch.tensor(config.std) * 255
    return ((x - mean) / std).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def forward(model: CRNN, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """(N, 3, 32, W) -> (T, N, C) float32 logits; the backbone in bf16 autocast when asked."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = model.feat_extract(x)
    return model.head(model.neck(feats.float()))


def distillation(log_probs: torch.Tensor, teacher: CRNN, images: np.ndarray,
                 config: CRNNConfig, bf16: bool) -> torch.Tensor:
    """Mean per-frame KL divergence of the model's readings from ``teacher``'s on the same
    crops: (T, n, C) log-probabilities of the model, ``images`` (n, 32, W, 3) uint8 BGR."""
    with torch.no_grad():
        target = torch.log_softmax(forward(teacher, to_tensor(images, config), bf16), dim=2)
    classes = log_probs.shape[-1]
    return torch.nn.functional.kl_div(log_probs.reshape(-1, classes),
                                      target.reshape(-1, classes), reduction="batchmean",
                                      log_target=True)


def training_mode(model: CRNN, *, frozen_norm: bool) -> None:
    """Put ``model`` in training mode; with ``frozen_norm`` its BatchNorm layers stay in eval
    mode, normalising with the start weights' statistics instead of the batches'."""
    model.train()
    if frozen_norm:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()


Batches = list[tuple[np.ndarray, list[str]]]
"""Crops fitted to the model canvas: ((N, 32, W, 3) uint8 BGR, labels) pairs, one W each
(:meth:`CropSet.fitted`)."""


@torch.no_grad()
def _read_correctly(model: CRNN, batches: Batches, config: CRNNConfig) -> int:
    """How many of the crops greedy decoding reads exactly (on the charset)."""
    correct = 0
    for images, labels in batches:
        for i in range(0, len(labels), 256):
            logits = model(to_tensor(images[i:i + 256], config)).numpy()
            texts = [d.text for d in ctc_greedy_decode(logits, config.charset)]
            correct += sum(t == y for t, y in zip(texts, labels[i:i + 256], strict=True))
    return correct


def accuracy_by_set(model: CRNN, sets: Mapping[str, Batches], config: CRNNConfig, *,
                    choose: Collection[str]) -> tuple[float, dict[str, float]]:
    """Word accuracy of greedy readings over the ``choose`` sets together (every crop counts
    once, so a large set weighs more), and of each of the ``sets`` by its name; leaves
    ``model`` in eval mode."""
    model.eval()
    correct, total, by_set = 0, 0, {}
    for name, batches in sets.items():
        right = _read_correctly(model, batches, config)
        count = sum(len(labels) for _, labels in batches)
        by_set[name] = right / max(1, count)
        if name in choose:
            correct, total = correct + right, total + count
    return correct / max(1, total), by_set
