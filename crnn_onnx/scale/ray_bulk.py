"""Bulk recognition on Ray Data: the toolkit's Predictor, one per actor, over many crops.

The toolkit hands its pipeline to Ray rather than scheduling work itself:

1. the driver lists the inputs (:mod:`~crnn_onnx.scale.ray_inputs`): local paths exactly as
   the Predictor expands them, and URIs that pyarrow's filesystems open. One dataset row per
   input, numbered;
2. ``Dataset.map_batches`` runs :class:`~crnn_onnx.scale.ray_actor.RecognizeBatch` on a fixed
   pool of actors, each with one Predictor (reading, preprocessing, engine and decoding as
   in ``predict``); an input that cannot be read becomes an error record, never a failed
   task;
3. the records stream back to the driver in input order and are written as JSON Lines
   (through the same :class:`~crnn_onnx.records.RecordWriter` as ``predict``) or Parquet
   (the same records as columns).

The model file travels to the actors with the job (its bytes, once per actor), so a cluster
needs no shared copy of it; local image paths must be readable on every node (a shared
filesystem), or be given as URIs. Every node needs ``crnn-onnx[ray]`` installed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from crnn_onnx.atomic import atomic_output
from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.decoding import load_lexicon
from crnn_onnx.inference.options import PredictorOptions
from crnn_onnx.inference.predictor import Predictor
from crnn_onnx.records import RecordWriter
from crnn_onnx.results import Prediction
from crnn_onnx.scale.ray_actor import RecognizeBatch
from crnn_onnx.scale.ray_cluster import plan_workers, pyarrow_module, ray_module, toolkit_cause
from crnn_onnx.scale.ray_inputs import list_inputs

__all__ = [
    "BULK_FORMATS",
    "BulkFormat",
    "BulkReport",
    "bulk_predict",
    "iter_predictions",
    "recognize_dataset",
]

BulkFormat = Literal["jsonl", "parquet"]
BULK_FORMATS: tuple[str, ...] = get_args(BulkFormat)

#: Rows per actor call, in model batches: with several windows per call, the Predictor reads
#: and preprocesses the next window while the engine runs the current one.
_BATCHES_PER_CALL = 4


def recognize_dataset(
    paths: Sequence[str | Path],
    model_path: str | Path,
    *,
    options: PredictorOptions | None = None,
    config: CRNNConfig | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    progress: bool = True,
) -> Any:
    """A lazy Ray dataset of records, one per input, in input order.

    The model is loaded once on the driver first, so that a bad model, config or width
    policy fails here with one line rather than inside every actor.

    Args:
        paths: files, directories, glob patterns (as for the Predictor) and URIs.
        model_path: the .onnx model.
        options: how each actor's Predictor runs; ``threads`` (default 1) is also the CPUs
            Ray reserves per actor.
        config: overrides the model's metadata.
        workers: actors; ``None`` fills the cluster (its CPUs / threads, or its GPUs /
            ``gpus_per_worker``).
        gpus_per_worker: GPUs Ray reserves per actor (fractions share a GPU); ``None``: 1
            when ``options.device`` is ``cuda``, else 0.
        progress: show Ray Data's progress bars (on stderr).

    Returns:
        A ``ray.data.Dataset`` with columns ``index`` (int64) and the record's fields
        (:func:`~crnn_onnx.scale.ray_actor.result_schema`); iterate it with
        :func:`iter_predictions`, or write it with Ray's own writers.

    Raises:
        CRNNError: Ray missing, bad arguments, the model cannot be loaded, or the workers do
            not fit the cluster.
    """
    return _build_dataset(
        paths, model_path, options=options or PredictorOptions(threads=1), config=config,
        workers=workers, gpus_per_worker=gpus_per_worker, progress=progress,
    )[0]


def _build_dataset(
    paths: Sequence[str | Path],
    model_path: str | Path,
    *,
    options: PredictorOptions,
    config: CRNNConfig | None,
    workers: int | None,
    gpus_per_worker: float | None,
    progress: bool,
) -> tuple[Any, int, list[str]]:
    """:func:`recognize_dataset`, the number of actors it runs on, and the inputs' paths."""
    ray = ray_module()
    pa = pyarrow_module()
    threads = options.threads or 1
    if workers is not None and workers < 1:
        raise CRNNError(f"workers must be at least 1, got {workers}")
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if options.device == "cuda" else 0.0
    if gpus_per_worker < 0:
        raise CRNNError(f"gpus_per_worker must be >= 0, got {gpus_per_worker:g}")
    if gpus_per_worker > 0 and options.device == "cpu":
        raise CRNNError("gpus_per_worker > 0 reserves GPUs that device 'cpu' would not use")
    # Fail fast, on the driver, with the Predictor's own checks; a lexicon file is read
    # here (and its unreadable words reported once), its words shipped to the actors.
    check = Predictor(model_path, dataclasses.replace(options, device="cpu", threads=1),
                      config=config)
    lexicon = load_lexicon(options, check.config.charset)
    if lexicon is not None:
        options = dataclasses.replace(options, lexicon=lexicon.words)
    # Shipped once through the object store rather than pickled into the UDF.
    model = ray.put(Path(model_path).read_bytes())
    n_workers = plan_workers(ray, workers, threads, gpus_per_worker)

    inputs, filesystems = list_inputs(paths)
    # One block per actor call, so that the pool shares the work from the start; small
    # inputs are spread over all the actors.
    rows_per_call = max(1, min(options.batch_size * _BATCHES_PER_CALL,
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
        fn_constructor_kwargs={"model": model, "filesystems": filesystems, "config": config,
                               "options": options},
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
        cause = toolkit_cause(err)
        if cause is None:
            raise
        raise CRNNError(str(cause)) from None


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
    options: PredictorOptions | None = None,
    config: CRNNConfig | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    progress: bool = True,
) -> BulkReport:
    """Recognise ``paths`` on Ray and write one record per input to ``output``, in order.

    Uses the Ray instance this process is connected to (see :func:`ray_session`; without
    one, Ray Data starts a local instance). The file appears atomically when complete.
    ``jsonl`` is what :class:`~crnn_onnx.records.RecordWriter` writes as ``jsonl`` for the
    same inputs;
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
        paths, model_path, options=options or PredictorOptions(threads=1), config=config,
        workers=workers, gpus_per_worker=gpus_per_worker, progress=progress,
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
    pa = pyarrow_module()
    import pyarrow.parquet as pq

    schema = pa.schema([("path", pa.string()), ("text", pa.string()),
                        ("confidence", pa.float64()), ("error", pa.string())])
    total = failed = 0
    chunk: list[dict[str, Any]] = []
    with pq.ParquetWriter(sink, schema) as writer:
        for prediction in predictions:
            chunk.append(prediction.record())  # paths already printable, from the actors
            total += 1
            failed += not prediction.ok
            if len(chunk) == _PARQUET_CHUNK:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        if chunk or total == 0:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
    return total, failed
