"""Predictor: images in, text out, composing images -> preprocess -> engine -> decoder.

Inputs are processed in windows of consecutive images. While the engine runs one window, a
small thread pool reads, decodes and preprocesses the next (OpenCV and the engines release
the GIL, so the two overlap). Within a window, images are grouped by their target width and
run in batches of at most ``batch_size``; results always come back in input order. A failure
that concerns one input (missing file, undecodable image, NaN or infinite scores from the
model for that image) becomes that input's error record; failures of the model itself raise
:class:`~crnn_onnx.errors.CRNNError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from crnn_onnx.config import CRNNConfig, WidthPolicy
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.decoder import nonfinite_sequences
from crnn_onnx.inference.decoding import build_decoder
from crnn_onnx.inference.engines.base import Engine
from crnn_onnx.inference.engines.factory import open_engine
from crnn_onnx.inference.images import (
    ImageSource,
    decode_image,
    expand_paths,
    read_image,
    to_bgr_uint8,
)
from crnn_onnx.inference.options import PredictorOptions
from crnn_onnx.inference.preprocess import preprocess, target_width
from crnn_onnx.results import Prediction

__all__ = ["ImageInput", "Predictor", "default_io_workers"]

logger = logging.getLogger(__name__)

ImageInput = str | Path | np.ndarray | bytes
"""A path to an image file, an (H, W[, C]) uint8/uint16 image array in BGR(A) order, or an
encoded image file's bytes (PNG, JPEG ...)."""

_NONFINITE = "the model returned NaN or infinite scores for this image"


def default_io_workers(device: str, threads: int | None, cores: int | None = None) -> int:
    """Reading threads that do not fight inference for the cores.

    On CUDA the CPU only reads and preprocesses, so up to 4 threads do (one per core). On
    the CPU the engine's intra-op threads (one per core by default) keep every core busy
    during a run, and reading a word crop costs a fraction of inferring it: the cores
    inference leaves free read, and at least two threads do, which keeps a fast engine fed
    without slowing a slower one (measurements: docs/performance.md).

    Args:
        device: ``"cpu"`` or ``"cuda"``, where the model runs.
        threads: the engine's intra-op threads; ``None`` for its default (one per core).
        cores: CPUs to share; default ``os.cpu_count()``.
    """
    cores = cores or os.cpu_count() or 1
    if device == "cuda":
        return max(1, min(4, cores))
    return max(2, min(4, cores - (threads or cores)))


# With the bucket policy a window spans several batches, so that images of the same bucket
# from nearby positions can share a batch.
_BUCKET_WINDOW_BATCHES = 4


@dataclass(frozen=True)
class _Item:
    path: str | None
    source: str | Path | np.ndarray | bytes | None
    error: str | None = None


#: A preprocessed (3, 32, W) float32 input, or None and the input's error.
_Loaded = tuple[np.ndarray | None, str | None]
_Window = tuple[list[_Item], list[Future[_Loaded]]]


