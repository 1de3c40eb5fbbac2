"""The field a benchmark times: PyTorch eager, ONNX Runtime and OpenVINO, in the arithmetic
each can run, loaded on the same model; what cannot run here is skipped with a note."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.engines import cpu_features
from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions
from crnn_onnx.inference.options import Device

__all__ = ["ARITHMETIC", "DEFAULT_FIELD", "FIELD", "Field", "Runner", "cpu_has_bf16",
           "load_field"]

#: (N, 3, 32, W) float32 images -> (T, N, C) logits.
Runner = Callable[[np.ndarray], np.ndarray]

#: Every engine a benchmark knows, and the arithmetic it runs in.
ARITHMETIC: dict[str, str] = {
    "torch": "fp32", "torch-bf16": "bf16",
    "ort": "fp32", "ort-int8": "int8", "ort-fp16": "fp16",
    "openvino": "fp32", "openvino-bf16": "bf16", "openvino-int8": "int8",
}
FIELD: tuple[str, ...] = tuple(ARITHMETIC)
#: The engines timed unless asked otherwise (fp16 is for GPUs).
DEFAULT_FIELD: tuple[str, ...] = tuple(e for e in FIELD if e != "ort-fp16")


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (AMX or AVX512-BF16)."""
    try:
        return bool(cpu_features.cpu_flags() & set(cpu_features.BF16_FLAGS))
    except OSError:
        return False


@dataclass
class Field:
    """The engines that can run, by name: their runners, files and arithmetic."""

    reference: OrtEngine
    runners: dict[str, Runner] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _variant(model: Path, given: Path | None, kind: str) -> Path:
    return given if given is not None else model.with_name(f"{model.stem}.{kind}.onnx")


def _how(kind: str, model: Path) -> str:
    return (f"quantize_model({model})" if kind == "int8"
            else "export_checkpoint(CKPT, fp16=True)")


def load_field(engines: Sequence[str], model: Path, *, ckpt: Path | None,
               int8_model: Path | None, fp16_model: Path | None, device: Device,
               threads: int) -> Field:
    """Load each engine of ``engines`` that can run here; explain the others in notes.

    ``ort`` on ``model`` is always loaded: it is the reference the others are compared with.

    Raises:
        CRNNError: an unknown engine name, or ``model`` does not load.
    """
    unknown = [e for e in engines if e not in ARITHMETIC]
    if unknown:
        raise CRNNError(f"unknown engine(s) {', '.join(unknown)} (known: {', '.join(FIELD)})")
    reference = OrtEngine(model, OrtOptions(device=device, threads=threads))
    loaded = Field(reference)
    config = reference.spec.config
    for engine in engines:
        try:
            runner, path = _load(engine, model, config, ckpt=ckpt, int8_model=int8_model,
                                 fp16_model=fp16_model, device=device, threads=threads)
        except CRNNError as err:
            loaded.notes.append(f"{engine} skipped: {err}")
            continue
        if runner is None:
            loaded.runners[engine], loaded.files[engine] = reference.run, str(model)
        else:
            loaded.runners[engine], loaded.files[engine] = runner, path
        if engine == "ort-fp16" and reference.device == "cpu":
            loaded.notes.append("ort-fp16 on the CPU: ONNX Runtime has no fp16 kernels for "
                                "this model's ops there and computes in fp32 between Casts; "
                                "fp16 is for CUDA")
    return loaded


def _load(engine: str, model: Path, config: CRNNConfig, *, ckpt: Path | None,
          int8_model: Path | None, fp16_model: Path | None, device: Device, threads: int
          ) -> tuple[Runner | None, str]:
    """One engine's runner and file (``None`` for the reference itself).

    Raises:
        CRNNError: why it cannot run here, in one line.
    """
    if engine == "ort":
        return None, str(model)
    if engine.startswith("torch"):
        bf16 = engine == "torch-bf16"
        if bf16 and not cpu_has_bf16():
            raise CRNNError("this CPU has neither AMX nor AVX512-BF16")
        try:
            from crnn_onnx.export.eager import eager_runner
        except ImportError:
            raise CRNNError("PyTorch is not installed (pip install 'crnn-onnx[export]')"
                            ) from None
        path = ckpt if ckpt is not None else model.with_suffix(".pth")
        if not path.is_file():
            raise CRNNError(f"no checkpoint ({path} not found; pass ckpt=)")
        return eager_runner(path, config, threads, bf16=bf16), str(path)
    kind = "int8" if engine.endswith("int8") else "fp16" if engine.endswith("fp16") else ""
    path = _variant(model, int8_model if kind == "int8" else fp16_model, kind) if kind else model
    if not path.is_file():
        raise CRNNError(f"{path} not found (make it with `{_how(kind, model)}`, or pass "
                        f"{kind}_model=)")
    if engine.startswith("ort"):
        return OrtEngine(path, OrtOptions(device=device, threads=threads)).run, str(path)
    from crnn_onnx.inference.engines.openvino import OvEngine, OvOptions

    options = OvOptions(threads=threads, precision="bf16" if engine == "openvino-bf16" else "fp32")
    return OvEngine(path, options).run, str(path)
