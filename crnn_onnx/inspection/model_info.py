"""Describe an ONNX model file: tensors, opsets, producer, size, precision, layout, metadata.

:func:`read_model_info` reads the graph's structure and metadata with ``onnx`` and never
the weights stored in external data files, so a model of any size is described in the time
it takes to parse its ``.onnx`` file. The precision and layout come from the crnn-onnx
metadata (:mod:`crnn_onnx.contract`); a model without it is recognised as int8 from its
quantization ops or integer weights, and as fp16 from its float16 weights.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import onnx
from google.protobuf.message import DecodeError

from crnn_onnx.config import BLANK_INDEX
from crnn_onnx.contract import (
    LAYOUT_KEY,
    PRECISION_KEY,
    QUANTIZATION_KEY,
    Layout,
    Precision,
    config_from_metadata,
    has_config,
    precision_of,
)
from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.results import printable

__all__ = ["ModelInfo", "TensorSummary", "read_model_info"]

Dim = int | str | None
Width = int | Literal["dynamic"] | None

#: Ops that only a quantized graph holds.
_QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
    "ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM", "QLinearMatMul",
})
_DEFAULT_DOMAINS = ("", "ai.onnx")
_NUMPY_NAMES = {"float": "float32", "double": "float64"}
_TEXT_LIMIT = 100


@dataclass(frozen=True)
class TensorSummary:
    """A graph input or output.

    Attributes:
        name: the tensor's name.
        shape: one entry per axis: the size, the symbolic dimension's name, or ``None`` when
            unknown; ``None`` for the whole shape when not even the rank is known.
        dtype: the element type as numpy names it (``float32``, ``float16``, ``int64`` ...).
    """

    name: str
    shape: tuple[Dim, ...] | None
    dtype: str

    def as_dict(self) -> dict[str, Any]:
        shape = list(self.shape) if self.shape is not None else None
        return {"name": self.name, "shape": shape, "dtype": self.dtype}

    def __str__(self) -> str:
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d)
                                                        for d in self.shape)
        return f"{self.name}  {self.dtype} [{dims}]"


@dataclass(frozen=True)
class ModelInfo:
    """What a model file holds.

    Attributes:
        path: the file.
        file_size: its size in bytes (external data files not included).
        inputs, outputs: the graph's inputs (initializers left out) and outputs.
        opset: the default (``ai.onnx``) domain's opset version; ``None`` if not imported.
        other_opsets: opset versions of the other domains (``com.microsoft`` ...).
        ir_version: the ONNX IR version.
        producer: the producing tool's name and version (``crnn-onnx 0.1.0``).
        parameter_count: elements in all initializers.
        classes: the last axis of the first output when fixed (charset + blank), else ``None``.
        charset: the characters, from the crnn-onnx metadata; ``None`` without it.
        blank_index: the CTC blank's class, from the metadata; ``None`` without it.
        width: the first input's width (its last axis) when it is an image batch: the fixed
            size or ``"dynamic"``; ``None`` for another kind of input.
        width_policy: the width policy it was trained for (the metadata's), else ``None``.
        precision: ``fp32``, ``fp16`` or ``int8``, from the metadata or the graph.
        quantization: for int8, the metadata's description of the quantization (parsed
            JSON); ``None`` otherwise or when the graph does not say.
        layout: ``TNC``, or ``NTC`` for the batch-first variant made for Triton.
        metadata: every metadata entry, in file order.
    """

    path: Path
    file_size: int
    inputs: tuple[TensorSummary, ...]
    outputs: tuple[TensorSummary, ...]
    opset: int | None
    other_opsets: dict[str, int]
    ir_version: int
    producer: str
    parameter_count: int
    classes: int | None
    charset: tuple[str, ...] | None
    blank_index: int | None
    width: Width
    width_policy: str | None
    precision: Precision
    quantization: Any
    layout: Layout
    metadata: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The description as JSON-ready values (the path as text, see ``printable``)."""
        return {
            "path": printable(str(self.path)), "file_size": self.file_size,
            "inputs": [t.as_dict() for t in self.inputs],
            "outputs": [t.as_dict() for t in self.outputs],
            "opset": self.opset, "other_opsets": dict(self.other_opsets),
            "ir_version": self.ir_version, "producer": self.producer,
            "parameters": self.parameter_count, "classes": self.classes,
            "charset": list(self.charset) if self.charset is not None else None,
            "blank_index": self.blank_index, "width": self.width,
            "width_policy": self.width_policy, "precision": self.precision,
            "quantization": self.quantization, "layout": self.layout,
            "metadata": dict(self.metadata),
        }

    def format_text(self) -> str:
        """The description as aligned ``name  value`` lines, for people."""
        opsets = f"opset {self.opset if self.opset is not None else 'none'}" + "".join(
            f", {domain} {version}" for domain, version in self.other_opsets.items())
        lines: list[tuple[str, str]] = [
            ("model", f"{printable(str(self.path))} ({_size(self.file_size)})"),
            ("format", f"ONNX IR {self.ir_version}, {opsets}"),
            ("producer", self.producer or "unknown"),
            *(("input", str(t)) for t in self.inputs),
            *(("output", str(t)) for t in self.outputs),
            ("parameters", f"{self.parameter_count:,}"),
            ("precision", self.precision),
        ]
        if self.quantization is not None:
            lines.append(("quantization", _short(json.dumps(self.quantization))))
        lines.append(("layout", f"{self.layout} ({_LAYOUT_WORDS[self.layout]})"))
        if self.width is not None:
            lines.append(("width", str(self.width)))
        if self.width_policy is not None:
            lines.append(("width policy", self.width_policy))
        if self.charset is not None:
            lines.append(("charset", f"{len(self.charset)} characters: "
                                     f"{_short(_charset_text(self.charset))}"))
            lines.append(("blank index", str(self.blank_index)))
        if self.classes is not None:
            lines.append(("classes", str(self.classes)))
        lines.extend(("metadata" if i == 0 else "", f"{key} = {_short(value)}")
                     for i, (key, value) in enumerate(self.metadata.items()))
        width = max(len(name) for name, _ in lines)
        return "\n".join(f"{name:<{width}}  {value}".rstrip() for name, value in lines)


