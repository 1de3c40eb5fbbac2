"""The installed ONNX Runtime: importing it, its exception types, its errors as message
lines, which wheel provides it, and why its CUDA provider does not load.

Kept apart from :mod:`crnn_onnx.inference.engines.onnxruntime` (which runs models) so that
the exporter's
verification and the session share one copy of these diagnostics.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from crnn_onnx.errors import CRNNError, one_line

__all__ = [
    "check_model_file",
    "cuda_failure_reason",
    "import_onnxruntime",
    "load_error",
    "ort_errors",
    "ort_message",
    "ort_package",
]


def import_onnxruntime(hint: str = "") -> ModuleType:
    """Import onnxruntime (either the CPU or the GPU wheel provides it).

    Args:
        hint: appended to the message, e.g. how to do without ONNX Runtime.

    Raises:
        CRNNError: neither ``onnxruntime`` nor ``onnxruntime-gpu`` is installed.
    """
    try:
        import onnxruntime
    except ImportError as err:
        raise CRNNError(
            "ONNX Runtime is not installed: pip install 'crnn-onnx[cpu]' "
            f"(or 'crnn-onnx[gpu]' for CUDA){hint} [{err}]"
        ) from None
    return onnxruntime


def ort_errors(ort: ModuleType) -> tuple[type[BaseException], ...]:
    """onnxruntime's exception types: its pybind errors derive from Exception only."""
    state = ort.capi.onnxruntime_pybind11_state
    found = [
        obj for obj in vars(state).values()
        if isinstance(obj, type) and issubclass(obj, Exception)
    ]
    return (RuntimeError, ValueError, *found)


def check_model_file(path: Path) -> None:
    """Refuse a missing, non-file, unreadable or empty model file with a clear message."""
    if not path.exists():
        raise CRNNError(f"model file {str(path)!r} not found")
    if not path.is_file():
        raise CRNNError(f"model path {str(path)!r} is not a file")
    if not os.access(path, os.R_OK):
        raise CRNNError(f"model file {str(path)!r} is not readable (permission denied)")
    if path.stat().st_size == 0:
        raise CRNNError(f"model file {str(path)!r} is empty")


def load_error(path: Path, err: BaseException) -> str:
    """The message for a model ONNX Runtime could not load (says when it is not ONNX)."""
    kind = type(err).__name__
    if kind in ("InvalidProtobuf", "InvalidGraph", "NoModel") or "protobuf" in str(err).lower():
        return (
            f"cannot load model {str(path)!r}: not a valid ONNX model (truncated or not ONNX?): "
            f"{ort_message(err)}"
        )
    return f"cannot load model {str(path)!r}: {ort_message(err)}"


_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from .*? failed: ?)?")


def ort_message(err: BaseException | str) -> str:
    """onnxruntime's error as one line, without its prefix
    ``[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from x failed:``."""
    return one_line(_ORT_PREFIX.sub("", " ".join(str(err).split())))


def ort_package() -> str:
    """Which onnxruntime wheel is installed, for messages."""
    from importlib import metadata

    for name in ("onnxruntime-gpu", "onnxruntime"):
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        return name
    return "onnxruntime"


def cuda_failure_reason(ort: ModuleType) -> str:
    """Why the CUDA provider did not load, found by loading its library ourselves.

    ONNX Runtime prints the reason to stderr from C++ and drops the provider; loading the
    provider library with ctypes gives the dynamic linker's message (usually a missing
    libcudart / libcublas / libcudnn of the version this onnxruntime-gpu was built for).
    """
    if ort.__file__ is None:  # a namespace package: not a real onnxruntime install
        return "onnxruntime is not installed as a regular package"
    capi = Path(ort.__file__).parent / "capi"
    prefix, suffix = ("", ".dll") if sys.platform == "win32" else ("lib", ".so")
    shared = capi / f"{prefix}onnxruntime_providers_shared{suffix}"
    cuda_libs = sorted(capi.glob(f"*onnxruntime_providers_cuda{suffix}*"))
    if not cuda_libs:
        return "the CUDA provider library is missing from this onnxruntime install"
    try:
        if shared.exists():
            ctypes.CDLL(str(shared), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
        ctypes.CDLL(str(cuda_libs[0]))
    except OSError as err:
        return (
            f"{ort_message(err)} (the usual cause: CUDA or cuDNN libraries missing, or not the "
            f"versions onnxruntime-gpu {ort.__version__} was built for)"
        )
    return (
        "its library loads, but no usable GPU was found (check nvidia-smi, "
        "CUDA_VISIBLE_DEVICES and the driver version)"
    )
