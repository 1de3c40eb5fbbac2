"""The ONNX Runtime engine: CUDA through IO binding when there is a GPU, the CPU otherwise.

Providers are checked after the session is created: ONNX Runtime silently drops a requested
CUDA provider that cannot load, so :class:`OrtEngine` compares ``get_providers()`` with the
request, logs one line saying which provider runs (and why CUDA does not, when it could
have), and raises when CUDA was asked for explicitly. onnxruntime is imported when an engine
is created; :mod:`~crnn_onnx.inference.engines.ort_env` words its failures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.contract import ModelSpec, TensorInfo
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.engines.base import Engine
from crnn_onnx.inference.engines.ort_env import (
    check_model_file,
    cuda_failure_reason,
    import_onnxruntime,
    load_error,
    ort_errors,
    ort_message,
    ort_package,
)
from crnn_onnx.inference.options import (
    CONV_ALGO_SEARCHES,
    DEVICES,
    GRAPH_OPTIMIZATIONS,
    ConvAlgoSearch,
    Device,
    GraphOptimization,
    check_at_least,
    check_choice,
)

__all__ = ["OrtEngine", "OrtOptions"]

logger = logging.getLogger(__name__)

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
# IO binding brings nothing measurable on the CPU provider (docs/performance.md): both paths
# wrap the input without a copy and copy the output once, so the CPU uses plain run().
_CPU_IO_BINDING_DEFAULT = False


@dataclass(frozen=True)
class OrtOptions:
    """How ONNX Runtime runs a model.

    Attributes:
        device: ``auto``, ``cpu`` or ``cuda`` (see
            :class:`~crnn_onnx.inference.options.PredictorOptions`).
        threads: intra-op threads; ``None`` keeps ONNX Runtime's default (one per core).
        graph_optimization: ``disable``, ``basic``, ``extended`` or ``all``.
        cudnn_conv_algo_search: ``HEURISTIC``, ``EXHAUSTIVE`` or ``DEFAULT``.
        device_id: CUDA device ordinal.
        io_binding: bind input and output as device ``OrtValue``\\ s; ``None``: on for CUDA,
            off for the CPU.
    """

    device: Device = "auto"
    threads: int | None = None
    graph_optimization: GraphOptimization = "all"
    cudnn_conv_algo_search: ConvAlgoSearch = "HEURISTIC"
    device_id: int = 0
    io_binding: bool | None = None

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        check_choice("graph optimisation level", self.graph_optimization, GRAPH_OPTIMIZATIONS)
        check_choice("cudnn_conv_algo_search", self.cudnn_conv_algo_search, CONV_ALGO_SEARCHES)
        check_at_least("threads", self.threads, 1)
        check_at_least("device_id", self.device_id, 0)


class OrtEngine(Engine):
    """An ONNX Runtime session for a crnn-onnx model.

    Args:
        model_path: the .onnx file.
        options: providers, threads and CUDA settings.
        config: overrides the model's metadata; required for models without it (such as
            upstream's own export).

    Attributes:
        provider: the execution provider that runs the model, as ONNX Runtime reports it.
        io_binding: whether :meth:`run` binds device buffers.

    Raises:
        CRNNError: onnxruntime missing; the file missing, unreadable or not an ONNX model;
            the graph not a crnn-onnx model (:meth:`ModelSpec.read`); no config; CUDA asked
            for but unusable.
    """

    name = "onnxruntime"

    def __init__(self, model_path: str | Path, options: OrtOptions | None = None, *,
                 config: CRNNConfig | None = None) -> None:
        self.model_path = Path(model_path)
        self.options = options or OrtOptions()
        self._ort = ort = import_onnxruntime()
        self._ort_errors = ort_errors(ort)
        check_model_file(self.model_path)

        available = ort.get_available_providers()
        want_cuda = self.options.device == "cuda" or (
            self.options.device == "auto" and _CUDA in available
        )
        if self.options.device == "cuda" and _CUDA not in available:
            raise CRNNError(
                f"device='cuda': this onnxruntime build ({ort_package()} {ort.__version__}) "
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
        self.device = "cuda" if _CUDA in active else "cpu"
        self._report_provider(want_cuda)

        def info(value: Any) -> TensorInfo:
            dtype = value.type.removeprefix("tensor(").removesuffix(")")
            return TensorInfo(value.name, tuple(value.shape), dtype)

        self.spec = ModelSpec.read(
            str(self.model_path), [info(x) for x in self._session.get_inputs()],
            [info(y) for y in self._session.get_outputs()],
            self._session.get_modelmeta().custom_metadata_map, config,
        )
        self.precision = self.spec.precision
        binding = self.options.io_binding
        self.io_binding: bool = (self.device == "cuda" or _CPU_IO_BINDING_DEFAULT
                                 if binding is None else binding)

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
        # ORT's own warnings (shape ops placed on the CPU next to CUDA) are noise here; what
        # matters about providers is checked and reported after creation.
        so.log_severity_level = 3
        try:
            return ort.InferenceSession(str(self.model_path), so, providers=providers)
        except self._ort_errors as err:
            raise CRNNError(load_error(self.model_path, err)) from None

    def _report_provider(self, want_cuda: bool) -> None:
        device = self.options.device
        if self.device == "cuda":
            logger.log(logging.INFO if device == "auto" else logging.DEBUG,
                       "running on %s (device %d)", _CUDA, self.options.device_id)
            return
        if want_cuda:
            reason = cuda_failure_reason(self._ort)
            if device == "cuda":
                raise CRNNError(f"device='cuda': {_CUDA} failed to load: {reason}")
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

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        try:
            if self.io_binding:
                return self._run_bound(x)
            out: np.ndarray = self._session.run([self.spec.output_name],
                                                {self.spec.input_name: x})[0]
            return out
        except self._ort_errors as err:
            raise CRNNError(f"onnxruntime failed to run the model: {ort_message(err)}") from None

    def _run_bound(self, x: np.ndarray) -> np.ndarray:
        """One run through IO binding: the input copied to the device once, an output buffer
        allocated there with the shape the contract gives for this width, read back once.
        A binding object is not thread-safe, so each call makes its own."""
        ort, device, device_id = self._ort, self.device, self.options.device_id
        x_value = ort.OrtValue.ortvalue_from_numpy(x, device, device_id)
        shape = self.spec.output_shape(x.shape[0], x.shape[3])
        y_value = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, device, device_id)
        binding = self._session.io_binding()
        binding.bind_ortvalue_input(self.spec.input_name, x_value)
        binding.bind_ortvalue_output(self.spec.output_name, y_value)
        try:
            self._session.run_with_iobinding(binding)
        except self._ort_errors as err:
            raise CRNNError(
                f"onnxruntime failed to run the model with an output bound as {shape} "
                f"(T = W // 4 + 1 for width {x.shape[3]}): {ort_message(err)}"
            ) from None
        out: np.ndarray = y_value.numpy()
        return out

    def describe(self) -> str:
        return f"{self.name} {self.provider}, {self.precision}"
