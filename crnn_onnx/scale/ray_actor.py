"""The Ray Data actor: one Predictor per actor, a pyarrow table of rows in, records out."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.inference.images import MAX_FILE_BYTES, decode_image
from crnn_onnx.inference.options import PredictorOptions
from crnn_onnx.inference.predictor import ImageInput, Predictor
from crnn_onnx.results import RECORD_FIELDS, Prediction, printable
from crnn_onnx.scale.ray_cluster import pyarrow_module, ray_module

__all__ = ["RecognizeBatch", "result_schema"]

#: Threads per actor fetching URI inputs (network-bound, so more than the cores).
_URI_READERS = 8


def result_schema(pa: ModuleType) -> Any:
    """The Arrow schema of the actor's output: the row ``index``, then the record's fields
    (``pa`` is the pyarrow module)."""
    types = {"path": pa.string(), "text": pa.string(), "confidence": pa.float64(),
             "error": pa.string()}
    return pa.schema([("index", pa.int64()), *((name, types[name]) for name in RECORD_FIELDS)])


class RecognizeBatch:
    """The ``map_batches`` callable: one Predictor per actor, rows in, records out.

    Args:
        model: the ONNX model's bytes, or a Ray ``ObjectRef`` to them (written to a
            temporary file to build the session, then removed).
        filesystems: pyarrow filesystems for the rows' ``fs_index``.
        config, options: as for :class:`~crnn_onnx.inference.predictor.Predictor`.

    Called with a ``pyarrow.Table`` of rows ``index``, ``path`` (binary,
    ``os.fsencode``), ``error``, ``fs_index``, ``fs_path``; returns a ``pyarrow.Table`` of
    ``index`` and the record's fields (:func:`result_schema`; the path as
    :func:`~crnn_onnx.results.printable` text, the confidence unrounded), in the same order,
    one row per input row.
    """

    def __init__(
        self,
        model: bytes | Any,
        *,
        filesystems: Sequence[Any] = (),
        config: CRNNConfig | None = None,
        options: PredictorOptions | None = None,
    ) -> None:
        if not isinstance(model, bytes):
            model = ray_module().get(model)
        self.predictor: Predictor | None = None
        # Ray reports an exception raised while an actor is created only as text (with a
        # traceback); raised from a call, it travels as the exception itself, so that the
        # driver can show its one-line message. A failed session is therefore raised on use.
        self._error: CRNNError | None = None
        with tempfile.TemporaryDirectory(prefix="crnn-onnx-") as tmp:
            model_path = Path(tmp) / "model.onnx"
            model_path.write_bytes(model)
            try:
                self.predictor = Predictor(model_path, options, config=config)
            except CRNNError as err:
                self._error = CRNNError(str(err).replace(str(model_path), "the model"))
        self._filesystems = list(filesystems)
        self._readers: ThreadPoolExecutor | None = None

    def __call__(self, batch: Any) -> Any:
        if self.predictor is None:
            assert self._error is not None
            raise self._error
        pa = pyarrow_module()
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
            "path": [printable(p.path or "") for p in done],
            "text": [p.text for p in done],
            "confidence": [p.confidence for p in done],
            "error": [p.error for p in done],
        }, schema=result_schema(pa))

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