class Predictor:
    """Recognise text in cropped word images with an exported CRNN model.

    Args:
        model: the .onnx model file, or an :class:`~crnn_onnx.inference.engines.base.Engine`
            already opened on one.
        options: how to run it (engine, device, batch size, threads, width policy ...).
        config: overrides the model's metadata (needed for models exported without it);
            only with a model file, since an engine has read its config already.

    Attributes:
        engine: the engine that runs the model.
        config: the model's config, as the engine read it.
        width_policy: the width policy in force: the one the options ask for, or with
            ``auto`` the model's own (``fixed`` where the model's input width is fixed).

    Thread safety: :meth:`predict`, :meth:`predict_paths` and :meth:`predict_sources` may be
    called from several
    threads at once on one Predictor; the engine's ``run`` is thread-safe, every call builds
    its own batches and worker pool, and nothing else is mutated after construction.

    Raises:
        CRNNError: the model cannot be loaded; ``config`` given with an engine;
            ``width_policy='bucket'`` on a model whose input width is fixed (refused rather
            than silently running ``fixed``).
    """

    def __init__(self, model: str | Path | Engine, options: PredictorOptions | None = None,
                 *, config: CRNNConfig | None = None) -> None:
        self.options = options = options or PredictorOptions()
        if isinstance(model, Engine):
            if config is not None:
                raise CRNNError("config= applies when the Predictor opens a model file; "
                                "give it to the engine instead")
            self.engine = model
        else:
            self.engine = open_engine(model, options, config)
        self.config: CRNNConfig = self.engine.spec.config
        static = self.engine.spec.static_width
        if static is not None and options.width_policy == "bucket":
            raise CRNNError(
                f"width_policy='bucket' needs a model with a dynamic input width; this "
                f"model's width is fixed at {static}: use width_policy='fixed'"
            )
        self.width_policy: WidthPolicy = (
            options.width_policy if options.width_policy != "auto"
            else "fixed" if static is not None else self.config.width_policy)
        self._decode = build_decoder(options, self.config.charset)
        self.batch_size = options.batch_size
        self._workers = options.io_workers or default_io_workers(self.engine.device,
                                                                 options.threads)
        window_batches = _BUCKET_WINDOW_BATCHES if self.width_policy == "bucket" else 1
        self._window = options.batch_size * window_batches

    def predict(self, images: Sequence[ImageInput]) -> list[Prediction]:
        """Recognise a sequence of images.

        Args:
            images: image file paths, (H, W[, C]) uint8/uint16 BGR(A) arrays and/or encoded
                image bytes. Paths name files; use :meth:`predict_paths` to expand
                directories and globs.

        Returns:
            One :class:`Prediction` per input, in input order; inputs that could not be
            read carry ``error``.
        """
        items = []
        for image in images:
            if isinstance(image, np.ndarray | bytes):
                items.append(_Item(None, image))
            else:
                items.append(_Item(os.fspath(image), image))
        return list(self._stream(items))

    def predict_paths(self, paths: Iterable[str | Path]) -> Iterator[Prediction]:
        """Stream predictions for files, directories and glob patterns, in order.

        Args:
            paths: arguments as for :func:`~crnn_onnx.inference.images.expand_paths`,
                expanded here, lazily: a stream of paths is read as it goes.

        Yields:
            One :class:`Prediction` per image file found (an argument matching nothing
            yields one error record), as soon as its window is done.
        """
        return self.predict_sources(expand_paths(paths))

    def predict_sources(self, sources: Iterable[ImageSource]) -> Iterator[Prediction]:
        """Stream predictions for already expanded sources, in order, read as they come.

        Yields:
            One :class:`Prediction` per source (a source with ``error`` yields that error
            record), as soon as its window is done.
        """
        return self._stream(
            _Item(src.path, src.path if src.error is None else None, src.error)
            for src in sources
        )

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
            elif isinstance(item.source, bytes):
                image = decode_image(item.source)
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
                logits = self.engine.run(batch)
                broken = nonfinite_sequences(logits)
                if broken.any():  # one image's NaN/inf must not cost the rest of the batch
                    logger.warning("the model returned NaN or infinite scores for %d image(s)",
                                   int(broken.sum()))
                    for i in np.asarray(chunk)[broken]:
                        results[i] = Prediction(window[i].path, error=_NONFINITE)
                    chunk = [i for i, bad in zip(chunk, broken, strict=True) if not bad]
                    logits = logits[:, ~broken]
                decoded = self._decode(logits)
                for i, result in zip(chunk, decoded, strict=True):
                    results[i] = Prediction(
                        window[i].path, result.text, result.confidence, result.char_probs
                    )
        return [
            result if result is not None else Prediction(item.path, error=loaded[i][1])
            for i, (item, result) in enumerate(zip(window, results, strict=True))
        ]

