"""int8 quantization of a CRNN ONNX model for the CPU, calibrated on word images.

Static QDQ quantization (uint8 activations, int8 weights per output channel, ranges
calibrated on word images) lets ONNX Runtime fuse the convolutions into QLinearConv; the
LSTM weights are quantized dynamically on top (static quantization has no LSTM). What was
tried and measured is in docs/performance.md.

One calibration image in five is kept out and used to check the result: the report gives
how often the int8 model reads those exactly as the fp32 model does. The output keeps the
input, output and crnn-onnx metadata, plus :data:`~crnn_onnx.contract.QUANTIZATION_KEY`
describing what was done. Needs ``onnx`` (the ``quantize`` extra).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from crnn_onnx.atomic import atomic_path
from crnn_onnx.config import CRNNConfig
from crnn_onnx.contract import PRECISION_KEY, QUANTIZATION_KEY, set_metadata
from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.extras import require
from crnn_onnx.inference.decoder import ctc_greedy_decode
from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions
from crnn_onnx.perf.calibration import CalibrationReader, calibration_images

__all__ = [
    "CALIBRATION_METHODS",
    "CalibrationMethod",
    "QuantizeReport",
    "default_output",
    "quantize_model",
]

logger = logging.getLogger(__name__)

CalibrationMethod = Literal["minmax", "entropy", "percentile"]
CALIBRATION_METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")
#: Ops whose presence means a graph is quantized already.
_QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
    "ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM", "QLinearMatMul",
})
#: Every n-th image is kept out of calibration to check the result.
_CHECK_EVERY = 5


@dataclass(frozen=True)
class QuantizeReport:
    """What :func:`quantize_model` wrote.

    Attributes:
        output: the int8 model.
        source: the fp32 model it came from.
        calibration: where the calibration images came from, in words.
        calibration_images: images used to calibrate.
        check_images: images kept out of calibration and used for ``agreement``.
        agreement: fraction of ``check_images`` read exactly as the fp32 model reads them.
        per_channel: weights quantized per output channel.
        lstm: LSTM weights quantized too (dynamic int8).
        method: calibration method.
        size_bytes, source_bytes: file sizes.
        seconds: wall time.
    """

    output: Path
    source: Path
    calibration: str
    calibration_images: int
    check_images: int
    agreement: float
    per_channel: bool
    lstm: bool
    method: str
    size_bytes: int
    source_bytes: int
    seconds: float


def default_output(model: str | Path) -> Path:
    """Where ``quantize`` writes by default: ``crnn.onnx`` → ``crnn.int8.onnx`` beside it."""
    model = Path(model)
    return model.with_name(f"{model.stem}.int8.onnx")


def quantize_model(
    model: str | Path,
    output: str | Path | None = None,
    *,
    calibration: str | Path | None = None,
    count: int = 320,
    per_channel: bool = True,
    lstm: bool = True,
    method: CalibrationMethod = "minmax",
    seed: int = 0,
    config: CRNNConfig | None = None,
) -> QuantizeReport:
    """Quantize an fp32 CRNN ONNX model to int8 for the CPU (static QDQ, calibrated).

    Args:
        model: the fp32 model (as ``crnn-onnx export`` writes it).
        output: destination; default :func:`default_output`. Written atomically.
        calibration: folder of word images; ``None``: synthetic train-split crops.
        count: most calibration images (one in five is kept out to check the result).
        per_channel: int8 weights per output channel (else one scale per tensor).
        lstm: also quantize the LSTM weights (dynamic int8); else the LSTM stays fp32.
        method: ``minmax``, ``entropy`` or ``percentile`` activation ranges.
        seed: seed for sampling / rendering the calibration images.
        config: overrides the model's metadata (models exported without it).

    Returns:
        A :class:`QuantizeReport`.

    Raises:
        CRNNError: onnx missing; the model missing, not a CRNN, already quantized or fp16;
            no calibration images; quantization or writing fails.
    """
    start = time.perf_counter()
    source = Path(model)
    output = Path(output) if output is not None else default_output(source)
    if method not in CALIBRATION_METHODS:
        raise CRNNError(
            f"unknown calibration method {method!r} (known: {', '.join(CALIBRATION_METHODS)})"
        )
    if output.exists() and output.resolve() == source.resolve():
        raise CRNNError(f"output {str(output)!r} would overwrite the model being quantized")
    onnx, q = _import_quantization()

    fp32 = OrtEngine(source, OrtOptions(device="cpu"), config=config)
    config = fp32.spec.config
    proto = onnx.load(str(source))
    metadata = {p.key: p.value for p in proto.metadata_props}
    _check_quantizable(source, proto, metadata)

    images, described = calibration_images(config, calibration, count=count, seed=seed)
    check = images[::_CHECK_EVERY] if len(images) >= _CHECK_EVERY else images
    calibrate = [x for i, x in enumerate(images) if i % _CHECK_EVERY] or images

    with tempfile.TemporaryDirectory(prefix="crnn-quantize-") as tmp_dir:
        tmp = Path(tmp_dir)
        prepared, static, dynamic = tmp / "prepared.onnx", tmp / "static.onnx", tmp / "int8.onnx"
        with _quiet_ort_quantization():
            try:
                # Shape inference and constant folding first, as ONNX Runtime recommends;
                # ONNX shape inference is enough for this graph (no sympy needed).
                q.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
                q.quantize_static(
                    str(prepared),
                    str(static),
                    CalibrationReader(calibrate, fp32.spec.input_name),
                    quant_format=q.QuantFormat.QDQ,
                    activation_type=q.QuantType.QUInt8,
                    weight_type=q.QuantType.QInt8,
                    per_channel=per_channel,
                    # The first convolution reads the image itself: quantizing its input
                    # costs OpenVINO's int8 path most of its accuracy, for ~1% of the work.
                    nodes_to_exclude=_first_conv(onnx.load(str(prepared))),
                    calibrate_method={
                        "minmax": q.CalibrationMethod.MinMax,
                        "entropy": q.CalibrationMethod.Entropy,
                        "percentile": q.CalibrationMethod.Percentile,
                    }[method],
                )
                if lstm:
                    q.quantize_dynamic(
                        str(static), str(dynamic), op_types_to_quantize=["LSTM"],
                        weight_type=q.QuantType.QInt8,
                    )
                else:
                    os.replace(static, dynamic)
            except (ValueError, RuntimeError, TypeError, KeyError,
                    onnx.checker.ValidationError) as err:
                raise CRNNError(f"quantization failed: {one_line(err)}") from None

        quantized = onnx.load(str(dynamic))
        metadata[QUANTIZATION_KEY] = json.dumps({
            "weights": "int8",
            "activations": "uint8",
            "format": "QDQ",
            "per_channel": per_channel,
            "lstm": "dynamic int8" if lstm else "float32",
            "calibration": described,
            "method": method,
        })
        del quantized.metadata_props[:]
        set_metadata(quantized, metadata)
        quantized.producer_name = proto.producer_name
        quantized.producer_version = proto.producer_version
        quantized.doc_string = proto.doc_string
        final = tmp / "final.onnx"
        onnx.save_model(quantized, str(final))

        int8 = OrtEngine(final, OrtOptions(device="cpu"), config=config)
        names = (int8.spec.input_name, int8.spec.output_name)
        if names != (fp32.spec.input_name, fp32.spec.output_name):
            raise CRNNError(
                f"quantization renamed the graph's input/output to {names[0]!r}/{names[1]!r}"
            )
        agreement = _agreement(fp32, int8, check)
        size = final.stat().st_size
        # A copy, then a rename in the destination folder: the temporary folder may be on
        # another file system, where a rename is not atomic.
        with atomic_path(output, suffix=".onnx") as tmp_output:
            tmp_output.write_bytes(final.read_bytes())

    report = QuantizeReport(
        output=output,
        source=source,
        calibration=described,
        calibration_images=len(calibrate),
        check_images=len(check),
        agreement=agreement,
        per_channel=per_channel,
        lstm=lstm,
        method=method,
        size_bytes=size,
        source_bytes=source.stat().st_size,
        seconds=time.perf_counter() - start,
    )
    logger.debug("quantized %s -> %s", source, output)
    return report


def _agreement(reference: OrtEngine, candidate: OrtEngine, images: list[np.ndarray]) -> float:
    """Fraction of ``images`` that ``candidate`` reads exactly as ``reference`` does."""
    same = 0
    charset = reference.spec.config.charset
    for start in range(0, len(images), 32):
        batch = np.stack(images[start:start + 32])
        want = ctc_greedy_decode(reference.run(batch), charset)
        got = ctc_greedy_decode(candidate.run(batch), charset)
        same += sum(a.text == b.text for a, b in zip(want, got, strict=True))
    return same / len(images)


def _import_quantization() -> tuple[ModuleType, ModuleType]:
    onnx = require("onnx", extra="quantize", purpose="quantize")
    quantization = require("onnxruntime.quantization", extra="cpu", purpose="quantize",
                           name="ONNX Runtime")
    return onnx, quantization


def _first_conv(proto: Any) -> list[str]:
    """The name of the Conv node that reads the graph's input, if it has one."""
    inputs = {x.name for x in proto.graph.input}
    return [n.name for n in proto.graph.node if n.op_type == "Conv" and n.input[0] in inputs]


def _check_quantizable(path: Path, proto: Any, metadata: dict[str, str]) -> None:
    if QUANTIZATION_KEY in metadata or any(n.op_type in _QUANTIZED_OPS for n in proto.graph.node):
        raise CRNNError(f"{path} is quantized already; quantize the fp32 model it came from")
    if metadata.get(PRECISION_KEY, "fp32") != "fp32":
        raise CRNNError(
            f"{path} is an {metadata[PRECISION_KEY]} model; quantize the fp32 export instead"
        )


@contextlib.contextmanager
def _quiet_ort_quantization() -> Iterator[None]:
    """Hide onnxruntime.quantization's chatter, which it logs on the *root* logger.

    A filter on the root logger sees only records logged to the root logger itself, so
    this drops its info/warning lines (``Please consider to run pre-processing``, ``Please
    check if the model is already quantized`` for the second, LSTM-only pass) and nothing
    that other libraries log through their own loggers. Errors still pass.
    """
    def drop(record: logging.LogRecord) -> bool:
        from_ort = f"onnxruntime{os.sep}quantization" in record.pathname
        return not (from_ort and record.levelno < logging.ERROR)

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
