"""The OpenVINO engine: a crnn-onnx model compiled once for the CPU, in fp32 or bf16.

The file is read by OpenVINO's ONNX frontend alone (other frontends would guess at, and log
about, a file that is not ONNX), which also carries the model's ``metadata_props`` into the
model's ``rt_info`` under ``framework``: the same entries ONNX Runtime reports, read at no
extra cost. The model is compiled once, with OpenVINO's model cache: a later process with the
same model loads the compiled blob instead of compiling it (the CPU plugin applies precision
and threads as it loads). The cache is keyed on the model's content, not its path, so a model
rewritten in place never reuses a stale blob. OpenVINO never deletes old blobs; remove the
folder to reclaim the space.

bf16 runs only on a CPU with native bf16 (:mod:`~crnn_onnx.inference.engines.cpu_features`);
fp32 is asked for explicitly, since OpenVINO's own default on such a CPU is bf16. An int8
model from ``quantize`` runs its quantized convolutions in int8 (its LSTM, dynamic int8 in
ONNX Runtime, is dequantized by OpenVINO's frontend and runs in the float precision).
openvino is imported when an engine is created (the ``openvino`` extra).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, get_args

import numpy as np

from crnn_onnx.config import CHANNELS, HEIGHT, CRNNConfig
from crnn_onnx.contract import INPUT_NAME, OUTPUT_NAME, ModelSpec, TensorInfo
from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.extras import require
from crnn_onnx.inference.engines import cpu_features
from crnn_onnx.inference.engines.base import Engine
from crnn_onnx.inference.engines.ort_env import check_model_file
from crnn_onnx.inference.options import (
    DEVICES,
    PRECISIONS,
    Device,
    Precision,
    check_at_least,
    check_choice,
)

__all__ = [
    "CACHE_DIR_ENV",
    "PERFORMANCE_HINTS",
    "OvEngine",
    "OvOptions",
    "PerformanceHint",
    "default_cache_dir",
]

logger = logging.getLogger(__name__)

PerformanceHint = Literal["LATENCY", "THROUGHPUT"]
PERFORMANCE_HINTS: tuple[str, ...] = get_args(PerformanceHint)
#: Overrides the root of the toolkit's cache folder (default ``$XDG_CACHE_HOME/crnn-onnx``).
CACHE_DIR_ENV = "CRNN_ONNX_CACHE_DIR"

_HINTS = {"fp32": "f32", "bf16": "bf16"}
#: OpenVINO element types in ONNX words, as :class:`TensorInfo` wants them.
_DTYPES = {"f32": "float", "f16": "float16", "bf16": "bfloat16", "f64": "double",
           "i64": "int64", "i32": "int32", "i8": "int8", "u8": "uint8", "boolean": "bool"}
#: Where OpenVINO's messages say which source line threw: noise for a user.
_OV_TRACE = re.compile(r"^(Exception from \S+|Check '.*' failed at \S+|FrontEnd API failed with "
                       r"\w+:?)$")


def default_cache_dir() -> Path:
    """Where compiled models are cached: ``$CRNN_ONNX_CACHE_DIR/openvino``, else
    ``$XDG_CACHE_HOME/crnn-onnx/openvino``, else ``~/.cache/crnn-onnx/openvino``."""
    root = os.environ.get(CACHE_DIR_ENV)
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "crnn-onnx")
    return Path(root) / "openvino"


@dataclass(frozen=True)
class OvOptions:
    """How OpenVINO runs a model.

    Attributes:
        device: ``auto`` or ``cpu`` (both the CPU); ``cuda`` is refused.
        threads: ``INFERENCE_NUM_THREADS``; ``None`` keeps OpenVINO's default (one per core).
        precision: ``fp32``, or ``bf16`` on a CPU with AMX or AVX512-BF16.
        cache_dir: folder of compiled models; ``None`` for :func:`default_cache_dir`.
        performance_hint: ``LATENCY`` (one stream using every thread: best when one caller
            runs a batch at a time, as the Predictor does) or ``THROUGHPUT`` (several
            streams, for many threads calling :meth:`OvEngine.run` at once).
    """

    device: Device = "auto"
    threads: int | None = None
    precision: Precision = "fp32"
    cache_dir: str | Path | None = None
    performance_hint: PerformanceHint = "LATENCY"

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        if self.device == "cuda":
            raise CRNNError(
                "device='cuda': the OpenVINO engine runs on the CPU here; use device='cpu', "
                "or the onnxruntime engine for CUDA"
            )
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("performance_hint", self.performance_hint, PERFORMANCE_HINTS)
        check_at_least("threads", self.threads, 1)


class OvEngine(Engine):
    """A crnn-onnx model compiled by OpenVINO for the CPU.

    Args:
        model_path: the .onnx file.
        options: precision, threads, cache folder.
        config: overrides the model's metadata; required for models without it.

    Attributes:
        loaded_from_cache: whether the compiled model came from the cache folder.
        cache_dir: the cache folder in use, or ``None`` when none could be made.

    Raises:
        CRNNError: openvino missing; the file missing, unreadable or not an ONNX model;
            the graph not a crnn-onnx model (:meth:`ModelSpec.read`); no config; bf16 on a
            CPU without it; ``cache_dir`` not a usable folder; compilation failed.
    """

    name = "openvino"

    def __init__(self, model_path: str | Path, options: OvOptions | None = None, *,
                 config: CRNNConfig | None = None) -> None:
        self.model_path = Path(model_path)
        self.options = options or OvOptions()
        ov = require("openvino", extra="openvino", purpose="the OpenVINO engine")
        self._errors = _ov_errors(ov)
        check_model_file(self.model_path)
        core = ov.Core()
        if self.options.precision == "bf16":
            refusal = cpu_features.bf16_refusal(
                lambda: core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
            if refusal:
                raise CRNNError(refusal)

        model = self._read(ov.frontend)
        self.spec = ModelSpec.read(
            str(self.model_path), [_info(p, INPUT_NAME) for p in model.inputs],
            [_info(p, OUTPUT_NAME) for p in model.outputs], _metadata(model), config,
        )
        self.cache_dir = self._cache_folder()
        settings: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINTS[self.options.precision],
            "PERFORMANCE_HINT": self.options.performance_hint,
        }
        if self.options.threads is not None:
            settings["INFERENCE_NUM_THREADS"] = self.options.threads
        if self.cache_dir is not None:
            settings["CACHE_DIR"] = str(self.cache_dir)
        try:
            _fix_input_shape(ov, model)
            self._compiled = core.compile_model(model, "CPU", settings)
        except self._errors as err:
            raise CRNNError(
                f"OpenVINO cannot compile {str(self.model_path)!r}: {_ov_message(err)}"
            ) from None
        self._check_precision()
        self.loaded_from_cache: bool = bool(self._compiled.get_property("LOADED_FROM_CACHE"))
        self.device = "cpu"
        self.precision = "int8" if self.spec.precision == "int8" else self.options.precision
        self._output = self._compiled.output(0)
        self._idle: list[Any] = []  # infer requests not in use; one per concurrent run()
        self._lock = threading.Lock()
        logger.debug("%s: compiled for the CPU in %s%s", self.model_path,
                     self.options.precision, " (from the cache)" if self.loaded_from_cache else "")
        logger.log(logging.INFO if self.options.device == "auto" else logging.DEBUG,
                   "running on OpenVINO %s, CPU, %s", ov.get_version().split("-")[0],
                   self.describe().split(", ", 1)[1])

    def _read(self, frontends: ModuleType) -> Any:
        """The ONNX file as an ``openvino.Model``, through the ONNX frontend only."""
        path = str(self.model_path)
        frontend = frontends.FrontEndManager().load_by_framework("onnx")
        if not frontend.supported(path):
            raise CRNNError(f"cannot load model {path!r}: not an ONNX model")
        try:
            return frontend.convert(frontend.load(path))
        except self._errors as err:
            raise CRNNError(
                f"cannot load model {path!r}: not a valid ONNX model (truncated?), or one "
                f"OpenVINO cannot convert: {_ov_message(err)}"
            ) from None

    def _cache_folder(self) -> Path | None:
        """The cache folder, made if needed. A default one that cannot be made only costs
        compile time (a warning); one the caller named is an error."""
        named = self.options.cache_dir
        folder = Path(named) if named is not None else default_cache_dir()
        try:
            if folder.exists() and not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder")
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "not writable")
        except OSError as err:
            reason = one_line(err.strerror or err)
            if named is not None:
                raise CRNNError(f"cache_dir {str(folder)!r} cannot be used: {reason}") from None
            logger.warning("no OpenVINO model cache (%s: %s); every start compiles the model",
                           folder, reason)
            return None
        return folder

    def _check_precision(self) -> None:
        """Refuse a compiled model whose precision is not the one asked for."""
        want = _HINTS[self.options.precision]
        got = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if got != want:
            raise CRNNError(
                f"precision={self.options.precision!r}: OpenVINO compiled the model in {got} "
                f"instead of {want} on this CPU"
            )

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            request = self._idle.pop() if self._idle else self._compiled.create_infer_request()
        try:
            request.infer({0: x}, share_inputs=True, share_outputs=True)
            # Copied out: the request's buffer is overwritten by its next run.
            return np.array(request.get_tensor(self._output).data, dtype=np.float32, copy=True)
        except self._errors as err:
            raise CRNNError(f"OpenVINO failed to run the model: {_ov_message(err)}") from None
        finally:
            with self._lock:
                self._idle.append(request)

    def describe(self) -> str:
        if self.precision == "int8" and self.options.precision == "bf16":
            return f"{self.name} CPU, int8 (bf16 elsewhere)"
        return f"{self.name} CPU, {self.precision}"


def _ov_message(err: BaseException) -> str:
    """OpenVINO's error as one line, without the source locations it lists first."""
    lines = [line.strip() for line in str(err).splitlines()]
    kept = [line for line in lines if line and not _OV_TRACE.match(line)]
    return one_line("\n".join(kept) if kept else str(err))


