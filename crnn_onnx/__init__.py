"""crnn-onnx: export a CRNN text recogniser to ONNX and run it fast with ONNX Runtime."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
