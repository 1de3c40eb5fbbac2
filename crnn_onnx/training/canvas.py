"""Crops fitted to the model's input canvas, as training stores and batches them."""

from __future__ import annotations

import cv2
import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.inference.preprocess import resized_width

__all__ = ["resize_and_pad"]


def resize_and_pad(image: np.ndarray, config: CRNNConfig, width: int | None = None
                   ) -> np.ndarray:
    """Upstream's resize_padding without the normalisation: (H, W, 3) uint8 BGR ->
    (32, width, 3) uint8 BGR, resized to height 32 keeping the aspect ratio (at most
    ``width`` wide) and right-padded with ``config.pad_value``; ``width`` defaults to the
    config's."""
    width = config.width if width is None else width
    height, natural_width = image.shape[:2]
    resized_w = resized_width(height, natural_width, config.height, width)
    resized = cv2.resize(image, (resized_w, config.height)).astype(np.float32)
    out = np.full((config.height, width, 3), config.pad_value, np.float32)
    out[:, :resized_w] = resized
    return out.round().astype(np.uint8)
