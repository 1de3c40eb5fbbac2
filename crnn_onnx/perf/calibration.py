"""Calibration images for int8 quantization: word crops preprocessed as ``predict`` does."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.images import expand_paths, read_image
from crnn_onnx.inference.preprocess import preprocess

__all__ = ["CalibrationReader", "calibration_images"]

_CALIBRATION_BATCH = 16

logger = logging.getLogger(__name__)


def calibration_images(
    config: CRNNConfig,
    folder: str | Path | None = None,
    *,
    count: int = 320,
    seed: int = 0,
) -> tuple[list[np.ndarray], str]:
    """Preprocessed calibration inputs and a description of where they came from.

    Args:
        config: preprocessing settings; every image is preprocessed at ``config.width``.
        folder: images to use (searched recursively, as ``predict`` does); ``None`` renders
            synthetic crops of the *train* split (:func:`crnn_onnx.synth.dataset.synth_samples`).
        count: most images to use; from a larger folder a seeded random sample is drawn.
        seed: seed of the sample (and of the synthetic renderer).

    Returns:
        ((3, 32, config.width) float32 arrays, where they came from in words).

    Raises:
        CRNNError: the folder holds no readable image; synthetic rendering unavailable.
    """
    if count < 1:
        raise CRNNError(f"the calibration needs at least 1 image, got count={count}")
    if folder is None:
        from crnn_onnx.synth.dataset import require_pillow, synth_samples

        require_pillow("calibrating without calibration= renders synthetic crops, which",
                       name="PIL", hint=", or pass a folder of word images")
        tensors = [
            preprocess(sample.image, config)
            for sample in synth_samples(count, split="train", seed=seed)
        ]
        return tensors, f"synthetic crops (crnn_onnx.synth, train split, seed {seed})"

    folder = Path(folder)
    if not folder.is_dir():
        raise CRNNError(f"calibration folder {str(folder)!r} is not a directory")
    files = [src.path for src in expand_paths([folder]) if src.error is None]
    if len(files) > count:
        files = sorted(random.Random(seed).sample(files, count))
    tensors = []
    for path in files:
        try:
            tensors.append(preprocess(read_image(path), config))
        except CRNNError as err:
            logger.warning("calibration: skipping %s: %s", path, err)
    if not tensors:
        raise CRNNError(f"calibration folder {str(folder)!r} holds no readable images")
    return tensors, f"images from {folder}"


class CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol over preprocessed images, in batches."""

    def __init__(self, images: list[np.ndarray], input_name: str) -> None:
        self._images = images
        self._input_name = input_name
        self._batches = self._iterate()

    def _iterate(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self._images), _CALIBRATION_BATCH):
            yield {self._input_name: np.stack(self._images[start:start + _CALIBRATION_BATCH])}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = self._iterate()
