"""The PyTorch model run eagerly, as the reference the engines are compared with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from crnn_onnx.config import CRNNConfig
from crnn_onnx.export.checkpoint import load_checkpoint

__all__ = ["eager_runner"]


def eager_runner(ckpt: str | Path, config: CRNNConfig, threads: int
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """A function running ``ckpt`` in PyTorch eager mode on ``threads`` CPU threads:
    (N, 3, 32, W) float32 -> (T, N, C) float32 logits.

    Raises:
        CRNNError: the checkpoint does not load.
    """
    torch.set_num_threads(threads)
    model = load_checkpoint(ckpt, config).eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = model(torch.from_numpy(batch)).numpy()
            return out

    return run
