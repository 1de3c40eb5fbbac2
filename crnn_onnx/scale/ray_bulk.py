"""Bulk recognition on Ray Data: the toolkit's Predictor, one per actor, over many crops.

The toolkit hands its pipeline to Ray rather than scheduling work itself:

1. the driver lists the inputs: local paths exactly as ``crnn-onnx predict`` expands them
   (:func:`crnn_onnx.inference.images.expand_paths`), and URIs that pyarrow's filesystems open
   (``s3://``, ``gs://``, ``hdfs://``, ``file://``; a folder URI is listed recursively, in
   sorted order). One dataset row per input, numbered;
2. ``Dataset.map_batches`` runs :class:`RecognizeBatch`, a callable class, on a fixed pool
   of actors. Each actor builds one :class:`~crnn_onnx.inference.predictor.Predictor` (one ONNX
   Runtime session) and turns rows into records with the same reading, preprocessing,
   session and CTC decoding as ``predict``; an input that cannot be read becomes an error
   record, never a failed task;
3. the records stream back to the driver in input order and are written as JSON Lines
   (byte for byte what ``predict --format jsonl`` writes, through the same
   :class:`~crnn_onnx.records.RecordWriter`) or Parquet (the same records as columns).

The model file travels to the actors with the job (its bytes, once per actor), so a cluster
needs no shared copy of it; local image paths, however, must be readable on every node (a
shared filesystem), or be given as URIs. Every node needs ``crnn-onnx[ray]`` installed.

Ray and pyarrow (which ``ray[data]`` brings) are imported only inside the functions that
use them: ``import crnn_onnx.scale.ray_bulk`` works without them, and using it without Ray raises
:class:`~crnn_onnx.errors.CRNNError` naming the extra to install.

Listing the inputs lives in :mod:`crnn_onnx.scale.ray_inputs`, the actor in
:mod:`crnn_onnx.scale.ray_actor`; this module builds the dataset, runs it and writes the results.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.inference.engines.onnxruntime import Device
from crnn_onnx.inference.predictor import Prediction, Predictor
from crnn_onnx.inference.preprocess import WidthPolicy
from crnn_onnx.records import RecordWriter, atomic_output, output_record
from crnn_onnx.scale.ray_actor import RecognizeBatch
from crnn_onnx.scale.ray_inputs import RAY_EXTRA_HINT, import_pyarrow, import_ray, list_inputs

__all__ = [
    "BULK_FORMATS",
    "RAY_EXTRA_HINT",
    "BulkFormat",
    "BulkReport",
    "RecognizeBatch",
    "bulk_predict",
    "iter_predictions",
    "ray_session",
    "recognize_dataset",
]

logger = logging.getLogger(__name__)

BulkFormat = Literal["jsonl", "parquet"]
BULK_FORMATS: tuple[str, ...] = ("jsonl", "parquet")

#: Rows per actor call, in model batches: with several windows per call, the Predictor reads
#: and preprocesses the next window while the session runs the current one.
_BATCHES_PER_CALL = 4


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Use the running Ray instance, or start one (``address=None``: a new local instance;
    otherwise connect to that cluster) and shut it down at the end.

    Args:
        address: a cluster address (``ray://host:10001``, ``host:6379``, ``auto``), or
            ``None`` for a local instance.
        num_cpus: CPUs of a local instance; ``None`` for all of them.

    Yields:
        The ``ray`` module.

    Raises:
        CRNNError: Ray is not installed, or the cluster cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        if address is not None:
            logger.warning("Ray is already initialised in this process; ignoring address %s",
                           address)
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is None:
        options["num_cpus"] = num_cpus
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise CRNNError(f"cannot start or reach {where}: {one_line(err, keep='first')}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _plan_workers(ray: ModuleType, workers: int | None, cpus: int,
                  gpus: float) -> int:
    """The actor count: ``workers``, or as many as the cluster's CPUs (GPUs) hold."""
    resources = ray.cluster_resources()
    have_cpus, have_gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if workers is None:
        fit = have_gpus / gpus if gpus > 0 else have_cpus / cpus
        workers = max(1, int(fit))
    # A fixed actor pool larger than the cluster waits for resources that never come.
    if workers * cpus > have_cpus or workers * gpus > have_gpus:
        raise CRNNError(
            f"{workers} worker(s) x ({cpus} CPU, {gpus:g} GPU) do not fit the Ray cluster "
            f"({have_cpus:g} CPU, {have_gpus:g} GPU): lower --workers, --threads or "
            "--gpus-per-worker"
        )
    return workers


