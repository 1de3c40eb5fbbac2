"""Predictor: images in, text out, composing images -> preprocess -> session -> decoder.

Inputs are processed in windows of consecutive images. While the session runs one window,
a small thread pool reads, decodes and preprocesses the next (OpenCV and ONNX Runtime both
release the GIL, so the two overlap). Within a window, images are grouped by their target
width and run in batches of at most ``batch_size``; results always come back in input order.
A failure that concerns one input (missing file, undecodable image, NaN or infinite
scores from the model for that image) becomes that input's error record; failures of the
model itself raise :class:`~crnn_onnx.errors.CRNNError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.decoder import ctc_greedy_decode, nonfinite_sequences
from crnn_onnx.inference.engines.onnxruntime import Device, OrtSession, SessionOptions
from crnn_onnx.inference.images import ImageSource, expand_paths, read_image, to_bgr_uint8
from crnn_onnx.inference.preprocess import WIDTH_POLICIES, WidthPolicy, preprocess, target_width

__all__ = ["ImageInput", "Prediction", "Predictor", "default_io_workers"]

logger = logging.getLogger(__name__)

ImageInput = str | Path | np.ndarray
"""A path to an image file, or an (H, W[, C]) uint8/uint16 image array in BGR(A) order."""

_NONFINITE = "the model returned NaN or infinite scores for this image"


def default_io_workers(device: str, threads: int | None, cores: int | None = None) -> int:
    """Reading threads that do not fight inference for the cores.

    On CUDA the CPU only reads and preprocesses, so up to 4 threads do (one per core). On
    the CPU, ONNX Runtime's intra-op threads (one per core by default) keep every core busy
    during a run, and reading a word crop costs a fraction of inferring it (on the 2-core
    development machine 0.36 ms of CPU against 1.4 ms for the int8 model and 4.4 ms for
    fp32 at batch 32), so one thread keeps up: only the cores inference leaves free read,
    and at least one thread does. More readers only preempt the intra-op threads: with
    two readers instead of one, or readers at a lower priority, or reading between runs,
    throughput stayed within noise of one reader (measured; see the README).

    OpenCV's own thread pool is not involved: resizing a word crop is too small a job for
    ``cv2.resize`` to split, so no OpenCV worker threads start (only a large image starts
    them), and ``cv2.setNumThreads`` changes nothing here.

    Args:
        device: ``"cpu"`` or ``"cuda"``, where the model runs.
        threads: ONNX Runtime intra-op threads; ``None`` for its default (one per core).
        cores: CPUs to share; default ``os.cpu_count()``.
    """
    cores = cores or os.cpu_count() or 1
    if device == "cuda":
        return max(1, min(4, cores))
    return max(1, min(4, cores - (threads or cores)))


# With the bucket policy a window spans several batches, so that images of the same bucket
# from nearby positions can share a batch.
_BUCKET_WINDOW_BATCHES = 4


@dataclass(frozen=True)
class Prediction:
    """The result for one input: either text and confidence, or an error.

    Attributes:
        path: the input's path, or ``None`` for an array input.
        text: the recognised text; ``None`` when the input failed.
        confidence: in [0, 1] (see :func:`crnn_onnx.inference.decoder.ctc_greedy_decode`); ``None``
            when the input failed.
        char_probs: per-character probabilities, one per character of ``text``.
        error: ``None`` on success; otherwise a one-line reason.
    """

    path: str | None
    text: str | None = None
    confidence: float | None = None
    char_probs: tuple[float, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the input was recognised (no error)."""
        return self.error is None

    def to_record(self) -> dict[str, Any]:
        """The output record: ``path``, ``text``, ``confidence``, ``error`` (JSON-ready)."""
        return {
            "path": self.path,
            "text": self.text,
            "confidence": self.confidence,
            "error": self.error,
        }


@dataclass(frozen=True)
class _Item:
    path: str | None
    source: str | Path | np.ndarray | None
    error: str | None = None


#: A preprocessed (3, 32, W) float32 input, or None and the input's error.
_Loaded = tuple[np.ndarray | None, str | None]
_Window = tuple[list[_Item], list[Future[_Loaded]]]


