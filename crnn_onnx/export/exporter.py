"""PyTorch CRNN → self-describing ONNX file, verified against PyTorch with ONNX Runtime.

The file follows :mod:`crnn_onnx.contract`: a dynamic export leaves N, W and T symbolic
(``batch``, ``width``, ``frames``); a static one fixes the input at (1, 3, 32, config.width).
The :class:`~crnn_onnx.config.CRNNConfig` travels in ``metadata_props``, so the file alone is
enough to predict.

Files are written atomically: the model is written and checked (and, in
:func:`export_checkpoint`, verified) under a temporary name in the destination folder, then
renamed over the destination. On any failure nothing new is left at the output path and a
file already there is untouched.

This module imports torch and onnx (the ``export`` extra); ONNX Runtime is imported only when
verifying.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from crnn_onnx import __version__
from crnn_onnx.atomic import atomic_path
from crnn_onnx.config import CRNNConfig
from crnn_onnx.contract import (
    INPUT_NAME,
    OUTPUT_NAME,
    TORCH_VERSION_KEY,
    VERSION_KEY,
    config_to_metadata,
    set_metadata,
)
from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.export.checkpoint import load_checkpoint
from crnn_onnx.export.model import eval_mode
from crnn_onnx.export.verify import VerifyCase, VerifyReport, require_onnxruntime, verify_onnx

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "ExportReport",
    "export_checkpoint",
    "export_onnx",
]

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
#: Largest absolute logit difference accepted between an fp32 export and PyTorch.
DEFAULT_ATOL = 1e-4
#: Opsets the TorchScript exporter handles for this model (it stops at 20).
MIN_OPSET, MAX_OPSET = 11, 20

_DYNAMIC_AXES = {
    INPUT_NAME: {0: "batch", 3: "width"},
    OUTPUT_NAME: {0: "frames", 1: "batch"},
}


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_checkpoint` wrote.

    Attributes:
        output: the ONNX file.
        opset: ONNX opset of the default domain.
        size_bytes: file size.
        dynamic: batch and width are symbolic (else fixed at (1, 3, 32, config.width)).
        max_diff: largest |ONNX Runtime − PyTorch| over the verified cases; ``None`` when
            verification was skipped.
        cases: per-shape differences; empty when verification was skipped.
        export_seconds: loading the checkpoint, exporting and checking the graph.
        verify_seconds: running both frameworks on the verification inputs.
        fp16: weights and activations are float16 (input and output stay float32).
        atol: the tolerance the verification applied.
    """

    output: Path
    opset: int
    size_bytes: int
    dynamic: bool
    max_diff: float | None
    cases: tuple[VerifyCase, ...]
    export_seconds: float
    verify_seconds: float
    fp16: bool = False
    atol: float = DEFAULT_ATOL

    @property
    def seconds(self) -> float:
        """Total wall time."""
        return self.export_seconds + self.verify_seconds


def _trace_to_onnx(model: nn.Module, example: torch.Tensor, *, opset: int, dynamic: bool
                   ) -> bytes:
    """Run the TorchScript exporter quietly and return the serialised ModelProto.

    The TorchScript exporter (``dynamo=False``), because torch's dynamo exporter bakes the
    example's batch into the graph or fails on the LSTM with symbolic batch and width
    (docs/history.md); should a torch release drop it, export fails with one line and the
    export tests fail loudly.
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        # TracerWarnings from the input-shape guard in CRNN.forward (a constant for a fixed
        # height), the TorchScript deprecation notice and the LSTM batch advice are all
        # expected; the graph is checked and verified instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,  # type: ignore[arg-type]  # a binary file object works; the hint lags
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=_DYNAMIC_AXES if dynamic else None,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def _write_onnx(model: nn.Module, config: CRNNConfig, path: Path, *, opset: int, dynamic: bool,
                fp16: bool = False) -> None:
    """Export ``model`` to ``path`` (one self-contained file) with metadata, then check it.

    With ``fp16`` the graph is converted to float16 (float32 input and output) before it is
    written; see :mod:`crnn_onnx.export.fp16`.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise CRNNError(f"opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET}")
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and num_classes != config.num_classes:
        raise CRNNError(
            f"the model has {num_classes} classes but the charset gives {config.num_classes} "
            f"({len(config.charset)} characters + blank)"
        )
    param = next(model.parameters())
    if param.dtype != torch.float32:
        raise CRNNError(f"export needs a float32 model, got {param.dtype}; call model.float()")
    example = torch.zeros(1, 3, config.height, config.width, device=param.device)

    try:
        with eval_mode(model):
            raw = _trace_to_onnx(model, example, opset=opset, dynamic=dynamic)
    except (torch.onnx.errors.OnnxExporterError, RuntimeError, ValueError, TypeError) as err:
        raise CRNNError(f"ONNX export failed: {one_line(err, keep='first')}") from None

    proto = onnx.load_model_from_string(raw)
    proto.producer_name = "crnn-onnx"
    proto.producer_version = __version__
    proto.doc_string = (
        "CRNN text recogniser: images (N, 3, 32, W) float32 -> output0 (T, N, C) raw logits, "
        "T = W // 4 + 1, CTC blank at class 0."
    )
    del proto.metadata_props[:]
    set_metadata(proto, {**config_to_metadata(config), VERSION_KEY: __version__,
                         TORCH_VERSION_KEY: torch.__version__})
    if fp16:
        from crnn_onnx.export.fp16 import to_fp16

        proto = to_fp16(proto)
    try:
        onnx.save_model(proto, str(path), save_as_external_data=False)
    except OSError as err:
        raise CRNNError(
            f"cannot write to folder {str(path.parent)!r}: {err.strerror or err}"
        ) from None
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise CRNNError("the exported graph fails the ONNX checker: "
                        f"{one_line(err, keep='first')}") from None