def _ov_errors(ov: ModuleType) -> tuple[type[BaseException], ...]:
    """What OpenVINO raises: RuntimeError from the core and plugins, and the frontend's own
    types (``GeneralFailure`` ...), which derive from Exception only."""
    found = [getattr(ov.frontend, name, None) for name in
             ("GeneralFailure", "OpConversionFailure", "InitializationFailure",
              "OpValidationFailure", "NotImplementedFailure")]
    kinds = [kind for kind in found if isinstance(kind, type) and issubclass(kind, Exception)]
    return (RuntimeError, *kinds)


def _metadata(model: Any) -> dict[str, str]:
    """The ONNX file's ``metadata_props``, which the ONNX frontend puts in the model's
    ``rt_info`` under ``framework`` (absent when the file has none)."""
    if not model.has_rt_info("framework"):
        return {}
    entries = model.get_rt_info("framework").value
    return {str(key): value.astype(str) if hasattr(value, "astype") else str(value)
            for key, value in entries.items()}


def _info(port: Any, preferred: str) -> TensorInfo:
    """An OpenVINO model input or output as a :class:`TensorInfo`: static sizes as ints,
    symbolic ones as ``None``; named by the contract's name when the tensor carries it."""
    names = port.get_names()
    name = preferred if preferred in names else port.get_any_name()
    shape = port.get_partial_shape()
    dims = tuple(d.get_length() if d.is_static else None for d in shape) \
        if shape.rank.is_static else ()
    element = port.get_element_type().get_type_name()
    return TensorInfo(name, dims, _DTYPES.get(element, element))


def _fix_input_shape(ov: ModuleType, model: Any) -> None:
    """Make the input (N, 3, 32, W) with N and W left as the graph has them when static and
    fully dynamic otherwise (bounded or unknown); a graph already so is left untouched."""
    shape = model.input(0).get_partial_shape()
    batch, width = (d.get_length() if d.is_static else -1 for d in (shape[0], shape[3]))
    wanted = ov.PartialShape([batch, CHANNELS, HEIGHT, width])
    if shape != wanted:
        model.reshape({model.input(0): wanted})
