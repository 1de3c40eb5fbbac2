"""The plain renderer: one word drawn with one font over a flat, gradient or blotchy ground.

Varies case, size, weight, width and slant, tight and loose crops, dark-on-light and
light-on-dark, colour, gradients and texture, blur, noise, small rotation and perspective,
low resolution and JPEG artefacts. :mod:`crnn_onnx.synth.scene` is the realistic renderer
beside it. Every random draw comes from the ``rng`` passed in, in a fixed order, so a seed
renders the same crop on every machine with the same fonts.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import cv2
import numpy as np

from crnn_onnx.errors import CRNNError
from crnn_onnx.synth.effects import box_margins

__all__ = ["render_word"]


def _colours(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(background, foreground) RGB with enough luminance contrast to be readable."""
    mode = rng.random()
    for _ in range(50):
        if mode < 0.55:  # dark on light, mostly grey
            bg_l, fg_l = rng.randint(150, 255), rng.randint(0, 110)
        elif mode < 0.8:  # light on dark
            bg_l, fg_l = rng.randint(0, 110), rng.randint(150, 255)
        else:  # anything with contrast
            bg_l, fg_l = rng.randint(0, 255), rng.randint(0, 255)
        if abs(bg_l - fg_l) < 70:
            continue
        tint = 0 if rng.random() < 0.5 else 60

        def colour(level: int, tint: int = tint) -> tuple[int, int, int]:
            return tuple(int(np.clip(level + rng.randint(-tint, tint), 0, 255)) for _ in range(3))  # type: ignore[return-value]

        return colour(bg_l), colour(fg_l)
    return (255, 255, 255), (0, 0, 0)


