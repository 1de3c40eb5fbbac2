"""The realistic renderer: a word as a camera sees it in a street, a shop or on a product.

Beyond :mod:`crnn_onnx.synth.render`, a scene crop has

* a natural-image background (:class:`~crnn_onnx.synth.backgrounds.BackgroundBank`), often
  with a sign plate behind the word;
* curved baselines, rotation, shear and strong perspective, applied to the word before the
  crop box is cut around it, as a detector's axis-aligned box would be;
* outlined, shadowed and extruded (3-D) lettering, and fills with a gradient;
* capitals, sometimes letter-spaced, and letters carved into or raised from stone and metal;
* slivers of neighbouring letters cut in at the crop's edges (never enough of one to read);
* uneven light, glare and cast shadows, defocus and motion blur, low resolution, sensor noise,
  JPEG artefacts, colour casts;
* a share seen from the street, far off, as Street View sees signs: text 10-20 px high,
  compressed at that size and upsampled, colours washed out.

The label is the word alone: neighbouring letters are kept to at most
:data:`MAX_NEIGHBOUR_VISIBLE` of a letter's width inside the crop.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import cv2
import numpy as np

from crnn_onnx.errors import CRNNError
from crnn_onnx.synth import effects, lettering
from crnn_onnx.synth.backgrounds import BackgroundBank

__all__ = ["MAX_NEIGHBOUR_VISIBLE", "RELIEF", "SIGN_CAPITALS", "render_scene_word"]

#: Largest share of a neighbouring letter's width that may show inside the crop.
MAX_NEIGHBOUR_VISIBLE = 0.2
_NEIGHBOURS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: Share of crops seen as from the street, far off (SVT's signs): see effects.street_view.
STREET_VIEW = 0.3
#: Share of words set in capitals whatever their case (shop, hotel and street signs).
SIGN_CAPITALS = 0.3
#: Share of words carved into or raised from their ground: the ground's colour, drawn only by
#: the light and shade on the letters' edges (stone, cast metal, embossed plates).
RELIEF = 0.12
# Sign and label colour pairs (RGB): plate, lettering.
_SIGN_COLOURS = (
    ((200, 30, 35), (250, 250, 245)), ((20, 60, 150), (250, 250, 250)),
    ((15, 110, 60), (250, 250, 250)), ((250, 210, 20), (20, 20, 20)),
    ((245, 245, 240), (200, 20, 30)), ((245, 245, 240), (20, 20, 25)),
    ((20, 20, 22), (250, 200, 40)), ((20, 20, 22), (245, 245, 245)),
    ((240, 120, 20), (255, 255, 255)), ((110, 60, 30), (245, 230, 200)),
)


def _draw_masks(text: str, left: str, right: str, font_path: str | Path, size: int,
                rng: random.Random) -> tuple[np.ndarray, np.ndarray, int]:
    """(text mask, neighbours mask) float32 0..1 on one canvas, and the letter spacing."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), size)
    spacing = rng.choice([0.0] * 5 + [rng.uniform(-0.05, 0.3)]) * size
    if text.isupper() and rng.random() < 0.25:  # letter-spaced capitals, as signs set them
        spacing = rng.uniform(0.3, 0.8) * size
    gap = font.getlength(" ") * rng.uniform(0.6, 1.6)
    advances = [font.getlength(ch) + spacing for ch in text] if spacing else []
    text_w = sum(advances) if spacing else font.getlength(text)
    left_w, right_w = font.getlength(left), font.getlength(right)
    ascent, descent = font.getmetrics()
    canvas_w = int(left_w + gap + text_w + gap + right_w) + 4 * size
    canvas_h = ascent + descent + 2 * size
    text_mask = Image.new("L", (canvas_w, canvas_h), 0)
    side_mask = Image.new("L", (canvas_w, canvas_h), 0)
    x0, y0 = 2 * size + left_w + (gap if left else 0), size
    draw = ImageDraw.Draw(text_mask)
    if advances:
        x = x0
        for ch, adv in zip(text, advances, strict=True):
            draw.text((x, y0), ch, font=font, fill=255)
            x += adv
    else:
        draw.text((x0, y0), text, font=font, fill=255)
    side = ImageDraw.Draw(side_mask)
    if left:
        side.text((x0 - gap - left_w, y0), left, font=font, fill=255)
    if right:
        side.text((x0 + text_w + gap, y0), right, font=font, fill=255)
    to_float = 1.0 / 255.0
    return (np.asarray(text_mask, np.float32) * to_float,
            np.asarray(side_mask, np.float32) * to_float, int(spacing))


