"""Image degradations shared by the realistic renderer and the augmentation of real crops.

Every function takes an (H, W, 3) float32 image on the 0..255 scale (channel order does not
matter unless stated) and a :class:`random.Random`, and returns a new float32 image of the
same shape unless it says otherwise; values may leave 0..255 until :func:`to_uint8`.
Noise arrays come from a numpy generator seeded from ``rng``, so a seed gives the same image.
"""

from __future__ import annotations

import math
import random

import cv2
import numpy as np

__all__ = [
    "blur",
    "box_margins",
    "camera",
    "colour_jitter",
    "crop_jitter",
    "down_up",
    "faded_ink",
    "illumination",
    "jpeg",
    "numpy_rng",
    "perspective",
    "sensor_noise",
    "street_view",
    "to_uint8",
]


def numpy_rng(rng: random.Random) -> np.random.Generator:
    """A numpy generator seeded from ``rng`` (one draw of it)."""
    return np.random.default_rng(rng.getrandbits(32))


def box_margins(rng: random.Random, ink_h: int, *, clipped: float = 0.1, near: float = 0.2,
                far: float = 0.6) -> tuple[int, int, int, int]:
    """A detector's margins around a word ``ink_h`` pixels high: (top, bottom, left, right),
    each mostly a little air (up to ``near`` of the height), sometimes loose (up to ``far``),
    and with chance ``clipped`` cutting into the ink by up to 6%; sides get 1.5 times the
    vertical margins. Positive values widen the box."""
    def margin(scale: float) -> int:
        r = rng.random()
        if r < clipped:
            return -rng.randint(0, max(1, int(ink_h * 0.06)))
        if r < 0.75:
            return rng.randint(0, max(1, int(ink_h * near * scale)))
        return rng.randint(0, max(1, int(ink_h * far * scale)))

    return margin(1), margin(1), margin(1.5), margin(1.5)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Clip to 0..255 and convert: (H, W, 3) uint8."""
    return np.clip(image, 0, 255).astype(np.uint8)


def illumination(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """Uneven light: a gradient or radial falloff, sometimes a glare spot or a cast shadow."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.random()
    if kind < 0.5:  # a linear gradient in a random direction
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (xs * math.cos(angle) + ys * math.sin(angle))
        ramp = (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp)))
        lo = rng.uniform(0.45, 0.9)
        field = lo + (rng.uniform(1.0, 1.25) - lo) * ramp
    else:  # a light source somewhere near the crop
        cx, cy = rng.uniform(-0.3, 1.3) * w, rng.uniform(-0.5, 1.5) * h
        radius = rng.uniform(0.5, 2.0) * max(h, w)
        dist = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / radius
        field = np.clip(1.2 - rng.uniform(0.3, 0.7) * dist, 0.35, 1.25)
    out = image * field[..., None]
    if rng.random() < 0.2:  # glare: a bright soft spot
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sigma = rng.uniform(0.15, 0.5) * max(h, w)
        spot = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        out = out + rng.uniform(60, 180) * spot[..., None]
    if rng.random() < 0.15:  # a hard shadow edge across the crop
        angle = rng.uniform(0, 2 * math.pi)
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        side = (xs - x0) * math.cos(angle) + (ys - y0) * math.sin(angle)
        out = out * np.where(side > 0, rng.uniform(0.45, 0.8), 1.0)[..., None].astype(np.float32)
    return out.astype(np.float32)


def perspective(image: np.ndarray, rng: random.Random, strength: float = 0.08) -> np.ndarray:
    """Move each corner by up to ``strength`` of the shorter side; borders replicated."""
    h, w = image.shape[:2]
    d = strength * min(h, w)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = src + np.array([[rng.uniform(-d, d), rng.uniform(-d, d)] for _ in range(4)],
                         np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def blur(image: np.ndarray, rng: random.Random, max_sigma: float = 1.6) -> np.ndarray:
    """Defocus (Gaussian) or motion blur along a random direction."""
    if rng.random() < 0.65:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, max_sigma))
    k = rng.randint(3, 7)
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1.0)
    turned = np.asarray(cv2.warpAffine(kernel, rot, (k, k)), np.float32)
    turned /= max(1e-6, float(turned.sum()))
    return cv2.filter2D(image, -1, turned)


def down_up(image: np.ndarray, rng: random.Random, min_height: int = 8) -> np.ndarray:
    """Low resolution: shrink to between ``min_height`` and 80% of the height, then back."""
    h, w = image.shape[:2]
    target_h = rng.uniform(min(min_height, h), max(min_height, 0.8 * h))
    f = min(1.0, target_h / h)
    small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA)
    up = rng.choice([cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST])
    return cv2.resize(small, (w, h), interpolation=up)


