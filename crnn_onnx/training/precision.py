"""Which arithmetic training runs in: bf16 where the CPU computes it natively, else fp32."""

from __future__ import annotations

from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.engines.cpu_features import BF16_FLAGS, CPUINFO, cpu_flags
from crnn_onnx.training.settings import TrainPrecision

__all__ = ["resolve_precision"]


def _native_bf16() -> bool:
    try:
        return bool(cpu_flags(CPUINFO) & BF16_FLAGS)
    except OSError:  # no /proc/cpuinfo (macOS, Windows): do not guess
        return False


def resolve_precision(precision: TrainPrecision) -> bool:
    """Whether to train the convolutions in bf16 autocast.

    ``auto`` picks bf16 on CPUs with AMX or AVX512-BF16 and fp32 elsewhere, where bf16 is
    emulated (speeds in docs/training.md).

    Raises:
        CRNNError: ``bf16`` asked for on a CPU without native bf16.
    """
    if precision == "fp32":
        return False
    native = _native_bf16()
    if precision == "bf16" and not native:
        raise CRNNError(
            f"precision='bf16' needs a CPU with {' or '.join(sorted(BF16_FLAGS))} (emulated "
            "bf16 is many times slower than fp32); use precision='fp32' or 'auto'"
        )
    return native
