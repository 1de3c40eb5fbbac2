"""OrtSession: runs a model with ONNX Runtime.

It picks and checks the execution provider, reads the model's input/output names, static
sizes and crnn-onnx metadata, and runs batches, on CUDA through IO binding. onnxruntime is
imported lazily, so importing this module works (and fails clearly on first use) without
it; torch is never imported. :mod:`crnn_onnx.inference.engines.ort_env` explains ONNX
Runtime's
failures (which wheel, why CUDA did not load) in one line.

Providers are verified after the session is created: ONNX Runtime silently drops a
requested CUDA provider that cannot load, so :class:`OrtSession` compares
``get_providers()`` with the request, logs one line saying which provider runs (and why
CUDA does not, when it could have), and raises :class:`~crnn_onnx.errors.CRNNError` when
CUDA was asked for explicitly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.engines.ort_env import (
    check_model_file,
    cuda_failure_reason,
    import_onnxruntime,
    load_error,
    ort_errors,
    ort_message,
    ort_package,
)

__all__ = [
    "DEVICES",
    "GRAPH_OPTIMIZATION_LEVELS",
    "Device",
    "OrtSession",
    "SessionOptions",
    "import_onnxruntime",
    "sequence_length",
]

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
GRAPH_OPTIMIZATION_LEVELS: tuple[str, ...] = ("disable", "basic", "extended", "all")
_CONV_ALGO_SEARCH = ("HEURISTIC", "EXHAUSTIVE", "DEFAULT")
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"

# IO binding on the CPU provider, measured on the 2-core development machine (onnxruntime
# 1.32 CPU, the 37-class CRNN, width 100, default intra-op threads, median of 60 / 15 runs
# interleaved, two rounds; a background job was loading the cores, hence the spread):
#   batch  1: run() 33.9 / 35.8 ms, binding 34.2 / 35.7 ms
#   batch 32: run() 361 / 557 ms,   binding 364 / 570 ms
# No measurable gain: on the CPU both paths wrap the input without a copy and copy the
# (T, N, C) output once. The CPU therefore uses plain run(), the simpler path; binding stays
# selectable there (``io_binding=True``) so that the CUDA code path is tested on the CPU.
_CPU_IO_BINDING_DEFAULT = False


def sequence_length(width: int) -> int:
    """CTC frames T the CRNN emits for an input ``width``: ``W // 4 + 1``.

    Mirrors :func:`crnn_onnx.export.model.sequence_length` (which needs torch) for the inference
    side; the tests keep the two equal.
    """
    return width // 4 + 1


@dataclass(frozen=True)
class SessionOptions:
    """How to run a model.

    Attributes:
        device: ``auto`` (CUDA when this onnxruntime build has it, else CPU, logging which
            one runs), ``cpu``, or ``cuda`` (an error if CUDA cannot be used).
        threads: intra-op threads; ``None`` keeps ONNX Runtime's default (one per core).
        graph_optimization: ``disable``, ``basic``, ``extended`` or ``all``.
        cudnn_conv_algo_search: ``HEURISTIC`` (default), ``EXHAUSTIVE`` or ``DEFAULT``.
            EXHAUSTIVE benchmarks convolution algorithms for every new input shape, which
            makes every new width (bucket policy) slow on first use.
        device_id: CUDA device ordinal.
        io_binding: bind input and output as device ``OrtValue``\\ s; ``None`` chooses:
            on for CUDA, off for CPU (see the measurements in this module).
    """

    device: Device = "auto"
    threads: int | None = None
    graph_optimization: str = "all"
    cudnn_conv_algo_search: str = "HEURISTIC"
    device_id: int = 0
    io_binding: bool | None = None

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise CRNNError(f"unknown device {self.device!r} (known: {', '.join(DEVICES)})")
        if self.threads is not None and self.threads < 1:
            raise CRNNError(f"threads must be at least 1, got {self.threads}")
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise CRNNError(
                f"unknown graph optimisation level {self.graph_optimization!r} "
                f"(known: {', '.join(GRAPH_OPTIMIZATION_LEVELS)})"
            )
        if self.cudnn_conv_algo_search not in _CONV_ALGO_SEARCH:
            raise CRNNError(
                f"unknown cudnn_conv_algo_search {self.cudnn_conv_algo_search!r} "
                f"(known: {', '.join(_CONV_ALGO_SEARCH)})"
            )
        if self.device_id < 0:
            raise CRNNError(f"device_id must be >= 0, got {self.device_id}")


class OrtSession:
    """An ONNX Runtime session for a CRNN model: (N, 3, 32, W) images -> (T, N, C) logits.

    Args:
        model_path: the .onnx file.
        options: providers, threads and CUDA settings.
        config: overrides the model's crnn-onnx metadata; required for models without it
            (such as upstream's own export).

    Attributes:
        config: the model's :class:`CRNNConfig` (from metadata, or the override).
        provider: the execution provider that runs the model, as ONNX Runtime reports it.
        device: ``"cuda"`` or ``"cpu"``.
        input_name, output_name: the graph's input and output names.
        static_width: the input width the graph is fixed to, or ``None`` if dynamic.
        static_batch: the batch size the graph is fixed to, or ``None`` if dynamic.
        io_binding: whether :meth:`run` uses IO binding.

    :meth:`run` is thread-safe: ``InferenceSession.run`` is, and each call creates its own
    IO binding.

    Raises:
        CRNNError: onnxruntime missing; the file missing, unreadable or not an ONNX model;
            the graph not shaped like a CRNN; no config available; CUDA requested
            explicitly but unusable.
    """

    def __init__(
        self,
        model_path: str | Path,
        options: SessionOptions | None = None,
        *,
        config: CRNNConfig | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.options = options or SessionOptions()
        self._ort = ort = import_onnxruntime()
        self._ort_errors = ort_errors(ort)
        check_model_file(self.model_path)

        available = ort.get_available_providers()
        want_cuda = self.options.device == "cuda" or (
            self.options.device == "auto" and _CUDA in available
        )
        if self.options.device == "cuda" and _CUDA not in available:
            raise CRNNError(
                f"--device cuda: this onnxruntime build ({ort_package()} {ort.__version__}) "
                f"has no {_CUDA} (available: {', '.join(available)}); install onnxruntime-gpu "
                "instead of onnxruntime"
            )
        providers: list[Any] = [_CPU]
        if want_cuda:
            cuda_options = {
                "device_id": self.options.device_id,
                "cudnn_conv_algo_search": self.options.cudnn_conv_algo_search,
            }
            providers = [(_CUDA, cuda_options), _CPU]

        self._session = self._create(providers)
        active = self._session.get_providers()
        self.provider: str = active[0]
        self.device: Literal["cpu", "cuda"] = "cuda" if _CUDA in active else "cpu"
        self._report_provider(want_cuda, available)

        self._read_graph()
        self._refuse_batch_first()
        self.config = self._fit_static_width(
            config if config is not None else self._read_metadata(),
            "the given config's" if config is not None else "metadata",
        )
        self._check_classes()
        binding = self.options.io_binding
        if binding is None:
            binding = self.device == "cuda" or _CPU_IO_BINDING_DEFAULT
        self.io_binding: bool = binding

    # --- construction -------------------------------------------------------------------

    def _create(self, providers: list[Any]) -> Any:
        ort = self._ort
        so = ort.SessionOptions()
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.options.graph_optimization]
        if self.options.threads is not None:
            so.intra_op_num_threads = self.options.threads
        # ORT's own warnings (e.g. shape ops placed on the CPU next to CUDA) are noise here;
        # what matters about providers is checked and reported below.
        so.log_severity_level = 3
        try:
            return ort.InferenceSession(str(self.model_path), so, providers=providers)
        except self._ort_errors as err:
            raise CRNNError(load_error(self.model_path, err)) from None

    def _report_provider(self, want_cuda: bool, available: list[str]) -> None:
        device = self.options.device
        if self.device == "cuda":
            logger.log(
                logging.INFO if device == "auto" else logging.DEBUG,
                "running on %s (device %d)", _CUDA, self.options.device_id,
            )
            return
        if want_cuda:
            reason = cuda_failure_reason(self._ort)
            if device == "cuda":
                raise CRNNError(f"--device cuda: {_CUDA} failed to load: {reason}")
            logger.warning("running on %s: %s is installed but failed to load: %s",
                           self.provider, _CUDA, reason)
        elif device == "auto":
            logger.info(
                "running on %s (this onnxruntime build, %s %s, has no CUDA support; "
                "install onnxruntime-gpu to use a GPU)",
                self.provider, ort_package(), self._ort.__version__,
            )
        else:
            logger.debug("running on %s", self.provider)

    def _read_graph(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise CRNNError(
                f"{self.model_path}: expected a CRNN with one input and one output, got "
                f"{len(inputs)} inputs and {len(outputs)} outputs"
            )
        x, y = inputs[0], outputs[0]
        self.input_name: str = x.name
        self.output_name: str = y.name
        in_shape, out_shape = list(x.shape), list(y.shape)
        if x.type != "tensor(float)" or len(in_shape) != 4 or len(out_shape) != 3:
            raise CRNNError(
                f"{self.model_path}: expected a float (N, 3, 32, W) input and a (T, N, C) "
                f"output, got {x.type} {in_shape} -> {y.type} {out_shape}"
            )
        for axis, want in ((1, 3), (2, 32)):
            if isinstance(in_shape[axis], int) and in_shape[axis] != want:
                raise CRNNError(
                    f"{self.model_path}: input shape {in_shape} is not (N, 3, 32, W)"
                )
        self.static_batch: int | None = _static_dim(in_shape[0])
        self.static_width: int | None = _static_dim(in_shape[3])
        self._static_frames = _static_dim(out_shape[0])
        self._graph_classes = _static_dim(out_shape[2])

    def _refuse_batch_first(self) -> None:
        """`crnn-onnx triton-repo` writes an (N, T, C) variant for Triton; decoding it as
        (T, N, C) would give wrong text without any error, so refuse it here."""
        meta = self._session.get_modelmeta().custom_metadata_map
        if meta.get("crnn_onnx.output_layout") == "NTC":
            raise CRNNError(
                f"{self.model_path}: this is the batch-first (N, T, C) model made for Triton "
                "by `crnn-onnx triton-repo`; predict with the original export instead"
            )

    def _read_metadata(self) -> CRNNConfig:
        meta = self._session.get_modelmeta().custom_metadata_map
        try:
            config = CRNNConfig.from_metadata(meta)
        except CRNNError as err:
            raise CRNNError(f"{self.model_path}: {err}") from None
        return config

    def _fit_static_width(self, config: CRNNConfig, source: str) -> CRNNConfig:
        """A graph with a fixed input width runs at that width, whatever the config says;
        say so when they differ (a --config written for another model, say)."""
        if self.static_width is None or config.width == self.static_width:
            return config
        logger.warning(
            "%s: %s width %d differs from the graph's fixed input width %d; using %d",
            self.model_path, source, config.width, self.static_width, self.static_width,
        )
        try:
            return config.replace(image_shape=(3, config.height, self.static_width))
        except CRNNError as err:
            raise CRNNError(f"{self.model_path}: {err}") from None

    def _check_classes(self) -> None:
        if self._graph_classes is not None and self._graph_classes != self.config.num_classes:
            raise CRNNError(
                f"{self.model_path}: the model outputs {self._graph_classes} classes but the "
                f"charset has {len(self.config.charset)} characters (+ 1 blank); model and "
                "config do not belong together"
            )

    # --- running ------------------------------------------------------------------------

    def output_shape(self, batch_size: int, width: int) -> tuple[int, int, int]:
        """The (T, N, C) logits shape for a batch of ``batch_size`` images ``width`` wide."""
        if self._static_frames is not None and width == self.static_width:
            frames = self._static_frames
        else:
            frames = sequence_length(width)
        return frames, batch_size, self.config.num_classes

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a batch.

        Args:
            batch: (N, 3, 32, W) float32 preprocessed images (other float dtypes are
                converted); W must equal :attr:`static_width` when the model has one.
                A model with a fixed batch size runs in chunks of that size.

        Returns:
            (T, N, C) float32 raw logits, T = W // 4 + 1.

        Raises:
            CRNNError: wrong input shape, or ONNX Runtime failed to run.
        """
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:3] != (3, 32):
            raise CRNNError(f"expected an (N, 3, 32, W) batch, got shape {x.shape}")
        n, width = x.shape[0], x.shape[3]
        if self.static_width is not None and width != self.static_width:
            raise CRNNError(
                f"this model's input width is fixed at {self.static_width}; got width {width}"
            )
        if n == 0:
            return np.zeros(self.output_shape(0, width), dtype=np.float32)
        step = self.static_batch
        if step is None or step == n:
            return self._run_once(x)
        parts = []
        for start in range(0, n, step):
            chunk = x[start:start + step]
            if len(chunk) < step:  # pad the last chunk up to the graph's fixed batch size
                filler = np.zeros((step - len(chunk), *x.shape[1:]), dtype=np.float32)
                chunk = np.concatenate([chunk, filler])
            parts.append(self._run_once(chunk))
        return np.ascontiguousarray(np.concatenate(parts, axis=1)[:, :n])

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        try:
            if self.io_binding:
                out = self._run_bound(x)
            else:
                out = self._session.run([self.output_name], {self.input_name: x})[0]
        except self._ort_errors as err:
            raise CRNNError(f"onnxruntime failed to run the model: {ort_message(err)}") from None
        if out.ndim != 3 or out.shape[1] != x.shape[0]:
            raise CRNNError(f"the model returned shape {out.shape}, expected (T, N, C)")
        return out

    def _run_bound(self, x: np.ndarray) -> np.ndarray:
        """One run through IO binding: copy the input to the device once, bind an output
        buffer allocated there with the shape computed from the width, read it back once.

        A binding object is not thread-safe, so each call makes its own.
        """
        ort, device, device_id = self._ort, self.device, self.options.device_id
        x_value = ort.OrtValue.ortvalue_from_numpy(x, device, device_id)
        shape = self.output_shape(x.shape[0], x.shape[3])
        y_value = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, device, device_id)
        binding = self._session.io_binding()
        binding.bind_ortvalue_input(self.input_name, x_value)
        binding.bind_ortvalue_output(self.output_name, y_value)
        try:
            self._session.run_with_iobinding(binding)
        except self._ort_errors as err:
            raise CRNNError(
                f"onnxruntime failed to run the model with an output bound as {shape} "
                f"(T = W // 4 + 1 for width {x.shape[3]}): {ort_message(err)}"
            ) from None
        return y_value.numpy()


def _static_dim(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None
