"""Bulk recognition on Ray Data: the toolkit's Predictor, one per actor, over many crops.

The toolkit hands its pipeline to Ray rather than scheduling work itself:

1. the driver lists the inputs: local paths exactly as ``crnn-onnx predict`` expands them
   (:func:`crnn_onnx.images.expand_paths`), and URIs that pyarrow's filesystems open
   (``s3://``, ``gs://``, ``hdfs://``, ``file://``; a folder URI is listed recursively, in
   sorted order). One dataset row per input, numbered;
2. ``Dataset.map_batches`` runs :class:`RecognizeBatch`, a callable class, on a fixed pool
   of actors. Each actor builds one :class:`~crnn_onnx.predictor.Predictor` (one ONNX
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
use them: ``import crnn_onnx.ray_bulk`` works without them, and using it without Ray raises
:class:`~crnn_onnx.errors.CRNNError` naming the extra to install.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.images import IMAGE_EXTENSIONS, MAX_FILE_BYTES, decode_image, expand_paths
from crnn_onnx.predictor import ImageInput, Prediction, Predictor
from crnn_onnx.preprocess import WidthPolicy
from crnn_onnx.records import RecordWriter, atomic_output, output_record
from crnn_onnx.session import Device

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
RAY_EXTRA_HINT = "pip install 'crnn-onnx[ray]'"

#: Rows per actor call, in model batches: with several windows per call, the Predictor reads
#: and preprocesses the next window while the session runs the current one.
_BATCHES_PER_CALL = 4
#: Threads per actor fetching URI inputs (network-bound, so more than the cores).
_URI_READERS = 8


def _import_ray() -> ModuleType:
    try:
        import ray
        import ray.data
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] not in ("ray", "pyarrow", "pandas"):
            raise
        raise CRNNError(f"bulk recognition needs Ray: {RAY_EXTRA_HINT}") from None
    return ray


def _import_pyarrow() -> ModuleType:
    try:
        import pyarrow
        import pyarrow.fs
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] != "pyarrow":
            raise
        raise CRNNError(f"bulk recognition needs pyarrow: {RAY_EXTRA_HINT}") from None
    return pyarrow


# --- inputs ------------------------------------------------------------------------------


def _is_uri(arg: str) -> bool:
    return "://" in arg


@dataclass(frozen=True)
class _Input:
    """One row to recognise: a local path or a URI (``fs_index`` set), or an error."""

    path: str
    error: str | None = None
    fs_index: int | None = None
    fs_path: str | None = None


def _list_inputs(paths: Sequence[str | Path]) -> tuple[list[_Input], list[Any]]:
    """The inputs in order, and the pyarrow filesystems their URIs are read through."""
    inputs: list[_Input] = []
    filesystems: list[Any] = []
    for raw in paths:
        arg = os.fspath(raw)
        if not _is_uri(arg):
            inputs.extend(_Input(src.path, src.error) for src in expand_paths([arg]))
            continue
        pa = _import_pyarrow()
        try:
            fs, root = pa.fs.FileSystem.from_uri(arg)
            info = fs.get_file_info(root)
            if info.type == pa.fs.FileType.Directory:
                listed = fs.get_file_info(pa.fs.FileSelector(root, recursive=True))
                found = sorted(
                    item.path for item in listed
                    if item.type == pa.fs.FileType.File
                    and os.path.splitext(item.path)[1].lower() in IMAGE_EXTENSIONS
                )
            elif info.type == pa.fs.FileType.File:
                found = [root]
            else:
                inputs.append(_Input(arg, "no such file or directory"))
                continue
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            inputs.append(_Input(arg, f"cannot open URI: {one_line(err, keep='first')}"))
            continue
        if not found:
            inputs.append(_Input(arg, "directory holds no image files"))
            continue
        filesystems.append(fs)
        base, root = arg.rstrip("/"), root.rstrip("/")
        inputs.extend(
            _Input(base + path[len(root):], fs_index=len(filesystems) - 1, fs_path=path)
            for path in found
        )
    return inputs, filesystems


# --- the actor ---------------------------------------------------------------------------


def _display_path(path: str) -> str:
    """``path`` as valid UTF-8 text (what Arrow strings hold): bytes of a file name that
    are not UTF-8 (possible on Linux) become ``\\xNN``, as in the text and CSV formats."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _result_schema(pa: ModuleType) -> Any:
    return pa.schema([
        ("index", pa.int64()), ("path", pa.string()), ("text", pa.string()),
        ("confidence", pa.float64()), ("error", pa.string()),
    ])