def _curve(masks: np.ndarray, rng: random.Random, size: int) -> np.ndarray:
    """Bend the baseline: an arc or a wave of up to ~0.35 of the text size."""
    h, w = masks.shape[:2]
    xs = np.arange(w, dtype=np.float32)
    u = (xs - w / 2) / (w / 2)
    amp = rng.uniform(0.1, 0.35) * size * rng.choice([-1, 1])
    dy = amp * u**2 if rng.random() < 0.7 else amp * np.sin(math.pi * u * rng.uniform(0.5, 1.2))
    map_x = np.tile(xs, (h, 1))
    map_y = np.arange(h, dtype=np.float32)[:, None] - dy[None, :]
    return cv2.remap(masks, map_x, map_y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _project(masks: np.ndarray, rng: random.Random) -> np.ndarray:
    """Width scaling, shear, rotation and perspective in one homography, canvas enlarged to
    keep every corner."""
    h, w = masks.shape[:2]
    sx = rng.uniform(0.7, 1.35) if rng.random() < 0.5 else 1.0
    shear = rng.uniform(-0.35, 0.35) if rng.random() < 0.3 else 0.0
    angle = math.radians(rng.uniform(-9, 9)) if rng.random() < 0.5 else 0.0
    ca, sa = math.cos(angle), math.sin(angle)
    affine = np.array([[sx * ca, -sa + shear * ca, 0], [sx * sa, ca + shear * sa, 0], [0, 0, 1]],
                      np.float64)
    if rng.random() < 0.45:  # perspective: a vanishing direction along x or y
        px = rng.uniform(-0.45, 0.45) / w
        py = rng.uniform(-0.6, 0.6) / max(h, w) if rng.random() < 0.4 else 0.0
        affine = np.array([[1, 0, 0], [0, 1, 0], [px, py, 1]], np.float64) @ affine
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ affine.T
    corners = corners[:, :2] / corners[:, 2:3]
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    if not np.all(np.isfinite(lo)) or np.any(hi - lo > 8 * max(h, w)):
        return masks  # a degenerate draw: keep the word flat rather than explode it
    shift = np.array([[1, 0, -lo[0]], [0, 1, -lo[1]], [0, 0, 1]], np.float64)
    out_w, out_h = (hi - lo).astype(int) + 1
    return cv2.warpPerspective(masks, shift @ affine, (int(out_w), int(out_h)),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=0)


def _crop_box(text: np.ndarray, side: np.ndarray, rng: random.Random, size: int
              ) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) around the word's ink with a detector's margins; sides
    that reach into a neighbouring letter stop before more than a sliver of it shows."""
    ys, xs = np.nonzero(text > 0.3)
    if len(xs) == 0:
        raise CRNNError("the word vanished while being placed")
    top, bottom, left, right = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    ink_h = bottom - top

    grow_top, grow_bottom, grow_left, grow_right = effects.box_margins(
        rng, ink_h, clipped=0.12, near=0.25, far=0.7)
    top, bottom = top - grow_top, bottom + grow_bottom
    left, right = left - grow_left, right + grow_right
    band = side[max(0, top):max(0, bottom)]
    cols = np.flatnonzero((band > 0.3).any(axis=0)) if band.size else np.empty(0, int)
    before = cols[cols < xs.min()]
    after = cols[cols >= xs.max()]
    # The nearest neighbouring letter is the run of ink columns next to the word; at most
    # MAX_NEIGHBOUR_VISIBLE of its own width may show, so a thin letter (i, l, 1) shows
    # nothing rather than all of itself.
    if before.size:
        lo, hi = _nearest_run(before[::-1])
        left = max(left, hi + 1 - int(MAX_NEIGHBOUR_VISIBLE * (hi - lo + 1)))
    if after.size:
        lo, hi = _nearest_run(after)
        right = min(right, lo + int(MAX_NEIGHBOUR_VISIBLE * (hi - lo + 1)))
    return top, bottom, left, right


def _nearest_run(cols: np.ndarray) -> tuple[int, int]:
    """(first, last) column of the run of ink columns (gaps up to 2) that starts at
    ``cols[0]``, ``cols`` ordered away from the word."""
    end = 0
    while end + 1 < len(cols) and abs(int(cols[end + 1]) - int(cols[end])) <= 2:
        end += 1
    a, b = int(cols[0]), int(cols[end])
    return min(a, b), max(a, b)


def render_scene_word(text: str, font_path: str | Path, rng: random.Random,
                      backgrounds: BackgroundBank | None = None) -> np.ndarray:
    """Render ``text`` as a realistic scene crop: BGR uint8 (H, W, 3).

    Args:
        text: what to write (the label is its normalised form).
        font_path: a font that draws every character of ``text``.
        rng: the only source of randomness.
        backgrounds: photographs and textures to draw the background from; ``None`` uses
            flat and gradient grounds only.

    Raises:
        CRNNError: the font drew nothing for ``text``.
    """
    size = rng.randint(24, 64)
    if rng.random() < SIGN_CAPITALS:
        text = text.upper()
    left = right = ""
    if rng.random() < 0.15:
        left = "".join(rng.choice(_NEIGHBOURS) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.15:
        right = "".join(rng.choice(_NEIGHBOURS) for _ in range(rng.randint(1, 3)))
    text_mask, side_mask, _ = _draw_masks(text, left, right, font_path, size, rng)
    if not text_mask.any():
        raise CRNNError(f"font {Path(font_path).name} drew nothing for {text!r}")
    board = np.zeros_like(text_mask)
    plate = rng.random() < 0.3
    if plate:  # a sign board behind the word, warped with it
        ys, xs = np.nonzero(text_mask > 0.3)
        pad_y, pad_x = rng.uniform(0.15, 0.6) * size, rng.uniform(0.2, 1.0) * size
        board[max(0, int(ys.min() - pad_y)):int(ys.max() + pad_y),
              max(0, int(xs.min() - pad_x)):int(xs.max() + pad_x)] = 1.0
    masks = np.dstack([text_mask, side_mask, board])
    if rng.random() < 0.25:
        masks = _curve(masks, rng, size)
    masks = _project(masks, rng)
    top, bottom, left_x, right_x = _crop_box(masks[..., 0], masks[..., 1], rng, size)
    pad = max(0, -top, -left_x, bottom - masks.shape[0], right_x - masks.shape[1])
    if pad:
        masks = cv2.copyMakeBorder(masks, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        top, bottom, left_x, right_x = top + pad, bottom + pad, left_x + pad, right_x + pad
    masks = np.ascontiguousarray(masks[top:bottom, left_x:right_x])
    h, w = masks.shape[:2]
    letters = np.maximum(masks[..., 0], masks[..., 1])

    # Ground: a photograph or texture, sometimes flattened towards one colour.
    if backgrounds is not None and rng.random() < 0.8:
        ground = backgrounds.patch(rng, h, w)
        if rng.random() < 0.3:
            ground = cv2.GaussianBlur(ground, (0, 0), rng.uniform(1, 4))
        if rng.random() < 0.3:
            flat = np.array([rng.uniform(0, 255) for _ in range(3)], np.float32)
            ground = ground * (t := rng.uniform(0.2, 0.7)) + flat * (1 - t)
    else:
        ground = np.empty((h, w, 3), np.float32)
        ground[:] = [rng.uniform(0, 255) for _ in range(3)]
    image = ground
    if plate:
        plate_rgb, ink_rgb = rng.choice(_SIGN_COLOURS)
        plate_colour = np.clip(np.array(plate_rgb, np.float32)
                               + [rng.uniform(-25, 25) for _ in range(3)], 0, 255)
        a = masks[..., 2:3]
        image = image * (1 - a) + plate_colour * a
        if rng.random() < 0.3:  # the plate keeps some of the photograph's texture
            image = image * (1 - 0.25 * a) + ground * 0.25 * a
        under = float(lettering.luma(plate_colour))
        fill = np.array(ink_rgb if rng.random() < 0.7 else lettering.contrasting(rng, under),
                        np.float32)
    else:
        # What the letters must stand out from: the ground just around them, and more
        # contrast where that ground is busy.
        near = cv2.dilate(letters, np.ones((5, 5), np.uint8)) > 0.3
        ground_luma = lettering.luma(image[near]) if near.any() else np.full(1, 128, np.float32)
        under = float(ground_luma.mean())
        gap = 80.0 + min(60.0, float(ground_luma.std()))
        fill = np.array(lettering.contrasting(rng, under, gap), np.float32)

    carved = rng.random() < RELIEF
    if carved:
        image = lettering.relief(image, letters, rng, size)
    else:
        image = lettering.paint(image, letters, fill, rng, size)
    far = rng.random() < (STREET_VIEW / 2 if carved else STREET_VIEW)  # carved: faint already
    if far:
        image = effects.street_view(image, rng, size)
    return effects.camera(image, rng, size, far=far)
