"""The benchmark: engines on the same inputs in one process, then predict's pipeline.

* **Engines** (:data:`ENGINES`): ``torch`` (PyTorch eager on the checkpoint the model was
  exported from), ``ort`` (the fp32 ONNX model), ``ort-int8`` (its quantized twin) and
  ``ort-fp16`` (its fp16 twin, meant for CUDA); one that cannot run is skipped with a note.
  Each is timed at every batch size: warm-up runs, then runs for a fixed time, in rounds
  that alternate the engine order so that a drifting background load touches all alike.
* **Pipeline** (with ``images``): predict's stages one after the other, then the Predictor
  end to end (:mod:`crnn_onnx.perf.pipeline`); and, through a caller's ``startup``
  function, a one-image process from start to exit.

The report (:mod:`crnn_onnx.perf.report`) says how busy other processes kept the CPUs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.engines.factory import open_engine
from crnn_onnx.inference.options import Device, EngineName, Precision, PredictorOptions
from crnn_onnx.perf.field import ARITHMETIC, DEFAULT_FIELD, Runner, cpu_has_bf16, load_field
from crnn_onnx.perf.machine import (
    LoadMeter,
    blas_sgemm_rate,
    describe_machine,
    package_versions,
)
from crnn_onnx.perf.pipeline import engine_inputs, image_files, time_pipeline
from crnn_onnx.perf.report import BenchmarkReport, EngineTiming

__all__ = ["run_benchmark"]

logger = logging.getLogger(__name__)

_ROUNDS = 2
_MIN_RUNS = 5
_MAX_RUNS = 2000


def _time_engines(
    runners: dict[str, Runner], x: np.ndarray, *, seconds: float, warmup: int
) -> dict[str, list[float]]:
    """Per engine, the seconds of each timed run on ``x``.

    Each engine is warmed up, then timed for ``seconds`` in all, in :data:`_ROUNDS`
    blocks; the engine order reverses from one round to the next. Blocks (rather than one
    run each in turn) keep one engine's idle worker threads, which spin for a while after
    a run, from stealing the cores of the next engine's run.
    """
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name](x)
    times: dict[str, list[float]] = {name: [] for name in names}
    per_block = seconds / _ROUNDS
    for round_index in range(_ROUNDS):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            run = runners[name]
            run(x)  # settle the threads after the previous engine's block
            block: list[float] = []
            started = time.perf_counter()
            while (len(block) < _MIN_RUNS // _ROUNDS + 1
                   or time.perf_counter() - started < per_block) and len(block) < _MAX_RUNS:
                t0 = time.perf_counter()
                run(x)
                block.append(time.perf_counter() - t0)
            times[name].extend(block)
    return times


def _timing(engine: str, x: np.ndarray, samples: list[float]) -> EngineTiming:
    ms = np.asarray(samples) * 1000.0
    return EngineTiming(
        engine=engine, batch=x.shape[0], width=x.shape[3],
        median_ms=float(np.median(ms)), p90_ms=float(np.percentile(ms, 90)), runs=len(ms),
        precision=ARITHMETIC[engine],
    )


def _ceilings(config_width: int, reference_config: object, threads: int, seconds: float,
              notes: list[str]) -> tuple[dict[str, float], float | None]:
    """The machine's fp32 GEMM rate (the faster of numpy's BLAS and PyTorch), its bf16 rate
    (PyTorch, where the CPU has bf16 units), and the model's FLOPs per image (PyTorch's
    counter); empty without PyTorch."""
    try:
        from crnn_onnx.export.eager import flops_per_image, gemm_ceiling
    except ImportError:
        notes.append("ceilings skipped: they are measured with PyTorch (pip install "
                     "'crnn-onnx[export]')")
        return {}, None
    ceilings = {"fp32": max(blas_sgemm_rate(seconds=seconds),
                            gemm_ceiling("float32", threads, seconds=seconds))}
    if cpu_has_bf16():
        ceilings["bf16"] = gemm_ceiling("bfloat16", threads, seconds=seconds)
    notes.append("ceilings are what the GEMM libraries reach here; an engine with kernels "
                 "of its own (or Winograd convolutions) can pass them")
    return ceilings, flops_per_image(reference_config, config_width)  # type: ignore[arg-type]


# --- the benchmark ----------------------------------------------------------------------------


def run_benchmark(
    model: str | Path,
    *,
    engines: Sequence[str] = DEFAULT_FIELD,
    batch_sizes: Sequence[int] = (1, 8, 32),
    width: int | None = None,
    threads: int | None = None,
    device: Device = "cpu",
    ckpt: str | Path | None = None,
    int8_model: str | Path | None = None,
    fp16_model: str | Path | None = None,
    images: str | Path | None = None,
    pipeline_images: int = 1000,
    pipeline_batch: int | None = None,
    seconds: float = 1.0,
    warmup: int = 3,
    startup: Callable[[str], float] | None = None,
    pipeline_engine: EngineName = "onnxruntime",
    pipeline_precision: Precision = "fp32",
    ceilings: bool = True,
) -> BenchmarkReport:
    """Time the engines on the same inputs, then the pipeline and the start-up.

    Args:
        model: the fp32 ONNX model (``ort``); the other engines' files default to its
            neighbours: ``NAME.int8.onnx``, ``NAME.fp16.onnx`` and ``NAME.pth``.
        engines: which of :data:`~crnn_onnx.perf.field.FIELD` to time; those that cannot
            run here are skipped with a note.
        batch_sizes: images per run.
        width: input width; default the model's.
        threads: intra-op threads for every engine (torch and ONNX Runtime); default one
            per CPU.
        device: ONNX Runtime device (``cpu`` by default, to compare with torch on the CPU).
        ckpt: checkpoint for ``torch``.
        int8_model, fp16_model: files for ``ort-int8`` / ``ort-fp16``.
        images: folder (or file/glob) of word images: the engines' inputs, the pipeline
            breakdown and the start-up run use them; without it the engines get seeded
            noise and the pipeline and start-up are skipped.
        pipeline_images: most files for the pipeline.
        pipeline_batch: batch size of the pipeline; default the largest of ``batch_sizes``.
        seconds: timed seconds per engine and batch size (after ``warmup`` runs).
        warmup: untimed runs per engine and batch size.
        startup: times a one-image prediction process on the image path it is given
            (start to exit, in seconds); ``None`` skips it.
        pipeline_engine, pipeline_precision: what runs the pipeline's Predictor.
        ceilings: measure the machine's GEMM rates and each engine's share of them.

    Raises:
        CRNNError: bad arguments, an unknown engine, or a model that does not load.
    """
    if not batch_sizes or min(batch_sizes) < 1:
        raise CRNNError(f"batch sizes must be at least 1, got {list(batch_sizes)}")
    if seconds <= 0 or warmup < 0 or pipeline_images < 1:
        raise CRNNError("seconds must be > 0, warmup >= 0, pipeline images >= 1")
    if not engines:
        raise CRNNError("no engines to benchmark")
    meter = LoadMeter()
    model = Path(model)
    threads = threads or os.cpu_count() or 1
    field = load_field(
        list(dict.fromkeys(engines)), model,
        ckpt=Path(ckpt) if ckpt is not None else None,
        int8_model=Path(int8_model) if int8_model is not None else None,
        fp16_model=Path(fp16_model) if fp16_model is not None else None,
        device=device, threads=threads,
    )
    notes, runners, reference = field.notes, field.runners, field.reference
    if not runners:
        raise CRNNError("none of the engines can run: " + "; ".join(notes))
    config = reference.spec.config
    width = width or config.width
    static_width = reference.spec.static_width
    if static_width is not None and width != static_width:
        raise CRNNError(f"this model's input width is fixed at {static_width}")

    files = image_files(Path(images), pipeline_images) if images is not None else None
    largest = max(batch_sizes)
    inputs = engine_inputs(files, config, width, largest)
    described = (f"{min(len(files), largest)} word images from {images}" if files
                 else "seeded standard-normal noise (no images=)")

    timings = []
    for batch in sorted(set(batch_sizes)):
        x = np.ascontiguousarray(inputs[:batch])
        logger.info("timing %s at batch %d, width %d", ", ".join(runners), batch, width)
        for engine, samples in _time_engines(runners, x, seconds=seconds, warmup=warmup).items():
            timings.append(_timing(engine, x, samples))

    reference_out = reference.run(inputs)
    diffs = {
        engine: float(np.max(np.abs(run(inputs).astype(np.float32) - reference_out)))
        for engine, run in runners.items() if engine != "ort"
    }
    rates, flops = (_ceilings(width, config, threads, seconds, notes) if ceilings
                    else ({}, None))

    pipeline = None
    startup_s = None
    if files:
        logger.info("timing the pipeline on %d images", len(files))
        options = PredictorOptions(engine=pipeline_engine, precision=pipeline_precision,
                                   device=device, threads=threads)
        runs_pipeline = (reference if (pipeline_engine, pipeline_precision) == ("onnxruntime",
                                                                                "fp32")
                         else open_engine(model, options))
        pipeline = time_pipeline(files, str(images), runs_pipeline,
                                 batch=pipeline_batch or largest, options=options)
        if startup is not None:
            logger.info("timing one-image prediction processes")
            startup_s = startup(files[0])
    else:
        notes.append("pipeline and start-up skipped: pass images=DIR (word images)")

    return BenchmarkReport(
        machine=describe_machine(), versions=package_versions(), threads=threads, width=width,
        inputs=described, models=field.files, timings=tuple(timings), max_abs_diff=diffs,
        ceilings=rates, flops_per_image=flops,
        pipeline=pipeline, startup_s=startup_s, background_load=meter.stop(), notes=tuple(notes),
    )
