"""Augmentation of real crops: the few thousand real photos seen in many guises.

:func:`augment_crop` applies, each with its own probability, a detector's loose or tight box,
perspective, faded ink (worn receipts), blur, low resolution, colour changes, uneven light,
noise, JPEG, inversion and grey, all from :mod:`crnn_onnx.synth.effects`, so real and
synthetic crops share one vocabulary of degradations.
"""

from __future__ import annotations

import random

import cv2
import numpy as np

from crnn_onnx.synth import effects

__all__ = ["augment_crop"]


def augment_crop(bgr: np.ndarray, rng: random.Random) -> np.ndarray:
    """A randomly degraded copy of a word crop: (H, W, 3) uint8 BGR in, uint8 BGR out
    (the shape may change by the crop jitter)."""
    image = bgr.astype(np.float32)
    if rng.random() < 0.5:
        image = effects.crop_jitter(image, rng, 0.12)
    if rng.random() < 0.3:
        image = effects.perspective(image, rng, 0.06)
    if rng.random() < 0.2:
        image = effects.faded_ink(image, rng)
    if rng.random() < 0.3:
        image = effects.illumination(image, rng)
    if rng.random() < 0.5:
        image = effects.colour_jitter(image, rng)
    if rng.random() < 0.25:
        image = effects.blur(image, rng, 1.2)
    if rng.random() < 0.25:
        image = effects.down_up(image, rng, min_height=10)
    if rng.random() < 0.25:
        image = effects.sensor_noise(image, rng, 10.0)
    out = effects.to_uint8(image)
    if rng.random() < 0.25:
        out = effects.jpeg(out, rng, 20, 90)
    if rng.random() < 0.08:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.1:
        out = 255 - out
    return np.ascontiguousarray(out)
