"""Which layers a fine-tuning run trains: :func:`freeze_lower_features`.

Freezing the convolutional feature extractor below its last convolution keeps the visual
features the start weights learnt on general text (so the model forgets less of it) and skips
their gradients, the larger part of a step's cost on a CPU; the last convolution, the
sequence layers and the classifier adapt to the user's domain.
"""

from __future__ import annotations

from torch import nn

from crnn_onnx.export.model import CRNN

__all__ = ["freeze_lower_features"]


def freeze_lower_features(model: CRNN) -> None:
    """Stop gradients to every layer of ``model.feat_extract`` before its last convolution.

    Their BatchNorm statistics are the caller's to keep (train with the BatchNorm layers in
    eval mode: :func:`crnn_onnx.training.batches.training_mode`).
    """
    layers = list(model.feat_extract)
    last_conv = max(i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d))
    for layer in layers[:last_conv]:
        layer.requires_grad_(False)
