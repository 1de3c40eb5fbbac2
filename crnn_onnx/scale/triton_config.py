"""Triton's ``config.pbtxt`` for a crnn-onnx model, as protobuf text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from crnn_onnx import __version__

__all__ = ["INSTANCE_KINDS", "InstanceKind", "model_config_text"]

InstanceKind = Literal["gpu", "cpu"]
INSTANCE_KINDS: tuple[str, ...] = get_args(InstanceKind)


def _quote(text: str) -> str:
    """``text`` as a protobuf text-format string literal (UTF-8 kept, C escapes)."""
    escaped = []
    for ch in text:
        if ch in '\\"':
            escaped.append("\\" + ch)
        elif ch in "\n\r\t":
            escaped.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ch == "\x7f":
            escaped.append(f"\\{ord(ch):03o}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'


def _dims_text(dims: Sequence[int]) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def model_config_text(
    *,
    name: str,
    input_name: str,
    input_dims: Sequence[int],
    output_name: str,
    output_dims: Sequence[int],
    max_batch_size: int = 64,
    instance_kind: InstanceKind = "gpu",
    instances: int = 1,
    parameters: Mapping[str, str] | None = None,
    labels_file: str | None = None,
    max_queue_delay_us: int = 100,
) -> str:
    """Triton ``config.pbtxt`` text (a ``inference.ModelConfig`` in protobuf text format).

    Args:
        name: the model's name (its folder in the repository).
        input_name, input_dims, output_name, output_dims: the tensors, dims without the
            batch dimension when ``max_batch_size`` > 0; -1 for a dynamic size. Both FP32.
        max_batch_size: the most requests Triton batches together (0: no batching; then
            dims include the batch dimension).
        instance_kind: ``gpu`` (``KIND_GPU``) or ``cpu`` (``KIND_CPU``).
        instances: model instances (sessions) per GPU, or on the CPU.
        parameters: string parameters for clients (the crnn-onnx config).
        labels_file: the output's ``label_filename``.
        max_queue_delay_us: how long the dynamic batcher waits to fill a batch.
    """
    kind = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}[instance_kind]
    lines = [
        f"# Written by crnn-onnx {__version__} for the ONNX Runtime backend.",
        f"# {output_name} is (batch, frames, classes) raw CTC logits, class 0 = blank: transpose",
        "# to (frames, batch, classes) for crnn_onnx.inference.decoder.ctc_greedy_decode.",
        f"name: {_quote(name)}",
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size}",
        "input [",
        "  {",
        f"    name: {_quote(input_name)}",
        "    data_type: TYPE_FP32",
        f"    dims: {_dims_text(input_dims)}",
        "  }",
        "]",
        "output [",
        "  {",
        f"    name: {_quote(output_name)}",
        "    data_type: TYPE_FP32",
        f"    dims: {_dims_text(output_dims)}",
        *([f"    label_filename: {_quote(labels_file)}"] if labels_file else []),
        "  }",
        "]",
    ]
    if max_batch_size > 0:
        lines += [
            "dynamic_batching {",
            f"  max_queue_delay_microseconds: {max_queue_delay_us}",
            "}",
        ]
    lines += [
        "instance_group [",
        "  {",
        f"    count: {instances}",
        f"    kind: {kind}",
        "  }",
        "]",
    ]
    for key, value in (parameters or {}).items():
        lines += [
            "parameters {",
            f"  key: {_quote(key)}",
            f"  value: {{ string_value: {_quote(value)} }}",
            "}",
        ]
    return "\n".join(lines) + "\n"
