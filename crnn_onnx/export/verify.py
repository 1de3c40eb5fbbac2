"""Check an exported ONNX file against its PyTorch model, with ONNX Runtime on the CPU.

:func:`verify_onnx` feeds the same seeded random batches to both and reports the largest
absolute difference of the logits per (batch, width); :func:`crnn_onnx.export.exporter.
export_checkpoint` publishes a file only when that difference is within tolerance. Imports
torch; ONNX Runtime is imported on first use.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.export.model import eval_mode
from crnn_onnx.inference.engines.ort_env import import_onnxruntime, ort_errors

__all__ = ["VerifyCase", "VerifyReport", "require_onnxruntime", "verify_onnx"]


@dataclass(frozen=True)
class VerifyCase:
    """One input shape compared: ``max_abs_diff`` between ONNX Runtime and PyTorch logits."""

    batch: int
    width: int
    max_abs_diff: float


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify_onnx`: one :class:`VerifyCase` per (batch, width)."""

    cases: tuple[VerifyCase, ...]
    atol: float

    @property
    def max_diff(self) -> float:
        """Largest absolute difference over all cases (``inf`` if either side gave NaN)."""
        return max(case.max_abs_diff for case in self.cases)

    @property
    def worst(self) -> VerifyCase:
        return max(self.cases, key=lambda case: case.max_abs_diff)

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.atol


def require_onnxruntime() -> ModuleType:
    """Import ONNX Runtime for verification, or fail saying how to do without it.

    Raises:
        CRNNError: ONNX Runtime is not installed.
    """
    return import_onnxruntime("; or skip verification (verify=False)")


@contextlib.contextmanager
def _single_threaded_torch() -> Iterator[None]:
    """Run torch on one CPU thread for the duration, then restore the previous count.

    The verification inputs are small, and torch's OpenMP threads busy-wait on each other:
    on a machine whose cores are busy with other work, more threads made it many times
    slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def verify_onnx(
    model: nn.Module,
    onnx_path: str | Path,
    config: CRNNConfig,
    *,
    batch_sizes: Sequence[int] = (1, 3, 8),
    widths: Sequence[int] = (100, 160, 320),
    atol: float = 1e-4,
    seed: int = 0,
) -> VerifyReport:
    """Compare ONNX Runtime (CPUExecutionProvider) with PyTorch on seeded random inputs.

    Each case feeds the same (batch, 3, 32, width) float32 standard-normal tensor to both
    and records the largest absolute difference of the (T, batch, C) logits. Dimensions the
    ONNX input fixes (a static export) replace the requested ones, so a static model is
    checked at its own shape only.

    Args:
        model: the PyTorch reference, run in eval mode (its mode is restored).
        onnx_path: the ONNX file to check.
        config: gives the input height.
        batch_sizes: batch sizes to try where the batch is symbolic.
        widths: widths to try where the width is symbolic.
        atol: tolerance recorded in the report (``report.passed``); never raises for it.
        seed: seed of the random inputs.

    Returns:
        One :class:`VerifyCase` per (batch, width) in a :class:`VerifyReport`.

    Raises:
        CRNNError: ONNX Runtime is missing or cannot load/run the file, or the output
            shapes differ.
    """
    ort = require_onnxruntime()
    errors = ort_errors(ort)
    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except errors as err:
        raise CRNNError(f"ONNX Runtime cannot load {str(onnx_path)!r}: "
                        f"{one_line(err, keep='first')}") from None
    model_input, model_output = session.get_inputs()[0], session.get_outputs()[0]
    fixed_batch, _, _, fixed_width = model_input.shape
    if isinstance(fixed_batch, int):
        batch_sizes = (fixed_batch,)
    if isinstance(fixed_width, int):
        widths = (fixed_width,)

    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    cases = []
    with eval_mode(model), _single_threaded_torch():
        for batch in batch_sizes:
            for width in widths:
                images = rng.standard_normal((batch, 3, config.height, width), dtype=np.float32)
                with torch.inference_mode():
                    expected = model(torch.from_numpy(images).to(device)).float().cpu().numpy()
                try:
                    got = session.run([model_output.name], {model_input.name: images})[0]
                except errors as err:
                    raise CRNNError(
                        f"ONNX Runtime failed at batch {batch}, width {width}: "
                        f"{one_line(err, keep='first')}"
                    ) from None
                if got.shape != expected.shape:
                    raise CRNNError(
                        f"ONNX output shape {got.shape} differs from PyTorch's "
                        f"{expected.shape} at batch {batch}, width {width}"
                    )
                diff = float(np.max(np.abs(got.astype(np.float32) - expected)))
                cases.append(VerifyCase(batch, width, diff if math.isfinite(diff) else math.inf))
    return VerifyReport(cases=tuple(cases), atol=atol)
