"""Resize, pad and normalise BGR crops into model input; choose input widths.

:func:`preprocess` reproduces upstream CRNN-TextRec (``TransformCRNN.resize_padding`` then
albumentations ``Normalize`` and ``ToTensorV2``) for a given target width W:

1. resize to height 32 keeping the aspect ratio, ``min(W, ceil(32 * w / h))`` wide
   (bilinear, ``cv2.INTER_LINEAR``); with ``keep_ratio`` off, stretch to exactly W;
2. right-pad to W with ``pad_value`` (128);
3. BGR -> RGB, then ``(x - 255 * mean) / (255 * std)`` per channel;
4. HWC -> CHW.

Width policies (:func:`target_width`): ``fixed`` uses the config width for every image (100,
as upstream); ``bucket`` derives the width from the image's own aspect ratio, rounded up to
a multiple of :data:`BUCKET_STEP` and capped at :data:`MAX_BUCKET_WIDTH`. Either way the
width depends on the image alone, never on the rest of its batch, so a crop's prediction
is the same whichever images it is batched with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from crnn_onnx.config import WIDTH_POLICIES, CRNNConfig, WidthPolicy
from crnn_onnx.errors import CRNNError

__all__ = [
    "BUCKET_STEP",
    "MAX_BUCKET_WIDTH",
    "batch",
    "preprocess",
    "resized_width",
    "target_width",
    "widest_width",
]

#: Bucket widths above the config width are multiples of this (also a multiple of the
#: backbone's horizontal stride 4, so T = W // 4 + 1 is exact).
BUCKET_STEP = 32
#: Widest bucket; wider crops are squeezed into it, as upstream squeezes into 100.
MAX_BUCKET_WIDTH = 800


def resized_width(height: int, width: int, target_height: int, max_width: int) -> int:
    """Width of an (height x width) image resized to ``target_height``, as upstream computes it.

    ``ceil(target_height * width / height)``, capped at ``max_width`` (never below 1).
    """
    natural = math.ceil(target_height * (width / float(height)))
    return max_width if natural > max_width else max(1, int(natural))


def widest_width(config: CRNNConfig, policy: WidthPolicy) -> int:
    """The widest input ``policy`` gives: ``config.width`` for ``fixed``, else
    ``max(MAX_BUCKET_WIDTH, config.width)``.

    Raises:
        CRNNError: unknown policy.
    """
    if policy == "fixed":
        return config.width
    if policy != "bucket":
        raise CRNNError(f"unknown width policy {policy!r} (known: {', '.join(WIDTH_POLICIES)})")
    return max(MAX_BUCKET_WIDTH, config.width)


def target_width(
    image_shape: tuple[int, ...], config: CRNNConfig, policy: WidthPolicy = "fixed"
) -> int:
    """The model input width W for one image under a width policy.

    Args:
        image_shape: the image's ``(H, W, ...)`` shape.
        config: supplies the default width and height.
        policy: ``fixed`` -> ``config.width``; ``bucket`` -> the image's natural resized width
            rounded up to a multiple of :data:`BUCKET_STEP`, at least ``config.width`` and at
            most ``max(MAX_BUCKET_WIDTH, config.width)``.

    Raises:
        CRNNError: unknown policy.
    """
    cap = widest_width(config, policy)
    if policy == "fixed":
        return cap
    natural = resized_width(image_shape[0], image_shape[1], config.height, cap)
    if natural <= config.width:
        return config.width
    return min(cap, math.ceil(natural / BUCKET_STEP) * BUCKET_STEP)


def preprocess(image: np.ndarray, config: CRNNConfig, width: int | None = None) -> np.ndarray:
    """Turn one BGR crop into model input, exactly as upstream does.

    Args:
        image: (H, W, 3) uint8 BGR image (what ``cv2.imread`` returns); H, W >= 1.
        config: height, mean, std, padding and channel-order settings.
        width: target input width; ``None`` means ``config.width``.

    Returns:
        (3, 32, width) float32 array, C-contiguous.

    Raises:
        CRNNError: the image is not (H, W, 3) uint8 or is empty, or ``width`` < 1.
    """
    width = config.width if width is None else int(width)
    if width < 1:
        raise CRNNError(f"target width must be at least 1, got {width}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise CRNNError(
            f"expected a uint8 BGR image, got {kind}; convert it with "
            "crnn_onnx.inference.images.to_bgr_uint8"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise CRNNError(f"expected an (H, W, 3) BGR image, got shape {image.shape}")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise CRNNError(f"the image is empty (shape {image.shape})")

    height = config.height
    new_w = resized_width(h, w, height, width) if config.keep_ratio else width
    resized = cv2.resize(image, (new_w, height), interpolation=cv2.INTER_LINEAR)

    # Normalise in float32 with per-channel constants already in the output channel order.
    mean = np.asarray(config.mean, dtype=np.float64) * 255.0
    std = np.asarray(config.std, dtype=np.float64) * 255.0
    if config.bgr_to_rgb:
        pixels = resized[:, :, ::-1]
    else:
        pixels = resized
    scale = (1.0 / std).astype(np.float32)
    shift = (mean / std).astype(np.float32)

    out = np.empty((3, height, width), dtype=np.float32)
    chw = pixels.transpose(2, 0, 1).astype(np.float32)
    out[:, :, :new_w] = chw * scale[:, None, None] - shift[:, None, None]
    if new_w < width:
        pad = ((config.pad_value - mean) / std).astype(np.float32)
        out[:, :, new_w:] = pad[:, None, None]
    return out


def batch(
    images: Sequence[np.ndarray], config: CRNNConfig, width: int | None = None
) -> np.ndarray:
    """Preprocess several BGR crops to one common width and stack them.

    Args:
        images: (H_i, W_i, 3) uint8 BGR images.
        config: preprocessing settings.
        width: the common target width; ``None`` means ``config.width``.

    Returns:
        (N, 3, 32, width) float32 array (N = 0 gives an empty batch of that shape).
    """
    width = config.width if width is None else int(width)
    out = np.empty((len(images), 3, config.height, width), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = preprocess(image, config, width)
    return out
