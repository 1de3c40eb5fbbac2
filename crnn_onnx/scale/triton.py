"""A model repository for NVIDIA Triton Inference Server's ONNX Runtime backend.

:func:`write_model_repository` turns an exported model into::

    DIR/<name>/config.pbtxt      input/output names, types and dims, batching, instances,
                                 and the crnn-onnx config as ``parameters``
    DIR/<name>/labels.txt        class i on line i+1: ``<blank>``, then the charset
    DIR/<name>/1/model.onnx      the batch-first variant of the model

Triton's batching wants the batch as the first dimension of every input and output, while
the exported model returns ``output0`` as (T, N, C). :func:`batch_first_model` therefore
appends one ``Transpose`` node to the graph and exposes its result as ``logits``
(N, T, C); the network itself and its metadata are unchanged, so the values are exactly
the original's, transposed. Clients transpose back to (T, N, C) for
:func:`crnn_onnx.inference.decoder.ctc_greedy_decode`.

The charset and preprocessing settings travel in ``parameters`` under the same keys as the
ONNX metadata (:func:`crnn_onnx.contract.config_to_metadata`), so a client rebuilds the
config from ``get_model_config`` with :func:`crnn_onnx.contract.config_from_metadata`.

This module needs ``onnx`` (the ``triton`` or ``export`` extra), never torch or Triton.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from crnn_onnx.atomic import atomic_folder
from crnn_onnx.config import CRNNConfig
from crnn_onnx.contract import (
    LAYOUT_KEY,
    config_from_metadata,
    config_to_metadata,
    set_metadata,
)
from crnn_onnx.errors import CRNNError
from crnn_onnx.extras import require
from crnn_onnx.scale.triton_config import INSTANCE_KINDS, InstanceKind, model_config_text

__all__ = [
    "BLANK_LABEL",
    "TRITON_OUTPUT_NAME",
    "TritonRepository",
    "batch_first_model",
    "write_model_repository",
]

#: The batch-first output's name.
TRITON_OUTPUT_NAME = "logits"
#: The ``labels.txt`` entry for class 0, the CTC blank.
BLANK_LABEL = "<blank>"
_VERSION = "1"
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _import_onnx() -> ModuleType:
    return require("onnx", extra="triton", purpose="writing a Triton repository")


@dataclass(frozen=True)
class TritonRepository:
    """What :func:`write_model_repository` wrote.

    Attributes:
        model_dir: ``DIR/<name>``.
        config_file, labels_file, model_file: the files in it.
        input_name, output_name: tensor names clients use.
        input_dims, output_dims: dims as in ``config.pbtxt`` (without the batch dimension
            when ``max_batch_size`` > 0; -1 for a dynamic size).
    """

    model_dir: Path
    config_file: Path
    labels_file: Path
    model_file: Path
    input_name: str
    output_name: str
    input_dims: tuple[int, ...]
    output_dims: tuple[int, ...]


def _dims(value_info: Any) -> list[int]:
    """A graph value's dims, -1 for a symbolic or unknown size."""
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
            for d in value_info.type.tensor_type.shape.dim]


def _graph_inputs(model: Any) -> list[Any]:
    initializers = {init.name for init in model.graph.initializer}
    return [x for x in model.graph.input if x.name not in initializers]


def batch_first_model(model: Any, output_name: str = TRITON_OUTPUT_NAME) -> Any:
    """A copy of a crnn-onnx model whose one output is (N, T, C) instead of (T, N, C).

    Appends ``Transpose(perm=[1, 0, 2])`` after the graph's output and makes its result the
    only output, named ``output_name``; nodes, weights, opset and metadata are kept, and
    ``crnn_onnx.output_layout`` is set to ``NTC``.

    Args:
        model: an ``onnx.ModelProto`` with one (T, N, C) output.
        output_name: the new output's name.

    Raises:
        CRNNError: the model has not exactly one 3-D output, or ``output_name`` is taken.
    """
    onnx = _import_onnx()
    graph = model.graph
    if len(graph.output) != 1 or len(_dims(graph.output[0])) != 3:
        raise CRNNError(
            f"expected a model with one (T, N, C) output, got {len(graph.output)} output(s) "
            f"of shape {[_dims(y) for y in graph.output]}"
        )
    if any(p.key == LAYOUT_KEY and p.value == "NTC" for p in model.metadata_props):
        raise CRNNError("the model is already batch-first (N, T, C); give the original export")
    names = {name for node in graph.node for name in (*node.input, *node.output)}
    names |= {x.name for x in graph.input}
    if output_name in names:
        raise CRNNError(f"the model already has a tensor named {output_name!r}")

    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    old = graph.output[0]
    t_dim, n_dim, c_dim = old.type.tensor_type.shape.dim
    graph.node.append(onnx.helper.make_node(
        "Transpose", [old.name], [output_name], perm=[1, 0, 2], name="crnn_onnx_batch_first"
    ))
    new = onnx.helper.make_tensor_value_info(output_name, old.type.tensor_type.elem_type, None)
    new.type.tensor_type.shape.dim.extend([n_dim, t_dim, c_dim])
    graph.value_info.append(old)
    graph.output.pop()
    graph.output.append(new)
    set_metadata(result, {LAYOUT_KEY: "NTC"})
    onnx.checker.check_model(result)
    return result


