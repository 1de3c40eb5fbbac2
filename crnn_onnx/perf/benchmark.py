"""``crnn-onnx benchmark``: torch eager against ONNX Runtime, and where predict's time goes.

Everything runs in one process on the same inputs, so the ratios are fair:

* **Engines** (:data:`ENGINES`): ``torch`` (PyTorch eager on the checkpoint the model was
  exported from; skipped with a note where torch or the checkpoint is missing), ``ort``
  (the fp32 ONNX model), ``ort-int8`` (its ``crnn-onnx quantize`` output) and ``ort-fp16``
  (its ``export --fp16`` twin, meant for CUDA). Each is timed at every batch size: warm-up
  runs first, then runs for a fixed time, split over rounds that alternate the engine order
  so that a background load drifting over time spreads over all engines alike. Reported:
  median and 90th-percentile latency per batch, images/s at the median, and the speed-ups
  over torch and over ``ort``.
* **Pipeline** (with ``images``): the stages of ``predict`` timed one after the other on
  the same files (image decode, preprocessing with batching, inference, CTC decoding),
  then :class:`~crnn_onnx.inference.predictor.Predictor` end to end on those files. Its throughput
  against the inference stage alone ("model-only") says how well reading overlaps
  inference.
* **Start-up**: one-image ``crnn-onnx predict`` as a whole process, start to exit.

Timings on a busy machine mean little: the report gives the share of the CPUs that other
processes used while it ran (Linux), so a reader can tell.

The report types and their text tables live in :mod:`crnn_onnx.perf.report` (and are
importable from here too), the machine description and load meter in :mod:`crnn_onnx.perf.machine`.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.engines.onnxruntime import Device, OrtSession, SessionOptions
from crnn_onnx.perf.machine import LoadMeter, describe_machine, package_versions
from crnn_onnx.perf.report import (
    BenchmarkReport,
    EngineTiming,
    PipelineReport,
    StageTiming,
    format_text,
)

__all__ = [
    "ENGINES",
    "BenchmarkReport",
    "EngineTiming",
    "PipelineReport",
    "StageTiming",
    "format_text",
    "run_benchmark",
]

logger = logging.getLogger(__name__)

ENGINES: tuple[str, ...] = ("torch", "ort", "ort-int8", "ort-fp16")
_ROUNDS = 2
_MIN_RUNS = 5
_MAX_RUNS = 2000


# --- engines ------------------------------------------------------------------------------

Runner = Callable[[np.ndarray], np.ndarray]


def _torch_runner(ckpt: Path, config: CRNNConfig, threads: int) -> Runner:
    import torch

    from crnn_onnx.export.checkpoint import load_checkpoint

    torch.set_num_threads(threads)
    model = load_checkpoint(ckpt, config).eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).numpy()

    return run


def _ort_runner(path: Path, device: Device, threads: int) -> tuple[Runner, OrtSession]:
    session = OrtSession(path, SessionOptions(device=device, threads=threads))
    return session.run, session


def _variant_path(model: Path, suffix: str) -> Path:
    return model.with_name(f"{model.stem}.{suffix}.onnx")


def _load_engines(
    engines: Sequence[str], model: Path, *, ckpt: Path | None, int8_model: Path | None,
    fp16_model: Path | None, device: Device, threads: int, notes: list[str],
) -> tuple[dict[str, Runner], dict[str, str], OrtSession]:
    """Build the runners that can run; explain the others in ``notes``."""
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise CRNNError(f"unknown engine(s) {', '.join(unknown)} (known: {', '.join(ENGINES)})")
    reference_run, reference = _ort_runner(model, device, threads)
    runners: dict[str, Runner] = {}
    paths: dict[str, str] = {}
    for engine in engines:
        if engine == "ort":
            runners[engine], paths[engine] = reference_run, str(model)
        elif engine in ("ort-int8", "ort-fp16"):
            kind = engine.removeprefix("ort-")
            given = int8_model if kind == "int8" else fp16_model
            path = given if given is not None else _variant_path(model, kind)
            if not path.is_file():
                how = (f"crnn-onnx quantize {model}" if kind == "int8"
                       else "crnn-onnx export --fp16 --ckpt CKPT")
                notes.append(f"{engine} skipped: {path} not found (make it with `{how}`, or "
                             f"pass --{kind}-model)")
                continue
            runners[engine], _ = _ort_runner(path, device, threads)
            paths[engine] = str(path)
            if kind == "fp16" and reference.device == "cpu":
                notes.append("ort-fp16 on the CPU: ONNX Runtime has no fp16 kernels for this "
                             "model's ops there and computes in fp32 between Casts; fp16 is "
                             "for CUDA")
        elif engine == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                notes.append("torch skipped: PyTorch is not installed (pip install "
                             "'crnn-onnx[export]')")
                continue
            path = ckpt if ckpt is not None else model.with_suffix(".pth")
            if not path.is_file():
                notes.append(f"torch skipped: no checkpoint ({path} not found; pass --ckpt)")
                continue
            runners[engine] = _torch_runner(path, reference.config, threads)
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


# --- inputs and pipeline --------------------------------------------------------------------


def _image_files(images: Path, limit: int) -> list[str]:
    from crnn_onnx.inference.images import expand_paths

    files = [src.path for src in expand_paths([images]) if src.error is None]
    if not files:
        raise CRNNError(f"{images}: no image files found")
    return files[:limit]


def _inputs(files: list[str] | None, config: CRNNConfig, width: int, count: int
            ) -> np.ndarray:
    """(count, 3, 32, width) float32: real preprocessed crops (repeated if too few), or
    seeded standard-normal noise without files."""
    if not files:
        return np.random.default_rng(0).standard_normal((count, 3, config.height, width),
                                                        dtype=np.float32)
    from crnn_onnx.inference.images import read_image
    from crnn_onnx.inference.preprocess import preprocess

    tensors = [preprocess(read_image(f), config, width) for f in files[:count]]
    return np.stack([tensors[i % len(tensors)] for i in range(count)])


def _pipeline(files: list[str], source: str, model: Path, session: OrtSession, *, batch: int,
              device: Device, threads: int) -> PipelineReport:
    """Time predict's stages one after the other, then the Predictor end to end.

    Inference alone and the Predictor end to end alternate for :data:`_ROUNDS` rounds
    (their times averaged), so that a load that comes and goes touches both alike.
    """
    from crnn_onnx.inference.decoder import ctc_greedy_decode
    from crnn_onnx.inference.images import read_image
    from crnn_onnx.inference.predictor import Predictor
    from crnn_onnx.inference.preprocess import preprocess

    config = session.config
    n = len(files)
    t0 = time.perf_counter()
    decoded = [read_image(f) for f in files]
    t1 = time.perf_counter()
    batches = [
        np.stack([preprocess(image, config) for image in decoded[i:i + batch]])
        for i in range(0, n, batch)
    ]
    t2 = time.perf_counter()
    logits = [session.run(b) for b in batches]
    t3 = time.perf_counter()
    for out in logits:
        ctc_greedy_decode(out, config.charset)
    t4 = time.perf_counter()

    predictor = Predictor(model, device, batch_size=batch, threads=threads)
    predictor.predict(files[:1])  # warm-up: first-run allocations
    inference, end_to_end = [t3 - t2], []
    for round_index in range(_ROUNDS):
        if round_index:
            start = time.perf_counter()
            for b in batches:
                session.run(b)
            inference.append(time.perf_counter() - start)
        start = time.perf_counter()
        count = sum(1 for _ in predictor.predict_paths(files))
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
                          end_to_end_s=statistics.mean(end_to_end))


def _startup(image: str, model: Path, runs: int) -> float:
    """Median wall time of ``python -m crnn_onnx predict IMAGE --model MODEL -q``."""
    command = [sys.executable, "-m", "crnn_onnx", "predict", image, "--model", str(model), "-q"]
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              check=False)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise CRNNError(f"one-image predict failed: {done.stderr.decode().strip()[-300:]}")
    return statistics.median(walls)


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
    startup_runs: int = 3,
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
        startup_runs: one-image processes to time (0 skips it).

    Raises:
        CRNNError: bad arguments, an unknown engine, or a model that does not load.
    """
    if not batch_sizes or min(batch_sizes) < 1:
        raise CRNNError(f"batch sizes must be at least 1, got {list(batch_sizes)}")
    if seconds <= 0 or warmup < 0 or startup_runs < 0 or pipeline_images < 1:
        raise CRNNError("seconds must be > 0, warmup and startup runs >= 0, pipeline images >= 1")
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
    config = reference.config
    width = width or config.width
    if reference.static_width is not None and width != reference.static_width:
        raise CRNNError(f"this model's input width is fixed at {reference.static_width}")

    files = _image_files(Path(images), pipeline_images) if images is not None else None
    largest = max(batch_sizes)
    inputs = _inputs(files, config, width, largest)
    described = (f"{min(len(files), largest)} word images from {images}" if files
                 else "seeded standard-normal noise (no --images)")

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
    startup = None
    if files:
        logger.info("timing the pipeline on %d images", len(files))
        pipeline = _pipeline(files, str(images), model, reference,
                             batch=pipeline_batch or largest, device=device, threads=threads)
        if startup_runs:
            logger.info("timing %d one-image predict process(es)", startup_runs)
            startup = _startup(files[0], model, startup_runs)
    else:
        notes.append("pipeline and start-up skipped: pass --images DIR (word images)")

    return BenchmarkReport(
        machine=describe_machine(), versions=package_versions(), threads=threads, width=width,
        inputs=described, models=paths, timings=tuple(timings), max_abs_diff=diffs,
        pipeline=pipeline, startup_s=startup, background_load=meter.stop(), notes=tuple(notes),
    )