class Predictor:
    """Recognise text in cropped word images with an exported CRNN ONNX model.

    Args:
        model_path: the .onnx model.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: most images per model run.
        threads: ONNX Runtime intra-op threads; ``None`` for its default.
        width_policy: ``fixed`` (every image at the config width, as upstream) or ``bucket``
            (width from each image's aspect ratio; dynamic-width models only).
        config: overrides the model's metadata (needed for models exported without it).
        io_workers: threads that read and preprocess images; ``None``: on CUDA up to 4 (one
            per core), on the CPU the cores that ONNX Runtime's intra-op threads leave free,
            at least 1 (see :func:`default_io_workers`).
        graph_optimization, cudnn_conv_algo_search: passed to
            the session options (``all`` and ``HEURISTIC`` by default).

    Thread safety: :meth:`predict` and :meth:`predict_paths` may be called from several
    threads at once on one Predictor. The shared ONNX Runtime session's ``run`` is
    thread-safe, every call builds its own IO binding, batches and worker pool, and nothing
    else is mutated after construction.

    Raises:
        CRNNError: bad arguments, or the model cannot be loaded; ``bucket`` on a model whose
            input width is fixed (refused rather than silently running ``fixed``).
    """

    def __init__(
        self,
        model_path: str | Path,
        device: Device = "auto",
        *,
        batch_size: int = 32,
        threads: int | None = None,
        width_policy: WidthPolicy = "fixed",
        config: CRNNConfig | None = None,
        io_workers: int | None = None,
        graph_optimization: str = "all",
        cudnn_conv_algo_search: str = "HEURISTIC",
    ) -> None:
        if batch_size < 1:
            raise CRNNError(f"batch_size must be at least 1, got {batch_size}")
        if width_policy not in WIDTH_POLICIES:
            raise CRNNError(
                f"unknown width policy {width_policy!r} (known: {', '.join(WIDTH_POLICIES)})"
            )
        self.batch_size = batch_size
        self.width_policy: WidthPolicy = width_policy
        options = SessionOptions(device=device, threads=threads,
                                 graph_optimization=graph_optimization,
                                 cudnn_conv_algo_search=cudnn_conv_algo_search)
        self.session = OrtSession(model_path, options, config=config)
        self.config: CRNNConfig = self.session.config
        static = self.session.static_width
        if static is not None and width_policy == "bucket":
            raise CRNNError(
                f"--width-policy bucket needs a model with a dynamic input width; this model's "
                f"width is fixed at {static}: use --width-policy fixed"
            )
        if static is not None and static != self.config.width:
            self.config = self.config.replace(image_shape=(3, self.config.height, static))
        self._workers = io_workers or default_io_workers(self.session.device, threads)
        window_batches = _BUCKET_WINDOW_BATCHES if width_policy == "bucket" else 1
        self._window = batch_size * window_batches

    def predict(self, images: Sequence[ImageInput]) -> list[Prediction]:
        """Recognise a sequence of images.

        Args:
            images: image file paths and/or (H, W[, C]) uint8/uint16 BGR(A) arrays. Paths
                name files; use :meth:`predict_paths` to expand directories and globs.

        Returns:
            One :class:`Prediction` per input, in input order; inputs that could not be
            read carry ``error``.
        """
        items = []
        for image in images:
            if isinstance(image, np.ndarray):
                items.append(_Item(None, image))
            else:
                items.append(_Item(os.fspath(image), image))
        return list(self._stream(items))

    def predict_paths(self, paths: Iterable[str | Path | ImageSource]) -> Iterator[Prediction]:
        """Stream predictions for files, directories and glob patterns, in order.

        Args:
            paths: arguments as for :func:`crnn_onnx.inference.images.expand_paths` (expanded here),
                or already expanded :class:`~crnn_onnx.inference.images.ImageSource` records.

        Yields:
            One :class:`Prediction` per image file found (an argument matching nothing
            yields one error record), as soon as its window is done.
        """
        def items() -> Iterator[_Item]:
            for arg in paths:
                sources = [arg] if isinstance(arg, ImageSource) else expand_paths([arg])
                for src in sources:
                    yield _Item(src.path, src.path if src.error is None else None, src.error)

        return self._stream(items())

    # --- pipeline -----------------------------------------------------------------------

    def _stream(self, items: Iterable[_Item]) -> Iterator[Prediction]:
        iterator = iter(items)
        pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="crnn-io")
        try:
            pending: _Window | None = None
            while True:
                window = list(islice(iterator, self._window))
                # Start reading the next window before running the current one.
                loading: _Window | None = (
                    (window, [pool.submit(self._load, item) for item in window]) if window else None
                )
                if pending is not None:
                    yield from self._infer(*pending)
                if loading is None:
                    break
                pending = loading
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _load(self, item: _Item) -> _Loaded:
        """Read and preprocess one input: ((3, 32, W) float32, None) or (None, error)."""
        if item.error is not None:
            return None, item.error
        try:
            if isinstance(item.source, np.ndarray):
                image = to_bgr_uint8(item.source)
            else:
                assert item.source is not None
                image = read_image(item.source)
            width = target_width(image.shape, self.config, self.width_policy)
            return preprocess(image, self.config, width), None
        except CRNNError as err:
            return None, str(err)

    def _infer(self, window: list[_Item], futures: list[Future[_Loaded]]) -> list[Prediction]:
        loaded = [future.result() for future in futures]
        tensors = {i: tensor for i, (tensor, _) in enumerate(loaded) if tensor is not None}
        by_width: dict[int, list[int]] = {}
        for i, tensor in tensors.items():
            by_width.setdefault(tensor.shape[2], []).append(i)

        results: list[Prediction | None] = [None] * len(window)
        for width, indices in by_width.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                batch = np.stack([tensors[i] for i in chunk])  # (n, 3, 32, width)
                logger.debug("running %d image(s) at width %d", len(chunk), width)
                logits = self.session.run(batch)
                broken = nonfinite_sequences(logits)
                if broken.any():  # one image's NaN/inf must not cost the rest of the batch
                    logger.warning("the model returned NaN or infinite scores for %d image(s)",
                                   int(broken.sum()))
                    for i in np.asarray(chunk)[broken]:
                        results[i] = Prediction(window[i].path, error=_NONFINITE)
                    chunk = [i for i, bad in zip(chunk, broken, strict=True) if not bad]
                    logits = logits[:, ~broken]
                decoded = ctc_greedy_decode(logits, self.config.charset)
                for i, result in zip(chunk, decoded, strict=True):
                    results[i] = Prediction(
                        window[i].path, result.text, result.confidence, result.char_probs
                    )
        return [
            result if result is not None else Prediction(item.path, error=loaded[i][1])
            for i, (item, result) in enumerate(zip(window, results, strict=True))
        ]