def write_model_repository(
    repository: str | Path,
    model_path: str | Path,
    *,
    name: str = "crnn",
    max_batch_size: int = 64,
    instance_kind: InstanceKind = "gpu",
    instances: int = 1,
    config: CRNNConfig | None = None,
    force: bool = False,
    max_queue_delay_us: int = 100,
) -> TritonRepository:
    """Write ``repository/<name>`` for Triton's ONNX Runtime backend.

    The folder is assembled under a temporary name beside it and renamed into place, so
    Triton never sees a half-written model.

    Args:
        repository: the model repository folder (created if missing).
        model_path: a crnn-onnx export (output ``(T, N, C)``). With ``max_batch_size`` > 0
            its batch dimension must be dynamic (not exported with ``dynamic=False``).
        name: the model's name in Triton.
        max_batch_size: see :func:`model_config_text`.
        instance_kind, instances: where and how many sessions Triton runs.
        config: overrides the model's metadata (needed for models exported without it);
            it is then written into the repository's model and parameters.
        force: replace an existing ``repository/<name>``.
        max_queue_delay_us: the dynamic batcher's wait.

    Raises:
        CRNNError: onnx missing; bad arguments; the model unreadable, without a config, or
            not shaped like a crnn-onnx export; ``repository/<name>`` exists and not
            ``force``; the folder cannot be written.
    """
    onnx = _import_onnx()
    if not _NAME_PATTERN.fullmatch(name):
        raise CRNNError(f"model name {name!r}: use letters, digits, '_', '.', '-'")
    if max_batch_size < 0:
        raise CRNNError(f"max_batch_size must be >= 0, got {max_batch_size}")
    if instances < 1:
        raise CRNNError(f"instances must be at least 1, got {instances}")
    if instance_kind not in INSTANCE_KINDS:
        raise CRNNError(f"unknown instance kind {instance_kind!r} (known: gpu, cpu)")
    repo = Path(repository)
    target = repo / name
    if target.exists() and not force:
        raise CRNNError(f"{target} already exists: pass force=True to replace it, or pick "
                        "another name=")

    from google.protobuf.message import DecodeError  # protobuf comes with onnx

    try:
        model = onnx.load(os.fspath(model_path))
    except FileNotFoundError:
        raise CRNNError(f"model file not found: {model_path}") from None
    except OSError as err:
        raise CRNNError(f"cannot read {model_path}: {err.strerror or err}") from None
    except (DecodeError, ValueError):
        raise CRNNError(f"{model_path} is not an ONNX model") from None
    inputs = _graph_inputs(model)
    if len(inputs) != 1 or len(_dims(inputs[0])) != 4:
        raise CRNNError(f"{model_path}: expected one (N, 3, 32, W) input")
    if config is None:
        meta = {p.key: p.value for p in model.metadata_props}
        try:
            config = config_from_metadata(meta)
        except CRNNError as err:
            raise CRNNError(f"{model_path}: {err}") from None
    else:
        set_metadata(model, config_to_metadata(config))
    batch_first = batch_first_model(model)

    input_dims = _dims(inputs[0])
    output_dims = _dims(batch_first.graph.output[0])
    if output_dims[2] not in (-1, config.num_classes):
        raise CRNNError(
            f"{model_path}: the model outputs {output_dims[2]} classes but the charset has "
            f"{len(config.charset)} characters (+ 1 blank)"
        )
    if max_batch_size > 0:
        if input_dims[0] != -1:
            raise CRNNError(
                f"{model_path}: the batch size is fixed at {input_dims[0]} (exported with "
                "dynamic=False); Triton's batching needs a dynamic batch: re-export without "
                "dynamic=False, or pass max_batch_size=0"
            )
        input_dims, output_dims = input_dims[1:], output_dims[1:]

    labels = "".join(f"{label}\n" for label in (BLANK_LABEL, *config.charset))
    text = model_config_text(
        name=name, input_name=inputs[0].name, input_dims=input_dims,
        output_name=TRITON_OUTPUT_NAME, output_dims=output_dims,
        max_batch_size=max_batch_size, instance_kind=instance_kind, instances=instances,
        parameters=config_to_metadata(config), labels_file="labels.txt",
        max_queue_delay_us=max_queue_delay_us,
    )
    with atomic_folder(target, replace=force) as staging:
        try:
            (staging / _VERSION).mkdir()
            onnx.save(batch_first, os.fspath(staging / _VERSION / "model.onnx"))
            (staging / "config.pbtxt").write_text(text, encoding="utf-8")
            (staging / "labels.txt").write_text(labels, encoding="utf-8")
        except OSError as err:
            raise CRNNError(f"cannot write {target}: {err.strerror or err}") from None
    return TritonRepository(
        model_dir=target,
        config_file=target / "config.pbtxt",
        labels_file=target / "labels.txt",
        model_file=target / _VERSION / "model.onnx",
        input_name=inputs[0].name,
        output_name=TRITON_OUTPUT_NAME,
        input_dims=tuple(input_dims),
        output_dims=tuple(output_dims),
    )