def recognize_dataset(
    paths: Sequence[str | Path],
    model_path: str | Path,
    *,
    config: CRNNConfig | None = None,
    device: Device = "auto",
    batch_size: int = 32,
    threads: int = 1,
    width_policy: WidthPolicy = "fixed",
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
) -> Any:
    """A lazy Ray dataset of records, one per input, in input order.

    The model is loaded once on the driver first, so that a bad model, config or
    width policy fails here with one line rather than inside every actor.

    Args:
        paths: files, directories, glob patterns (as for ``predict``) and URIs.
        model_path: the .onnx model.
        config: overrides the model's metadata.
        device: ``auto``, ``cpu`` or ``cuda``, for the actors' sessions.
        batch_size: images per model run.
        threads: ONNX Runtime intra-op threads per actor, and the CPUs Ray reserves for it.
        width_policy: ``fixed`` or ``bucket``.
        workers: actors; ``None`` fills the cluster (its CPUs / threads, or its GPUs /
            ``gpus_per_worker``).
        gpus_per_worker: GPUs Ray reserves per actor (fractions share a GPU); 0 for none.
        progress: show Ray Data's progress bars (on stderr).

    Returns:
        A ``ray.data.Dataset`` with columns ``index`` (int64), ``path``, ``text``,
        ``confidence`` (float64, unrounded) and ``error``; iterate it with
        :func:`iter_predictions`, or write it with Ray's own writers.

    Raises:
        CRNNError: Ray missing, bad arguments, the model cannot be loaded, or the workers
            do not fit the cluster.
    """
    return _build_dataset(
        paths, model_path, config=config, device=device, batch_size=batch_size,
        threads=threads, width_policy=width_policy, workers=workers,
        gpus_per_worker=gpus_per_worker, progress=progress,
    )[0]


def _build_dataset(
    paths: Sequence[str | Path],
    model_path: str | Path,
    *,
    config: CRNNConfig | None,
    device: Device,
    batch_size: int,
    threads: int,
    width_policy: WidthPolicy,
    workers: int | None,
    gpus_per_worker: float,
    progress: bool,
) -> tuple[Any, int, list[str]]:
    """:func:`recognize_dataset`, the number of actors it runs on, and the inputs' paths."""
    ray = import_ray()
    pa = import_pyarrow()
    if batch_size < 1:
        raise CRNNError(f"batch_size must be at least 1, got {batch_size}")
    if threads < 1:
        raise CRNNError(f"threads must be at least 1, got {threads}")
    if workers is not None and workers < 1:
        raise CRNNError(f"workers must be at least 1, got {workers}")
    if gpus_per_worker < 0:
        raise CRNNError(f"gpus_per_worker must be >= 0, got {gpus_per_worker:g}")
    if gpus_per_worker > 0 and device == "cpu":
        raise CRNNError("gpus_per_worker > 0 reserves GPUs that device 'cpu' would not use")
    # Fail fast, on the driver, with the Predictor's own checks.
    Predictor(model_path, "cpu", batch_size=batch_size, threads=1, width_policy=width_policy,
              config=config)
    # Shipped once through the object store rather than pickled into the UDF.
    model = ray.put(Path(model_path).read_bytes())
    n_workers = _plan_workers(ray, workers, threads, gpus_per_worker)

    inputs, filesystems = list_inputs(paths)
    # One block per actor call, so that the pool shares the work from the start; small
    # inputs are spread over all the actors.
    rows_per_call = max(1, min(batch_size * _BATCHES_PER_CALL,
                               math.ceil(len(inputs) / n_workers)))
    blocks = [
        pa.table({
            "index": list(range(start, start + len(chunk))),
            "path": pa.array([os.fsencode(item.path) for item in chunk], pa.binary()),
            "error": [item.error for item in chunk],
            "fs_index": pa.array([item.fs_index for item in chunk], pa.int64()),
            "fs_path": pa.array([item.fs_path for item in chunk], pa.string()),
        })
        for start in range(0, len(inputs), rows_per_call)
        for chunk in [inputs[start:start + rows_per_call]]
    ]
    dataset = ray.data.from_arrow(blocks)
    dataset = dataset.map_batches(
        RecognizeBatch,
        fn_constructor_kwargs={
            "model": model, "filesystems": filesystems, "config": config, "device": device,
            "batch_size": batch_size, "threads": threads, "width_policy": width_policy,
        },
        batch_size=rows_per_call,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=n_workers),
        num_cpus=threads,
        num_gpus=gpus_per_worker or None,
    )
    dataset.context.execution_options.preserve_order = True
    dataset.context.enable_progress_bars = progress
    return dataset, n_workers, [item.path for item in inputs]


