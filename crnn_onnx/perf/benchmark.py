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
from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions
from crnn_onnx.inference.options import Device, PredictorOptions
from crnn_onnx.perf.machine import LoadMeter, describe_machine, package_versions
from crnn_onnx.perf.pipeline import engine_inputs, image_files, time_pipeline
from crnn_onnx.perf.report import BenchmarkReport, EngineTiming

__all__ = ["ENGINES", "run_benchmark"]

logger = logging.getLogger(__name__)

ENGINES: tuple[str, ...] = ("torch", "ort", "ort-int8", "ort-fp16")
_ROUNDS = 2
_MIN_RUNS = 5
_MAX_RUNS = 2000

Runner = Callable[[np.ndarray], np.ndarray]


def _variant_path(model: Path, suffix: str) -> Path:
    return model.with_name(f"{model.stem}.{suffix}.onnx")


def _load_engines(
    engines: Sequence[str], model: Path, *, ckpt: Path | None, int8_model: Path | None,
    fp16_model: Path | None, device: Device, threads: int, notes: list[str],
) -> tuple[dict[str, Runner], dict[str, str], OrtEngine]:
    """Build the runners that can run; explain the others in ``notes``."""
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise CRNNError(f"unknown engine(s) {', '.join(unknown)} (known: {', '.join(ENGINES)})")
    options = OrtOptions(device=device, threads=threads)
    reference = OrtEngine(model, options)
    runners: dict[str, Runner] = {}
    paths: dict[str, str] = {}
    for engine in engines:
        if engine == "ort":
            runners[engine], paths[engine] = reference.run, str(model)
        elif engine in ("ort-int8", "ort-fp16"):
            kind = engine.removeprefix("ort-")
            given = int8_model if kind == "int8" else fp16_model
            path = given if given is not None else _variant_path(model, kind)
            if not path.is_file():
                how = (f"quantize_model({model})" if kind == "int8"
                       else "export_checkpoint(CKPT, fp16=True)")
                notes.append(f"{engine} skipped: {path} not found (make it with `{how}`, or "
                             f"pass {kind}_model=)")
                continue
            runners[engine], paths[engine] = OrtEngine(path, options).run, str(path)
            if kind == "fp16" and reference.device == "cpu":
                notes.append("ort-fp16 on the CPU: ONNX Runtime has no fp16 kernels for this "
                             "model's ops there and computes in fp32 between Casts; fp16 is "
                             "for CUDA")
        elif engine == "torch":
            try:
                from crnn_onnx.export.eager import eager_runner
            except ImportError:
                notes.append("torch skipped: PyTorch is not installed (pip install "
                             "'crnn-onnx[export]')")
                continue
            path = ckpt if ckpt is not None else model.with_suffix(".pth")
            if not path.is_file():
                notes.append(f"torch skipped: no checkpoint ({path} not found; pass ckpt=)")
                continue
            runners[engine] = eager_runner(path, reference.spec.config, threads)
            paths[engine] = str(path)
    return runners, paths, reference


# --- timing ---------------------------------------------------------------------------------


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
    )


# --- the benchmark ----------------------------------------------------------------------------


def run_benchmark(
    model: str | Path,
    *,
    engines: Sequence[str] = ("torch", "ort", "ort-int8"),
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
) -> BenchmarkReport:
    """Time the engines on the same inputs, then the pipeline and the start-up.

    Args:
        model: the fp32 ONNX model (``ort``); the other engines' files default to its
            neighbours: ``NAME.int8.onnx``, ``NAME.fp16.onnx`` and ``NAME.pth``.
        engines: which of :data:`ENGINES` to time; missing ones are skipped with a note.
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
    notes: list[str] = []
    runners, paths, reference = _load_engines(
        list(dict.fromkeys(engines)), model,
        ckpt=Path(ckpt) if ckpt is not None else None,
        int8_model=Path(int8_model) if int8_model is not None else None,
        fp16_model=Path(fp16_model) if fp16_model is not None else None,
        device=device, threads=threads, notes=notes,
    )
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

    pipeline = None
    startup_s = None
    if files:
        logger.info("timing the pipeline on %d images", len(files))
        pipeline = time_pipeline(files, str(images), reference, batch=pipeline_batch or largest,
                                 options=PredictorOptions(device=device, threads=threads))
        if startup is not None:
            logger.info("timing one-image prediction processes")
            startup_s = startup(files[0])
    else:
        notes.append("pipeline and start-up skipped: pass images=DIR (word images)")

    return BenchmarkReport(
        machine=describe_machine(), versions=package_versions(), threads=threads, width=width,
        inputs=described, models=paths, timings=tuple(timings), max_abs_diff=diffs,
        pipeline=pipeline, startup_s=startup_s, background_load=meter.stop(), notes=tuple(notes),
    )