def export_onnx(
    model: nn.Module,
    config: CRNNConfig,
    output: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
    fp16: bool = False,
) -> Path:
    """Export a CRNN to one self-contained, checked ONNX file, atomically.

    Args:
        model: float32 CRNN on any device; exported in eval mode (its mode is restored).
        config: written into ``metadata_props``; ``config.width`` is the static width.
        output: destination ``.onnx`` path; its folder is created if needed.
        opset: ONNX opset, :data:`MIN_OPSET`..:data:`MAX_OPSET`.
        dynamic: symbolic batch and width (``images`` (batch, 3, 32, width) -> ``output0``
            (frames, batch, C)); else fixed (1, 3, 32, config.width) -> (T, 1, C).
        fp16: float16 weights and activations, float32 input and output (for GPUs).

    Returns:
        ``output`` as a Path.

    Raises:
        CRNNError: unsupported opset, class-count mismatch, non-float32 model, export or
            checker failure, or the file cannot be written.
    """
    output = Path(output)
    with atomic_path(output, suffix=".onnx") as tmp:
        _write_onnx(model, config, tmp, opset=opset, dynamic=dynamic, fp16=fp16)
    return output


def export_checkpoint(
    ckpt: str | Path,
    config: CRNNConfig,
    output: str | Path | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
    verify: bool = True,
    atol: float | None = None,
    fp16: bool = False,
) -> ExportReport:
    """Load a checkpoint, export it to ONNX, verify it, and only then publish the file.

    Verification runs on the temporary file before the rename, so a model that fails it is
    never written to ``output`` (and a file already there is kept): an unverified model
    cannot be mistaken for a good one.

    Args:
        ckpt: ``.pth`` checkpoint (see :func:`crnn_onnx.export.checkpoint.load_checkpoint`).
        config: charset and input size; stored in the file's metadata.
        output: destination; default: ``ckpt`` with the suffix ``.onnx`` (as upstream).
        opset: ONNX opset, :data:`MIN_OPSET`..:data:`MAX_OPSET`.
        dynamic: symbolic batch and width; else fixed (1, 3, 32, config.width).
        verify: compare with PyTorch (batches 1, 3, 8 × widths 100, 160, 320 when dynamic).
        atol: largest absolute logit difference accepted; ``None``: :data:`DEFAULT_ATOL`,
            or :data:`crnn_onnx.export.fp16.FP16_ATOL` with ``fp16``.
        fp16: write a float16 model with float32 input and output (for GPUs), verified
            against the float32 PyTorch model.

    Returns:
        An :class:`ExportReport`.

    Raises:
        CRNNError: the checkpoint does not load, export or writing fails, ONNX Runtime is
            missing (with ``verify``), or the outputs differ by more than ``atol``.
    """
    start = time.perf_counter()
    ckpt = Path(ckpt)
    output = Path(output) if output is not None else ckpt.with_suffix(".onnx")
    if atol is None:
        from crnn_onnx.export.fp16 import FP16_ATOL

        atol = FP16_ATOL if fp16 else DEFAULT_ATOL
    if not (math.isfinite(atol) and atol >= 0):
        raise CRNNError(f"atol must be a non-negative number, got {atol}")
    if output.resolve() == ckpt.resolve():
        raise CRNNError(f"output {str(output)!r} would overwrite the checkpoint")
    if verify:
        require_onnxruntime()  # fail before the slow part
    model = load_checkpoint(ckpt, config)
    report: VerifyReport | None = None
    verify_seconds = 0.0
    with atomic_path(output, suffix=".onnx") as tmp:
        _write_onnx(model, config, tmp, opset=opset, dynamic=dynamic, fp16=fp16)
        export_seconds = time.perf_counter() - start
        if verify:
            report = verify_onnx(model, tmp, config, atol=atol)
            verify_seconds = time.perf_counter() - start - export_seconds
            if not report.passed:
                worst = report.worst
                raise CRNNError(
                    f"ONNX Runtime and PyTorch differ by up to {worst.max_abs_diff:.3g} "
                    f"(atol {atol:g}, at batch {worst.batch}, width {worst.width}); "
                    f"nothing was written to {str(output)!r} (a larger atol accepts it)"
                )
        size = tmp.stat().st_size
    logger.debug("exported %s (%d bytes)", output, size)
    return ExportReport(
        output=output,
        opset=opset,
        size_bytes=size,
        dynamic=dynamic,
        max_diff=report.max_diff if report else None,
        cases=report.cases if report else (),
        export_seconds=export_seconds,
        verify_seconds=verify_seconds,
        fp16=fp16,
        atol=atol,
    )