def faded_ink(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """Worn or faded print (thermal receipts, dry ribbons): the strokes thinned by a pixel
    and washed toward the paper in blotches a fifth of the height across, so that strokes
    break where the print fades. The paper is the crop's median colour."""
    h, w = image.shape[:2]
    paper = np.median(image.reshape(-1, 3), axis=0).astype(np.float32)
    if rng.random() < 0.5:
        kernel = np.ones((2, 2), np.uint8)
        dark_ink = float(paper.mean()) > float(image.mean())
        image = cv2.dilate(image, kernel) if dark_ink else cv2.erode(image, kernel)
    cell = max(2.0, h / 5)
    grid = numpy_rng(rng).uniform(rng.uniform(0.0, 0.6), 1.0,
                                  (max(2, round(h / cell) + 1), max(2, round(w / cell) + 1)))
    fade = cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    fade = np.clip(fade, 0.0, 1.0)[:, :, None]
    return (paper + (image - paper) * fade).astype(np.float32)


def sensor_noise(image: np.ndarray, rng: random.Random, max_sigma: float = 16.0) -> np.ndarray:
    """Gaussian noise, per channel or the same on all three (luminance noise)."""
    gen = numpy_rng(rng)
    sigma = rng.uniform(2.0, max_sigma)
    if rng.random() < 0.5:
        noise = gen.normal(0, sigma, (*image.shape[:2], 1))
    else:
        noise = gen.normal(0, sigma, image.shape)
    return (image + noise).astype(np.float32)


def colour_jitter(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """Brightness, contrast and saturation changes, and a colour cast."""
    out = image * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30)
    mean = float(out.mean())
    out = (out - mean) * rng.uniform(0.6, 1.4) + mean
    grey = out.mean(axis=2, keepdims=True)
    out = grey + (out - grey) * rng.uniform(0.3, 1.6)
    cast = np.array([rng.uniform(-20, 20) for _ in range(3)], np.float32)
    return (out + cast).astype(np.float32)


def crop_jitter(image: np.ndarray, rng: random.Random, fraction: float = 0.12) -> np.ndarray:
    """Move each side of the crop in or out by up to ``fraction`` of its height (a detector's
    loose or tight box); new area is filled by replicating the border. Changes the shape."""
    h, w = image.shape[:2]
    step = max(1, round(fraction * h))
    top, bottom, left, right = (rng.randint(-step, step) for _ in range(4))
    # never cut more than a quarter of the height or a tenth of the width in all
    top, bottom = max(top, -h // 8), max(bottom, -h // 8)
    left, right = max(left, -w // 20), max(right, -w // 20)
    pad = max(0, top, bottom, left, right)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    y0, y1 = pad - top, pad + h + bottom
    x0, x1 = pad - left, pad + w + right
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def jpeg(bgr: np.ndarray, rng: random.Random, lo: int = 10, hi: int = 80) -> np.ndarray:
    """JPEG artefacts at a random quality: (H, W, 3) uint8 in, uint8 out."""
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(lo, hi)])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return decoded if decoded is not None else bgr


def street_view(image: np.ndarray, rng: random.Random, size: int) -> np.ndarray:
    """A sign seen from the street, far off: text ``size`` px high shrunk to 10-20 px,
    JPEG-compressed at that size, upsampled back, its colours washed out by haze.

    Args:
        image: (H, W, 3) float32 RGB on the 0..255 scale.
        rng: the only source of randomness.
        size: the text's height in pixels.

    Returns:
        (H, W, 3) float32 RGB on the 0..255 scale.
    """
    h, w = image.shape[:2]
    f = min(1.0, rng.uniform(10.0, 20.0) / size)
    small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA)
    small = jpeg(np.ascontiguousarray(to_uint8(small)[..., ::-1]), rng, 20, 70)[..., ::-1]
    image = cv2.resize(small.astype(np.float32), (w, h),
                       interpolation=rng.choice([cv2.INTER_LINEAR, cv2.INTER_CUBIC]))
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * rng.uniform(0.35, 0.9)
    haze = rng.uniform(0.0, 0.2)
    return (image * (1 - haze) + np.float32(rng.uniform(140, 220)) * haze).astype(np.float32)


def camera(image: np.ndarray, rng: random.Random, size: int, *, far: bool = False
           ) -> np.ndarray:
    """What a camera adds, each with its own chance: uneven light, colour changes, blur (up
    to ``size``-dependent strength), low resolution, noise, JPEG, grey, inversion.

    Args:
        image: (H, W, 3) float32 RGB on the 0..255 scale.
        rng: the only source of randomness.
        size: the text's size in pixels, which scales the blur.
        far: the image already went through :func:`street_view`: no further blur, loss of
            resolution or JPEG, which would leave little to read.

    Returns:
        (H, W, 3) uint8 BGR.
    """
    if rng.random() < 0.5:
        image = illumination(image, rng)
    if rng.random() < 0.4:
        image = colour_jitter(image, rng)
    if not far and rng.random() < 0.5:
        image = blur(image, rng, max_sigma=0.4 + size / 35)
    if not far and rng.random() < 0.45:
        image = down_up(image, rng, min_height=9)
    if rng.random() < 0.4:
        image = sensor_noise(image, rng)
    bgr = np.ascontiguousarray(to_uint8(image)[..., ::-1])
    if not far and rng.random() < 0.45:
        bgr = jpeg(bgr, rng, 10, 85)
    if rng.random() < 0.08:
        bgr = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.05:
        bgr = 255 - bgr
    return bgr
