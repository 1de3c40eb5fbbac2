"""The prediction pipeline under the stopwatch: its stages one after the other, then the
Predictor end to end, on the same image files."""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.decoder import ctc_greedy_decode
from crnn_onnx.inference.engines.base import Engine
from crnn_onnx.inference.images import expand_paths, read_image
from crnn_onnx.inference.options import PredictorOptions
from crnn_onnx.inference.predictor import Predictor
from crnn_onnx.inference.preprocess import preprocess
from crnn_onnx.perf.report import PipelineReport, StageTiming

__all__ = ["engine_inputs", "image_files", "time_pipeline"]

#: Rounds of (model only, end to end), alternated so that a passing load touches both.
_ROUNDS = 2


def image_files(images: Path, limit: int) -> list[str]:
    files = [src.path for src in expand_paths([images]) if src.error is None]
    if not files:
        raise CRNNError(f"{images}: no image files found")
    return files[:limit]


def engine_inputs(files: list[str] | None, config: CRNNConfig, width: int, count: int
            ) -> np.ndarray:
    """(count, 3, 32, width) float32: real preprocessed crops (repeated if too few), or
    seeded standard-normal noise without files."""
    if not files:
        return np.random.default_rng(0).standard_normal((count, 3, config.height, width),
                                                        dtype=np.float32)
    tensors = [preprocess(read_image(f), config, width) for f in files[:count]]
    return np.stack([tensors[i % len(tensors)] for i in range(count)])


def time_pipeline(files: list[str], source: str, engine: Engine, *, batch: int,
                  options: PredictorOptions) -> PipelineReport:
    """Time predict's stages one after the other, then the Predictor end to end.

    Inference alone and the Predictor end to end alternate for :data:`_ROUNDS` rounds
    (their times averaged), so that a load that comes and goes touches both alike.
    """
    config = engine.spec.config
    n = len(files)
    t0 = time.perf_counter()
    decoded = [read_image(f) for f in files]
    t1 = time.perf_counter()
    batches = [
        np.stack([preprocess(image, config) for image in decoded[i:i + batch]])
        for i in range(0, n, batch)
    ]
    t2 = time.perf_counter()
    logits = [engine.run(b) for b in batches]
    t3 = time.perf_counter()
    for out in logits:
        ctc_greedy_decode(out, config.charset)
    t4 = time.perf_counter()

    predictor = Predictor(engine, dataclasses.replace(options, batch_size=batch))
    predictor.predict(files[:1])  # warm-up: first-run allocations
    inference, end_to_end = [t3 - t2], []
    for round_index in range(_ROUNDS):
        if round_index:
            start = time.perf_counter()
            for b in batches:
                engine.run(b)
            inference.append(time.perf_counter() - start)
        start = time.perf_counter()
        count = len(predictor.predict(files))
        end_to_end.append(time.perf_counter() - start)
        if count != n:
            raise CRNNError(f"the pipeline returned {count} predictions for {n} files")
    stages = tuple(
        StageTiming(stage, 1000.0 * seconds / n)
        for stage, seconds in (("image decode", t1 - t0), ("preprocessing", t2 - t1),
                               ("inference", statistics.mean(inference)),
                               ("CTC decoding", t4 - t3))
    )
    return PipelineReport(images=n, batch=batch, source=source, stages=stages,
                          end_to_end_s=statistics.mean(end_to_end),
                          engine=f"{engine.name}, {engine.precision}")