class RecognizeBatch:
    """The ``map_batches`` callable: one Predictor per actor, rows in, records out.

    Args:
        model: the ONNX model's bytes, or a Ray ``ObjectRef`` to them (written to a
            temporary file to build the session, then removed).
        filesystems: pyarrow filesystems for the rows' ``fs_index``.
        config, device, batch_size, threads, width_policy: as for
            :class:`~crnn_onnx.predictor.Predictor`.

    Called with a ``pyarrow.Table`` of rows ``index``, ``path`` (binary,
    ``os.fsencode``), ``error``, ``fs_index``, ``fs_path``; returns a ``pyarrow.Table`` of
    ``index``, ``path`` (string, see :func:`iter_predictions`), ``text``, ``confidence``,
    ``error`` in the same order, one row per input row.
    """

    def __init__(
        self,
        model: bytes | Any,
        *,
        filesystems: Sequence[Any] = (),
        config: CRNNConfig | None = None,
        device: Device = "auto",
        batch_size: int = 32,
        threads: int | None = 1,
        width_policy: WidthPolicy = "fixed",
    ) -> None:
        if not isinstance(model, bytes):
            model = _import_ray().get(model)
        self.predictor: Predictor | None = None
        # Ray reports an exception raised while an actor is created only as text (with a
        # traceback); raised from a call, it travels as the exception itself, so that the
        # driver can show its one-line message. A failed session is therefore raised on use.
        self._error: CRNNError | None = None
        with tempfile.TemporaryDirectory(prefix="crnn-onnx-") as tmp:
            model_path = Path(tmp) / "model.onnx"
            model_path.write_bytes(model)
            try:
                self.predictor = Predictor(
                    model_path, device, batch_size=batch_size, threads=threads,
                    width_policy=width_policy, config=config,
                )
            except CRNNError as err:
                self._error = CRNNError(str(err).replace(str(model_path), "the model"))
        self._filesystems = list(filesystems)
        self._readers: ThreadPoolExecutor | None = None

    def __call__(self, batch: Any) -> Any:
        if self.predictor is None:
            assert self._error is not None
            raise self._error
        pa = _import_pyarrow()
        rows = batch.to_pylist()
        for row in rows:
            row["path"] = os.fsdecode(row["path"])
        results: list[Prediction | None] = [None] * len(rows)
        uri_rows = [i for i, row in enumerate(rows)
                    if row["error"] is None and row["fs_index"] is not None]
        fetched: dict[int, np.ndarray | str] = {}
        if uri_rows:
            if self._readers is None:
                self._readers = ThreadPoolExecutor(_URI_READERS, thread_name_prefix="crnn-uri")
            images = self._readers.map(self._fetch, [rows[i] for i in uri_rows])
            fetched = dict(zip(uri_rows, images, strict=True))
        inputs: list[ImageInput] = []
        positions: list[int] = []
        for i, row in enumerate(rows):
            source = fetched.get(i, row["path"])
            if row["error"] is not None:
                results[i] = Prediction(row["path"], error=row["error"])
            elif isinstance(source, str) and i in fetched:  # the URI could not be read
                results[i] = Prediction(row["path"], error=source)
            else:
                inputs.append(source)
                positions.append(i)
        for i, prediction in zip(positions, self.predictor.predict(inputs), strict=True):
            # Arrays (fetched URIs) come back without a path.
            results[i] = dataclasses.replace(prediction, path=rows[i]["path"])
        done = [result for result in results if result is not None]
        assert len(done) == len(rows)
        return pa.table({
            "index": [row["index"] for row in rows],
            "path": [_display_path(p.path or "") for p in done],
            "text": [p.text for p in done],
            "confidence": [p.confidence for p in done],
            "error": [p.error for p in done],
        }, schema=_result_schema(pa))

    def _fetch(self, row: dict[str, Any]) -> np.ndarray | str:
        """A URI's image as (H, W, 3) uint8 BGR, or the one-line reason it failed."""
        fs = self._filesystems[row["fs_index"]]
        try:
            with fs.open_input_file(row["fs_path"]) as stream:
                size = stream.size()
                if size > MAX_FILE_BYTES:
                    return (f"image file too large ({size / 2**20:.0f} MiB > "
                            f"{MAX_FILE_BYTES // 2**20} MiB)")
                data = stream.read()
        except OSError as err:
            return f"cannot read file: {one_line(err, keep='first')}"
        try:
            return decode_image(data)
        except CRNNError as err:
            return str(err)


# --- running -----------------------------------------------------------------------------


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
    ray = _import_ray()
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
    ray = _import_ray()
    pa = _import_pyarrow()
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

    inputs, filesystems = _list_inputs(paths)
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
    pa = _import_pyarrow()
    import pyarrow.parquet as pq

    schema = pa.schema([("path", pa.string()), ("text", pa.string()),
                        ("confidence", pa.float64()), ("error", pa.string())])
    total = failed = 0
    chunk: list[dict[str, Any]] = []
    with pq.ParquetWriter(sink, schema) as writer:
        for prediction in predictions:
            chunk.append(output_record(prediction))  # paths already _display_path'd
            total += 1
            failed += not prediction.ok
            if len(chunk) == _PARQUET_CHUNK:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        if chunk or total == 0:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
    return total, failed
