"""Training crops: augmentation that keeps a crop a crop, and the fit to the model canvas.
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