def _background(rng: random.Random, h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    """(h, w, 3) uint8 RGB: flat, gradient, or blotchy texture around ``rgb``."""
    base = np.empty((h, w, 3), np.float32)
    base[:] = rgb
    kind = rng.random()
    if kind < 0.35:
        return base.astype(np.uint8)
    if kind < 0.7:
        amp = rng.uniform(10, 50)
        ramp = np.linspace(-amp, amp, w if rng.random() < 0.6 else h, dtype=np.float32)
        base += ramp[None, :, None] if ramp.shape[0] == w else ramp[:, None, None]
    else:
        small = np.random.default_rng(rng.getrandbits(32)).normal(
            0, rng.uniform(8, 30), (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
        base += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base, 0, 255).astype(np.uint8)


def render_word(text: str, font_path: str | Path, rng: random.Random) -> np.ndarray:
    """Render ``text`` with one font and random styling: BGR uint8 (H, W, 3) crop.

    The crop's height is roughly the text's height plus a random margin, as a detector
    would cut it; the width follows the text.
    """
    from PIL import Image, ImageDraw, ImageFont

    size = rng.randint(22, 64)
    font = ImageFont.truetype(str(font_path), size)
    bg, fg = _colours(rng)
    stroke = 1 if size > 30 and rng.random() < 0.15 else 0
    spacing = rng.choice([0.0] * 6 + [rng.uniform(-0.06, 0.25)]) * size

    # Lay out glyph by glyph when letter spacing is changed, else as one run (kerning kept).
    ascent, descent = font.getmetrics()
    if spacing:
        advances = [font.getlength(ch) + spacing for ch in text]
        text_w = int(sum(advances) + size)
    else:
        advances = []
        text_w = int(font.getlength(text) + size)
    canvas_h = ascent + descent + size
    mask = Image.new("L", (max(text_w, 8) + 2 * size, canvas_h + size), 0)
    draw = ImageDraw.Draw(mask)
    x0, y0 = size, size // 2
    if advances:
        x = float(x0)
        for ch, adv in zip(text, advances, strict=True):
            draw.text((x, y0), ch, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
            x += adv
    else:
        draw.text((x0, y0), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    alpha: np.ndarray = np.asarray(mask, dtype=np.float32) / 255.0

    # Geometry: width scaling, slant, small rotation, then a tight box around the ink.
    h, w = alpha.shape
    sx = rng.uniform(0.75, 1.3) if rng.random() < 0.5 else 1.0
    shear = rng.uniform(-0.3, 0.3) if rng.random() < 0.25 else 0.0
    angle = math.radians(rng.uniform(-4, 4)) if rng.random() < 0.4 else 0.0
    ca, sa = math.cos(angle), math.sin(angle)
    affine = np.array([[sx * ca, -sa + shear * ca, 0], [sx * sa, ca + shear * sa, 0]], np.float32)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float32) @ affine.T
    affine[:, 2] = -corners.min(axis=0)
    out_w, out_h = (corners.max(axis=0) - corners.min(axis=0)).astype(int) + 1
    alpha = cv2.warpAffine(alpha, affine, (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(alpha > 0.3)
    if len(xs) == 0:
        raise CRNNError(f"font {Path(font_path).name} drew nothing for {text!r}")
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    ink_h = bottom - top

    grow_top, grow_bottom, grow_left, grow_right = box_margins(rng, ink_h)
    top, bottom = top - grow_top, bottom + grow_bottom
    left, right = left - grow_left, right + grow_right
    pad = max(0, -top, -left, bottom - alpha.shape[0], right - alpha.shape[1])
    if pad:
        alpha = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        top, bottom, left, right = top + pad, bottom + pad, left + pad, right + pad
    alpha = alpha[top:bottom, left:right]
    ch_, cw_ = alpha.shape

    # Compose colours: ink over a background, then photometric degradations.
    background = _background(rng, ch_, cw_, bg).astype(np.float32)
    ink = np.empty_like(background)
    ink[:] = fg
    if rng.random() < 0.15:  # uneven ink
        ink += rng.uniform(-40, 40) * np.linspace(0, 1, cw_, dtype=np.float32)[None, :, None]
    image: np.ndarray = background * (1 - alpha[..., None]) + ink * alpha[..., None]

    if rng.random() < 0.08:  # a stray line (underline, table rule, box edge)
        y = rng.choice([rng.randint(0, max(0, ch_ // 8)), rng.randint(ch_ * 7 // 8, ch_ - 1)])
        cv2.line(image, (0, y), (cw_ - 1, y), tuple(float(c) for c in fg), rng.randint(1, 2))
    if rng.random() < 0.2:  # perspective
        d = 0.06 * min(ch_, cw_)
        src = np.array([[0, 0], [cw_, 0], [cw_, ch_], [0, ch_]], np.float32)
        dst = src + np.array([[rng.uniform(-d, d), rng.uniform(-d, d)] for _ in range(4)],
                             np.float32)
        matrix = cv2.getPerspectiveTransform(src, dst)
        image = cv2.warpPerspective(image, matrix, (cw_, ch_), borderMode=cv2.BORDER_REPLICATE)
    blur = rng.random()
    if blur < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.3 + size / 40))
    elif blur < 0.32:
        k = rng.randint(2, 4)
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        image = cv2.filter2D(image, -1, kernel)
    if rng.random() < 0.3:  # sensor noise
        image += np.random.default_rng(rng.getrandbits(32)).normal(
            0, rng.uniform(2, 14), image.shape).astype(np.float32)
    if rng.random() < 0.3:  # low resolution: down then up again
        f = rng.uniform(0.35, 0.8)
        small = cv2.resize(image, (max(1, int(cw_ * f)), max(1, int(ch_ * f))),
                           interpolation=cv2.INTER_AREA)
        image = cv2.resize(small, (cw_, ch_), interpolation=cv2.INTER_LINEAR)
    image = np.clip(image, 0, 255).astype(np.uint8)
    bgr: np.ndarray = np.ascontiguousarray(image[..., ::-1])
    if rng.random() < 0.35:  # JPEG artefacts
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(15, 90)])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            bgr = decoded
    if rng.random() < 0.1:
        bgr = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return bgr
