"""Training crops: augmentation that keeps a crop a crop, faded ink that only lightens the
strokes, and the fit to the model canvas.
(Labels, reading and the hold-out split: test_training_parts.py.)"""

from __future__ import annotations

import random

import cv2
import numpy as np

from crnn_onnx.training.augment import augment_crop
from crnn_onnx.training.canvas import resize_and_pad


def test_augmented_crops_stay_crops_and_follow_the_seed() -> None:
    crop = np.zeros((24, 80, 3), np.uint8)
    cv2.putText(crop, "shop", (3, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    outputs = [augment_crop(crop, random.Random(seed)) for seed in range(30)]
    for seed, out in enumerate(outputs):
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        assert 12 <= out.shape[0] <= 36 and 60 <= out.shape[1] <= 100
        assert np.array_equal(out, augment_crop(crop, random.Random(seed)))
    assert len({out.tobytes() for out in outputs}) == len(outputs)


def test_crops_are_fitted_to_the_model_canvas(default_config) -> None:
    wide = np.full((20, 300, 3), 7, np.uint8)
    narrow = np.full((40, 40, 3), 9, np.uint8)
    fitted = resize_and_pad(wide, default_config)
    assert fitted.shape == (32, 100, 3) and fitted.dtype == np.uint8 and (fitted == 7).all()
    fitted = resize_and_pad(narrow, default_config)
    assert (fitted[:, :32] == 9).all() and (fitted[:, 32:] == 128).all()


def test_faded_ink_lightens_strokes_toward_the_paper_and_leaves_the_paper() -> None:
    from crnn_onnx.synth.effects import faded_ink

    page = np.full((32, 120, 3), 230, np.uint8)
    cv2.putText(page, "TOTAL", (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (20, 20, 20), 2)
    page = page.astype(np.float32)
    ink = page[..., 0] < 100
    faded = [faded_ink(page, random.Random(seed)) for seed in range(20)]
    for seed, out in enumerate(faded):
        assert out.shape == page.shape and out.dtype == np.float32
        assert np.array_equal(out, faded_ink(page, random.Random(seed)))
        assert np.allclose(out[~ink & (cv2.dilate(ink.astype(np.uint8), np.ones((5, 5))) == 0)],
                           230.0)  # paper away from the letters stays paper
        assert out.min() >= 20.0 - 1e-3 and out.max() <= 230.0 + 1e-3
    lighter = [float(out[..., 0][ink].mean()) - 20.0 for out in faded]
    assert min(lighter) >= 0.0 and max(lighter) > 40.0  # strokes wash out, never darken
