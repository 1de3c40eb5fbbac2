"""The seam every engine sits behind: a batch of images in, CTC logits out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import numpy as np

from crnn_onnx.config import CHANNELS, HEIGHT
from crnn_onnx.contract import ModelSpec
from crnn_onnx.errors import CRNNError

__all__ = ["Engine"]


class Engine(ABC):
    """Runs one model: (N, 3, 32, W) float32 images -> (T, N, C) float32 logits.

    Subclasses open the model, set :attr:`spec` (from :meth:`ModelSpec.read`), :attr:`device`
    and :attr:`precision`, and implement :meth:`_run_once` for one batch the graph accepts;
    :meth:`run` checks the input, splits it for a graph with a fixed batch size, and checks
    the output. ``run`` must be safe to call from several threads at once.

    Attributes:
        name: the engine's name (``onnxruntime``).
        spec: what the model is: tensor names, static sizes, config.
        device: ``cpu`` or ``cuda``: where it runs.
        precision: the arithmetic it runs in (``fp32``, ``fp16``, ``int8``).
    """

    name: ClassVar[str]
    spec: ModelSpec
    device: Literal["cpu", "cuda"]
    precision: str

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a batch.

        Args:
            batch: (N, 3, 32, W) float32 preprocessed images (other float dtypes are
                converted); W must equal the graph's static width when it has one. A graph
                with a fixed batch size runs in chunks of that size, the last one padded.

        Returns:
            (T, N, C) float32 raw logits, T = W // 4 + 1.

        Raises:
            CRNNError: wrong input shape, or the engine failed to run.
        """
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:3] != (CHANNELS, HEIGHT):
            raise CRNNError(f"expected an (N, 3, 32, W) batch, got shape {x.shape}")
        n, width = x.shape[0], x.shape[3]
        spec = self.spec
        if spec.static_width is not None and width != spec.static_width:
            raise CRNNError(
                f"this model's input width is fixed at {spec.static_width}; got width {width}"
            )
        if n == 0:
            return np.zeros(spec.output_shape(0, width), dtype=np.float32)
        step = spec.static_batch
        if step is None or step == n:
            return self._checked(x)
        parts = []
        for start in range(0, n, step):
            chunk = x[start:start + step]
            if len(chunk) < step:  # pad the last chunk up to the graph's fixed batch size
                filler = np.zeros((step - len(chunk), *x.shape[1:]), dtype=np.float32)
                chunk = np.concatenate([chunk, filler])
            parts.append(self._checked(chunk))
        return np.ascontiguousarray(np.concatenate(parts, axis=1)[:, :n])

    def _checked(self, x: np.ndarray) -> np.ndarray:
        out = self._run_once(x)
        if out.ndim != 3 or out.shape[1] != x.shape[0]:
            raise CRNNError(f"the model returned shape {out.shape}, expected (T, N, C)")
        return out

    @abstractmethod
    def _run_once(self, x: np.ndarray) -> np.ndarray:
        """One run on a contiguous float32 batch the graph accepts: (T, N, C) logits."""

    def describe(self) -> str:
        """One line for logs and reports: engine, where it runs, precision."""
        return f"{self.name} on {self.device}, {self.precision}"
