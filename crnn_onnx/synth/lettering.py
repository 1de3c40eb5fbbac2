"""Lettering styles of the realistic renderer, each derived from the letters' mask.

:func:`layer` makes an outline ring, a drop shadow or a 3-D extrusion to paint under the
letters; :func:`relief` draws letters carved into or raised from the ground, with no colour of
their own. Masks are (H, W) float32 in 0..1; images (H, W, 3) float32 on the 0..255 scale.
"""

from __future__ import annotations

import math
import random

import cv2
import numpy as np

__all__ = ["layer", "relief"]


def layer(alpha: np.ndarray, kind: str, rng: random.Random, size: int) -> np.ndarray:
    """A mask derived from the letters' mask: an outline ring, a shadow or an extrusion."""
    if kind == "outline":
        k = max(1, round(size * rng.uniform(0.04, 0.1)))
        return cv2.dilate(alpha, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    dx = rng.choice([-1, 1]) * rng.uniform(0.03, 0.1) * size
    dy = rng.uniform(0.03, 0.1) * size
    if kind == "shadow":
        shifted = cv2.warpAffine(alpha, np.array([[1, 0, dx], [0, 1, dy]], np.float32),
                                 alpha.shape[::-1])
        return cv2.GaussianBlur(shifted, (0, 0), rng.uniform(0.5, 0.08 * size + 0.6))
    steps = max(2, round(math.hypot(dx, dy)))  # extrusion: the letters swept backwards
    out = np.zeros_like(alpha)
    for i in range(1, steps + 1):
        m = np.array([[1, 0, dx * i / steps], [0, 1, dy * i / steps]], np.float32)
        out = np.maximum(out, cv2.warpAffine(alpha, m, alpha.shape[::-1]))
    return out


def relief(image: np.ndarray, letters: np.ndarray, rng: random.Random, size: int
            ) -> np.ndarray:
    """Letters carved into ``image`` or raised from it: no colour of their own, a lit edge on
    the side facing the light and a shaded one opposite (swapped for carving), the faces
    a little darker or lighter; (H, W, 3) float32 in and out."""
    depth = max(1.0, size * rng.uniform(0.04, 0.09))
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = depth * math.cos(angle), depth * math.sin(angle)
    shifted = cv2.warpAffine(letters, np.array([[1, 0, dx], [0, 1, dy]], np.float32),
                             letters.shape[::-1])
    lit, shaded = np.clip(letters - shifted, 0, 1), np.clip(shifted - letters, 0, 1)
    if rng.random() < 0.5:  # carved: the light falls on the far wall of the groove
        lit, shaded = shaded, lit
    soft = rng.uniform(0.3, 0.03 * size + 0.4)
    lit, shaded = (cv2.GaussianBlur(m, (0, 0), soft)[..., None] for m in (lit, shaded))
    if rng.random() < 0.6:  # stone, concrete, weathered metal: little colour
        grey = image.mean(axis=2, keepdims=True)
        image = grey + (image - grey) * rng.uniform(0.0, 0.5)
    strength = rng.uniform(50, 110)
    face = rng.uniform(-25, 15) * letters[..., None]
    return (image + strength * (lit - shaded) + face).astype(np.float32)
