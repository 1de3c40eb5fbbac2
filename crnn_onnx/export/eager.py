"""The PyTorch model run eagerly, the reference the engines are compared with, and what the
machine's matrix units can do at most (the ceiling an engine's speed is set against)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from crnn_onnx.config import CRNNConfig
from crnn_onnx.export.checkpoint import load_checkpoint
from crnn_onnx.export.model import CRNN

__all__ = ["eager_runner", "flops_per_image", "gemm_ceiling"]


def eager_runner(ckpt: str | Path, config: CRNNConfig, threads: int, *, bf16: bool = False
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """A function running ``ckpt`` in PyTorch eager mode on ``threads`` CPU threads:
    (N, 3, 32, W) float32 -> (T, N, C) float32 logits.

    With ``bf16`` the backbone runs channels-last under bf16 autocast (the LSTM and the
    classifier stay fp32), as a PyTorch user would run it on a CPU with bf16 units.

    Raises:
        CRNNError: the checkpoint does not load.
    """
    torch.set_num_threads(threads)
    model = load_checkpoint(ckpt, config).eval()
    if bf16:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch)
        with torch.inference_mode():
            if not bf16:
                out: np.ndarray = model(x).numpy()
                return out
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                features = model.feat_extract(x)
            return model.head(model.neck(features.float())).float().numpy()

    return run


def flops_per_image(config: CRNNConfig, width: int | None = None) -> float:
    """Floating-point operations of one forward pass of the CRNN for one image (multiply and
    add counted apart), as PyTorch's flop counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    model = CRNN(config.num_classes).eval()
    x = torch.zeros(1, 3, config.height, width or config.width)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return float(counter.get_total_flops())


def gemm_ceiling(dtype: str, threads: int, *, size: int = 2048, seconds: float = 1.0) -> float:
    """The machine's measured matrix-multiply rate in FLOP/s: square ``size`` GEMMs in
    ``float32`` or ``bfloat16`` on ``threads`` threads, for about ``seconds``."""
    torch.set_num_threads(threads)
    kind = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(kind)
    b = torch.randn(size, size, generator=generator).to(kind)
    a @ b  # warm-up: thread pool and kernels
    runs, start = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2.0 * size**3 * runs / (time.perf_counter() - start)