_LAYOUT_WORDS = {"TNC": "frames, batch, classes", "NTC": "batch, frames, classes"}


def read_model_info(path: str | Path) -> ModelInfo:
    """Describe the ONNX model at ``path`` without loading external weight files.

    Raises:
        CRNNError: the file is missing, unreadable or not an ONNX model, or its crnn-onnx
            metadata is malformed; the message is one line naming ``path``.
    """
    path = Path(path)
    shown = printable(str(path))
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise CRNNError(f"{shown} is not a model file (a folder, pipe or device)")
        model = onnx.load(str(path), format="protobuf", load_external_data=False)
    except OSError as err:
        raise CRNNError(f"cannot read model {shown}: {err.strerror or err}") from None
    except (DecodeError, ValueError, TypeError, RuntimeError):
        raise CRNNError(f"{shown} is not an ONNX model") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise CRNNError(f"{shown} is not an ONNX model")
    metadata = {p.key: p.value for p in model.metadata_props}
    charset, blank, policy = None, None, None
    if has_config(metadata):
        try:
            config = config_from_metadata(metadata)
        except CRNNError as err:
            raise CRNNError(f"{shown}: {one_line(err)}") from None
        charset, blank, policy = config.charset, BLANK_INDEX, config.width_policy
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = tuple(_tensor(x) for x in graph.input if x.name not in weights)
    outputs = tuple(_tensor(y) for y in graph.output)
    opsets = {o.domain: o.version for o in model.opset_import}
    precision = _precision(model, metadata)
    return ModelInfo(
        path=path, file_size=info.st_size, inputs=inputs, outputs=outputs,
        opset=next((opsets[d] for d in _DEFAULT_DOMAINS if d in opsets), None),
        other_opsets={d: v for d, v in opsets.items() if d not in _DEFAULT_DOMAINS},
        ir_version=model.ir_version,
        producer=" ".join(filter(None, (model.producer_name, model.producer_version))),
        parameter_count=_elements([*graph.initializer,
                                   *(s.values for s in graph.sparse_initializer)]),
        classes=_fixed_last(outputs), charset=charset, blank_index=blank,
        width=_width(inputs), width_policy=policy, precision=precision,
        quantization=_quantization(metadata) if precision == "int8" else None,
        layout="NTC" if metadata.get(LAYOUT_KEY) == "NTC" else "TNC", metadata=metadata,
    )


def _dtype(elem_type: int) -> str:
    try:
        name = onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type {elem_type}"
    return _NUMPY_NAMES.get(name, name)


def _tensor(value: Any) -> TensorSummary:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSummary(value.name, None, kind or "unknown")
    tensor = value.type.tensor_type
    shape: tuple[Dim, ...] | None = None
    if tensor.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param or None
                      for d in tensor.shape.dim)
    return TensorSummary(value.name, shape, _dtype(tensor.elem_type))


def _elements(tensors: Iterable[Any]) -> int:
    return sum(math.prod(t.dims) for t in tensors)


def _fixed_last(outputs: tuple[TensorSummary, ...]) -> int | None:
    if not outputs or not outputs[0].shape:
        return None
    last = outputs[0].shape[-1]
    return last if isinstance(last, int) and last > 0 else None


def _width(inputs: tuple[TensorSummary, ...]) -> Width:
    if not inputs or inputs[0].shape is None or len(inputs[0].shape) != 4:
        return None
    last = inputs[0].shape[3]
    return last if isinstance(last, int) and last > 0 else "dynamic"


def _precision(model: Any, metadata: dict[str, str]) -> Precision:
    """The metadata's precision; for a graph without it, what its ops and weights show."""
    recorded = precision_of(metadata)
    if recorded != "fp32" or PRECISION_KEY in metadata:
        return recorded
    if any(node.op_type in _QUANTIZED_OPS for node in model.graph.node):
        return "int8"
    # Biases and scales may stay float32 in a converted graph: judge by the weights (2-D+).
    kinds = {t.data_type for t in model.graph.initializer if len(t.dims) > 1}
    if kinds & {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}:
        return "int8"
    return "fp16" if onnx.TensorProto.FLOAT16 in kinds else "fp32"


def _quantization(metadata: dict[str, str]) -> Any:
    raw = metadata.get(QUANTIZATION_KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw  # shown as it is rather than hidden


def _charset_text(charset: tuple[str, ...]) -> str:
    if all(len(ch) == 1 and ch.isprintable() and not ch.isspace() for ch in charset):
        return "".join(charset)
    return json.dumps(list(charset), ensure_ascii=False)


def _short(value: str) -> str:
    value = printable(" ".join(value.split()))
    return value if len(value) <= _TEXT_LIMIT else value[: _TEXT_LIMIT - 1] + "…"


def _size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    exponent = min(3, int(math.log10(size)) // 3)
    return f"{size / 1000 ** exponent:.1f} {('KB', 'MB', 'GB')[exponent - 1]}"
