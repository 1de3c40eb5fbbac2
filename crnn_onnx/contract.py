"""What a crnn-onnx model file is: its tensors, their shapes, and the metadata it carries.

Every part that writes a model (export, fp16, quantize, the Triton variant) and every engine
that reads one goes through this module, so the contract is written down once:

* one input :data:`INPUT_NAME` (N, 3, 32, W) float32 (channels and height are
  :data:`~crnn_onnx.config.CHANNELS` and :data:`~crnn_onnx.config.HEIGHT`), one output
  :data:`OUTPUT_NAME` (T, N, C) float32 raw logits, T = :func:`sequence_length` (W), class 0
  the CTC blank; N and W (and T) symbolic, or fixed in a static export;
* ``metadata_props`` under the :data:`METADATA_PREFIX` namespace: the
  :class:`~crnn_onnx.config.CRNNConfig` (:func:`config_to_metadata`), the toolkit and torch
  versions, and, for variants, the precision (:data:`PRECISION_KEY`), the quantization
  (:data:`QUANTIZATION_KEY`) and the output layout (:data:`LAYOUT_KEY`).

:class:`ModelSpec` is what an engine learns from a file's inputs, outputs and metadata,
checked once for all engines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from crnn_onnx.config import BLANK_INDEX, CHANNELS, HEIGHT, CRNNConfig, config_from_mapping
from crnn_onnx.errors import CRNNError

__all__ = [
    "INPUT_NAME",
    "LAYOUTS",
    "LAYOUT_KEY",
    "METADATA_PREFIX",
    "OUTPUT_NAME",
    "PRECISIONS",
    "PRECISION_KEY",
    "QUANTIZATION_KEY",
    "TORCH_VERSION_KEY",
    "VERSION_KEY",
    "Layout",
    "ModelSpec",
    "Precision",
    "TensorInfo",
    "config_from_metadata",
    "config_to_metadata",
    "has_config",
    "sequence_length",
    "set_metadata",
]

logger = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "output0"

METADATA_PREFIX = "crnn_onnx."
VERSION_KEY = METADATA_PREFIX + "version"
TORCH_VERSION_KEY = METADATA_PREFIX + "torch_version"
#: ``fp16`` for an fp16 export; absent for fp32.
PRECISION_KEY = METADATA_PREFIX + "precision"
#: JSON describing an int8 quantization; its presence marks a quantized model.
QUANTIZATION_KEY = METADATA_PREFIX + "quantization"
#: ``NTC`` for the batch-first variant made for Triton; absent for the usual (T, N, C).
LAYOUT_KEY = METADATA_PREFIX + "output_layout"

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
Layout = Literal["TNC", "NTC"]
LAYOUTS: tuple[str, ...] = get_args(Layout)

_CONFIG_KEYS = ("charset", "image_shape", "mean", "std", "pad_value", "keep_ratio", "bgr_to_rgb",
                "width_policy")


def sequence_length(width: int) -> int:
    """CTC frames T the CRNN emits for an input ``width``: ``W // 4 + 1``."""
    return width // 4 + 1


