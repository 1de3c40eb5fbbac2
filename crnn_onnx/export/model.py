"""The CRNN recogniser, layer for layer the upstream CRNN-TextRec architecture.

State-dict keys match upstream exactly (``feat_extract.N.*``, ``neck.encoder.bilstm.*``,
``head.fc.*``), so checkpoints trained with that project load with ``strict=True``.
This module imports torch: it is used for export and training only, never for inference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from crnn_onnx.config import CHANNELS, HEIGHT

__all__ = ["CRNN", "eval_mode"]


def _feature_extractor() -> nn.Sequential:
    """VGG-style backbone: (N, 3, 32, W) -> (N, 512, 1, W // 4 + 1)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1),  # 0
        nn.ReLU(inplace=True),  # 1
        nn.MaxPool2d(2, 2),  # 2
        nn.Conv2d(64, 128, 3, 1, 1),  # 3
        nn.ReLU(inplace=True),  # 4
        nn.MaxPool2d(2, 2),  # 5
        nn.Conv2d(128, 256, 3, 1, 1, bias=False),  # 6
        nn.BatchNorm2d(256),  # 7
        nn.ReLU(inplace=True),  # 8
        nn.Conv2d(256, 256, 3, 1, 1),  # 9
        nn.ReLU(inplace=True),  # 10
        nn.MaxPool2d((2, 2), (2, 1), (0, 1)),  # 11
        nn.Conv2d(256, 512, 3, 1, 1, bias=False),  # 12
        nn.BatchNorm2d(512),  # 13
        nn.ReLU(inplace=True),  # 14
        nn.Conv2d(512, 512, 3, 1, 1),  # 15
        nn.ReLU(inplace=True),  # 16
        nn.MaxPool2d((2, 2), (2, 1), (0, 1)),  # 17
        nn.Conv2d(512, 512, 2, 1, 0, bias=False),  # 18
        nn.BatchNorm2d(512),  # 19
        nn.ReLU(inplace=True),  # 20
    )


class _Encoder(nn.Module):
    """Two-layer bidirectional LSTM, sequence-first: (T, N, 512) -> (T, N, 512)."""

    def __init__(self, in_channels: int = 512, hidden_size: int = 256) -> None:
        super().__init__()
        self.bilstm = nn.LSTM(in_channels, hidden_size, num_layers=2, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.bilstm(x)
        return out


class _Neck(nn.Module):
    """Image to sequence: (N, 512, 1, T) -> (T, N, 512), then the BiLSTM encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = _Encoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.squeeze(2).permute(2, 0, 1)
        return self.encoder(x)


class _Head(nn.Module):
    """Per-frame classifier: (T, N, 512) -> (T, N, C) logits."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class CRNN(nn.Module):
    """CRNN text recogniser.

    Args:
        num_classes: output classes C, including the CTC blank at index 0.

    ``forward`` maps (N, 3, 32, W) float32 images to (T, N, C) float32 raw logits,
    T = :func:`crnn_onnx.contract.sequence_length` (W); there is no softmax inside.
    """

    def __init__(self, num_classes: int = 37) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.feat_extract = _feature_extractor()
        self.neck = _Neck()
        self.head = _Head(num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != CHANNELS or images.shape[2] != HEIGHT:
            # Upstream silently produces garbage for other heights (H > 1 after the backbone).
            raise ValueError(
                f"CRNN expects input shaped (N, 3, {HEIGHT}, W); got {tuple(images.shape)}"
            )
        return self.head(self.neck(self.feat_extract(images)))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the duration, then restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
