"""Lettering of the realistic renderer: the letters' colours and styles, drawn from their mask.

:func:`contrasting` picks a colour that stands out from a ground; :func:`paint` paints the
letters in it over an extrusion, shadow or outline from :func:`layer`; :func:`relief` draws
them carved into or raised from the ground instead, with no colour of their own. Masks are
(H, W) float32 in 0..1; images (H, W, 3) float32 RGB on the 0..255 scale.
"""

from __future__ import annotations

import math
import random

import cv2
import numpy as np

__all__ = ["contrasting", "layer", "luma", "paint", "relief"]


def luma(rgb: np.ndarray) -> np.ndarray:
    """Luminance (...) of RGB colours (..., 3), Rec. 601 weights."""
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def contrasting(rng: random.Random, against: float, min_gap: float = 80.0
                ) -> tuple[float, float, float]:
    """An RGB colour whose luminance differs from ``against`` by at least ``min_gap``."""
    for _ in range(40):
        base = rng.uniform(0, 255)
        if abs(base - against) < min_gap:
            continue
        spread = rng.choice([0, 0, 25, 70])
        colour = np.clip([base + rng.uniform(-spread, spread) for _ in range(3)], 0, 255)
        if abs(float(luma(np.asarray(colour, np.float32))) - against) >= min_gap * 0.8:
            return (float(colour[0]), float(colour[1]), float(colour[2]))
    level = 0.0 if against > 127 else 255.0
    return (level, level, level)


def _shift(mask: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``mask`` (H, W) moved by (``dx``, ``dy``) pixels, zeros shifted in."""
    return cv2.warpAffine(mask, np.array([[1, 0, dx], [0, 1, dy]], np.float32), mask.shape[::-1])


def layer(alpha: np.ndarray, kind: str, rng: random.Random, size: int) -> np.ndarray:
    """A mask derived from the letters' mask: an outline ring, a shadow or an extrusion."""
    if kind == "outline":
        k = max(1, round(size * rng.uniform(0.04, 0.1)))
        return cv2.dilate(alpha, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    dx = rng.choice([-1, 1]) * rng.uniform(0.03, 0.1) * size
    dy = rng.uniform(0.03, 0.1) * size
    if kind == "shadow":
        return cv2.GaussianBlur(_shift(alpha, dx, dy), (0, 0),
                                rng.uniform(0.5, 0.08 * size + 0.6))
    steps = max(2, round(math.hypot(dx, dy)))  # extrusion: the letters swept backwards
    out = np.zeros_like(alpha)
    for i in range(1, steps + 1):
        out = np.maximum(out, _shift(alpha, dx * i / steps, dy * i / steps))
    return out


def relief(image: np.ndarray, letters: np.ndarray, rng: random.Random, size: int
            ) -> np.ndarray:
    """Letters carved into ``image`` or raised from it: no colour of their own, a lit edge on
    the side facing the light and a shaded one opposite (swapped for carving), the faces
    a little darker or lighter; (H, W, 3) float32 in and out."""
    depth = max(1.0, size * rng.uniform(0.04, 0.09))
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = depth * math.cos(angle), depth * math.sin(angle)
    shifted = _shift(letters, dx, dy)
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


def paint(image: np.ndarray, letters: np.ndarray, fill: np.ndarray,
          rng: random.Random, size: int) -> np.ndarray:
    """Letters painted in ``fill`` (RGB) onto ``image`` (H, W, 3) float32, where ``letters``
    (H, W) is their mask: an extrusion or a shadow first, sometimes an outline, then the fill,
    sometimes a gradient."""
    h = image.shape[0]
    style = rng.random()
    if style < 0.12:
        depth = layer(letters, "extrude", rng, size)[..., None]
        image = image * (1 - depth) + (fill * rng.uniform(0.3, 0.6)) * depth
    elif style < 0.3:
        shadow = layer(letters, "shadow", rng, size)[..., None] * rng.uniform(0.5, 0.9)
        image = image * (1 - shadow) + np.float32(rng.uniform(0, 40)) * shadow
    if rng.random() < 0.15:
        ring = layer(letters, "outline", rng, size)[..., None]
        ring_colour = np.array(contrasting(rng, float(luma(fill)), 90), np.float32)
        image = image * (1 - ring) + ring_colour * ring
    ink = np.empty_like(image)
    ink[:] = fill
    if rng.random() < 0.25:  # a gradient fill
        ink += (rng.uniform(-60, 60) * np.linspace(0, 1, h, dtype=np.float32))[:, None, None]
    opacity = rng.uniform(0.75, 1.0)
    a = letters[..., None] * opacity
    image = image * (1 - a) + ink * a
    return image