def set_metadata(model: Any, values: Mapping[str, str]) -> None:
    """Set ``values`` in an ``onnx.ModelProto``'s ``metadata_props``, in place: keys already
    there are replaced, the others kept in their order, new ones appended."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    for key, value in [*kept, *values.items()]:
        model.metadata_props.add(key=key, value=value)


def config_to_metadata(config: CRNNConfig) -> dict[str, str]:
    """A config as metadata entries (JSON values under :data:`METADATA_PREFIX`)."""
    return {
        METADATA_PREFIX + "charset": json.dumps(list(config.charset), ensure_ascii=False),
        METADATA_PREFIX + "blank_index": str(BLANK_INDEX),
        METADATA_PREFIX + "image_shape": json.dumps(list(config.image_shape)),
        METADATA_PREFIX + "mean": json.dumps(list(config.mean)),
        METADATA_PREFIX + "std": json.dumps(list(config.std)),
        METADATA_PREFIX + "pad_value": json.dumps(config.pad_value),
        METADATA_PREFIX + "keep_ratio": json.dumps(config.keep_ratio),
        METADATA_PREFIX + "bgr_to_rgb": json.dumps(config.bgr_to_rgb),
        METADATA_PREFIX + "width_policy": json.dumps(config.width_policy),
    }


def has_config(metadata: Mapping[str, str]) -> bool:
    """Whether ``metadata`` carries a config written by :func:`config_to_metadata`."""
    return METADATA_PREFIX + "charset" in metadata


def config_from_metadata(metadata: Mapping[str, str]) -> CRNNConfig:
    """Rebuild the config a model carries.

    Raises:
        CRNNError: the toolkit's keys are missing or malformed.
    """
    if not has_config(metadata):
        raise CRNNError(
            "the model carries no crnn-onnx metadata (charset, preprocessing); "
            "pass config= with the YAML it was trained with, or re-export it with crnn-onnx"
        )
    raw: dict[str, Any] = {}
    try:
        for key in _CONFIG_KEYS:
            if METADATA_PREFIX + key in metadata:
                raw[key] = json.loads(metadata[METADATA_PREFIX + key])
        blank = int(metadata.get(METADATA_PREFIX + "blank_index", str(BLANK_INDEX)))
    except (ValueError, TypeError, RecursionError) as err:
        raise CRNNError(f"the model's crnn-onnx metadata is malformed: {err}") from None
    if blank != BLANK_INDEX:
        raise CRNNError(f"the model's blank index is {blank}; crnn-onnx supports {BLANK_INDEX}")
    return config_from_mapping(raw, source="model metadata")


def precision_of(metadata: Mapping[str, str]) -> Precision:
    """The precision a model's metadata records: ``int8``, ``fp16`` or ``fp32``."""
    if QUANTIZATION_KEY in metadata:
        return "int8"
    return "fp16" if metadata.get(PRECISION_KEY) == "fp16" else "fp32"


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output as an engine reports it.

    Attributes:
        name: the tensor's name.
        shape: one entry per axis: an int for a fixed size, a string (or ``None``) for a
            symbolic one.
        dtype: the element type in ONNX words (``float``, ``float16`` ...).
    """

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str = "float"


def _static(dim: int | str | None) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


@dataclass(frozen=True)
class ModelSpec:
    """What a model file is, read once from its tensors and metadata.

    Attributes:
        source: where the model came from (its path), for messages.
        input_name, output_name: the graph's tensors.
        static_batch, static_width, static_frames: sizes the graph fixes, else ``None``.
        classes: the output's class count when the graph fixes it.
        config: the model's config (from its metadata, or the override), its width fitted to
            a static graph.
        precision: ``fp32``, ``fp16`` or ``int8``.
        metadata: every metadata entry.
    """

    source: str
    input_name: str
    output_name: str
    static_batch: int | None
    static_width: int | None
    static_frames: int | None
    classes: int | None
    config: CRNNConfig
    precision: Precision = "fp32"
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, source: str, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
             metadata: Mapping[str, str], config: CRNNConfig | None = None) -> ModelSpec:
        """Check a model against the contract and describe it.

        Args:
            source: the model's path, for messages.
            inputs, outputs: the graph's inputs and outputs as the engine reports them.
            metadata: the model's metadata entries.
            config: overrides the metadata's config (models exported without one).

        Raises:
            CRNNError: not one float (N, 3, 32, W) input and a (T, N, C) output; the
                batch-first Triton variant; no config; classes and charset disagree.
        """
        if len(inputs) != 1 or len(outputs) < 1:
            raise CRNNError(
                f"{source}: expected a CRNN with one input and one output, got "
                f"{len(inputs)} inputs and {len(outputs)} outputs"
            )
        x, y = inputs[0], outputs[0]
        if x.dtype != "float" or len(x.shape) != 4 or len(y.shape) != 3:
            raise CRNNError(
                f"{source}: expected a float (N, 3, 32, W) input and a (T, N, C) output, got "
                f"tensor({x.dtype}) {list(x.shape)} -> tensor({y.dtype}) {list(y.shape)}"
            )
        for axis, want in ((1, CHANNELS), (2, HEIGHT)):
            if isinstance(x.shape[axis], int) and x.shape[axis] != want:
                raise CRNNError(f"{source}: input shape {list(x.shape)} is not (N, 3, 32, W)")
        if metadata.get(LAYOUT_KEY) == "NTC":
            # Decoding (N, T, C) as (T, N, C) would give wrong text without any error.
            raise CRNNError(
                f"{source}: this is the batch-first (N, T, C) model made for Triton "
                "by `crnn-onnx triton-repo`; predict with the original export instead"
            )
        static_width = _static(x.shape[3])
        if config is None:
            try:
                config = config_from_metadata(metadata)
            except CRNNError as err:
                raise CRNNError(f"{source}: {err}") from None
            what = "metadata"
        else:
            what = "the given config's"
        if static_width is not None and config.width != static_width:
            logger.warning(
                "%s: %s width %d differs from the graph's fixed input width %d; using %d",
                source, what, config.width, static_width, static_width,
            )
            try:
                config = config.replace(image_shape=(CHANNELS, HEIGHT, static_width))
            except CRNNError as err:
                raise CRNNError(f"{source}: {err}") from None
        classes = _static(y.shape[2])
        if classes is not None and classes != config.num_classes:
            raise CRNNError(
                f"{source}: the model outputs {classes} classes but the charset has "
                f"{len(config.charset)} characters (+ 1 blank); model and config do not "
                "belong together"
            )
        return cls(
            source=source, input_name=x.name, output_name=y.name,
            static_batch=_static(x.shape[0]), static_width=static_width,
            static_frames=_static(y.shape[0]), classes=classes, config=config,
            precision=precision_of(metadata), metadata=dict(metadata),
        )

    def output_shape(self, batch: int, width: int) -> tuple[int, int, int]:
        """The (T, N, C) logits shape for ``batch`` images ``width`` wide."""
        if self.static_frames is not None and width == self.static_width:
            frames = self.static_frames
        else:
            frames = sequence_length(width)
        return frames, batch, self.config.num_classes