def iter_predictions(dataset: Any, paths: Sequence[str] | None = None) -> Iterator[Prediction]:
    """The records of a :func:`recognize_dataset` dataset, in input order, as Predictions.

    Args:
        dataset: from :func:`recognize_dataset`.
        paths: the inputs' exact paths, by index. The dataset's ``path`` column is UTF-8
            text, so a file name that is not UTF-8 appears there with ``\\xNN`` escapes;
            with ``paths`` the Predictions carry the name itself, as ``predict``'s do.

    Raises:
        CRNNError: a worker failed with a toolkit error (its one-line message), or the rows
            came back out of order.
    """
    expected = 0
    try:
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in table.to_pylist():
                if row["index"] != expected:
                    raise CRNNError(
                        f"bulk results came back out of order (row {row['index']} where "
                        f"{expected} was expected)"
                    )
                expected += 1
                path = paths[row["index"]] if paths is not None else row["path"]
                yield Prediction(path, row["text"], row["confidence"], error=row["error"])
    except Exception as err:  # Ray wraps worker failures; surface the toolkit's own.
        cause = _toolkit_cause(err)
        if cause is None:
            raise
        raise CRNNError(str(cause)) from None


#: How a worker's CRNNError appears in the text of the error Ray raises on the driver.
_REMOTE_ERROR = re.compile(r"crnn_onnx\.errors\.CRNNError: ([^\n]+)")


def _toolkit_cause(err: BaseException) -> CRNNError | None:
    """The toolkit error behind a Ray error: the exception itself where Ray kept it (its
    ``cause``, ``__cause__``), else the last one named in the remote traceback text (Ray
    Data passes worker failures on as text)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, CRNNError):
            return current
        found = _REMOTE_ERROR.findall(str(current))
        if found:
            return CRNNError(found[-1].strip())
        seen.add(id(current))
        nested = getattr(current, "cause", None)
        current = nested if isinstance(nested, BaseException) else (
            current.__cause__ or current.__context__
        )
    return None


@dataclass(frozen=True)
class BulkReport:
    """What :func:`bulk_predict` wrote.

    Attributes:
        output: the results file.
        total: records written (one per input).
        failed: records with ``error`` set.
        workers: actors that ran.
        seconds: wall time from listing the inputs to the file being in place.
    """

    output: Path
    total: int
    failed: int
    workers: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0


def bulk_predict(
    paths: Sequence[str | Path],
    output: str | Path,
    *,
    model_path: str | Path,
    fmt: BulkFormat = "jsonl",
    config: CRNNConfig | None = None,
    device: Device = "auto",
    batch_size: int = 32,
    threads: int = 1,
    width_policy: WidthPolicy = "fixed",
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
) -> BulkReport:
    """Recognise ``paths`` on Ray and write one record per input to ``output``, in order.

    Uses the Ray instance this process is connected to (see :func:`ray_session`; without
    one, Ray Data starts a local instance). The file appears atomically when complete.
    ``jsonl`` is what ``crnn-onnx predict --format jsonl`` writes for the same inputs;
    ``parquet`` holds the same records as columns ``path``, ``text``, ``confidence``
    (float64, rounded as in JSON Lines) and ``error``.

    Other arguments as for :func:`recognize_dataset`.

    Raises:
        CRNNError: as :func:`recognize_dataset`; unknown format; the output cannot be
            written.
    """
    if fmt not in BULK_FORMATS:
        raise CRNNError(f"unknown bulk format {fmt!r} (known: {', '.join(BULK_FORMATS)})")
    start = time.perf_counter()
    dataset, n_workers, input_paths = _build_dataset(
        paths, model_path, config=config, device=device, batch_size=batch_size,
        threads=threads, width_policy=width_policy, workers=workers,
        gpus_per_worker=gpus_per_worker, progress=progress,
    )
    total = failed = 0
    with atomic_output(output) as stream:
        if fmt == "jsonl":
            writer = RecordWriter(stream, "jsonl")
            for prediction in iter_predictions(dataset, input_paths):
                writer.write(prediction)
                total += 1
                failed += not prediction.ok
            writer.close()
        else:
            total, failed = _write_parquet(stream.buffer, iter_predictions(dataset))
    return BulkReport(Path(output), total, failed, n_workers, time.perf_counter() - start)


#: Records per Parquet row group written at a time.
_PARQUET_CHUNK = 8192


def _write_parquet(sink: Any, predictions: Iterator[Prediction]) -> tuple[int, int]:
    """Write records to a binary stream as Parquet; returns (total, failed)."""
    pa = import_pyarrow()
    import pyarrow.parquet as pq

    schema = pa.schema([("path", pa.string()), ("text", pa.string()),
                        ("confidence", pa.float64()), ("error", pa.string())])
    total = failed = 0
    chunk: list[dict[str, Any]] = []
    with pq.ParquetWriter(sink, schema) as writer:
        for prediction in predictions:
            chunk.append(output_record(prediction))  # paths already display_path'd
            total += 1
            failed += not prediction.ok
            if len(chunk) == _PARQUET_CHUNK:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        if chunk or total == 0:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
    return total, failed
