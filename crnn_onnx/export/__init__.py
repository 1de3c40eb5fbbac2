"""From a PyTorch checkpoint to a verified, self-describing ONNX file; torch lives only here.

:func:`require_export_dependencies` lets a caller fail with one line, before importing the
modules that need them, when torch or onnx (the ``export`` extra) is missing.
"""

from __future__ import annotations

from crnn_onnx.extras import require

__all__ = ["require_export_dependencies"]


def require_export_dependencies() -> None:
    """Check that torch and onnx are installed (torch first, the extra's main dependency).

    Raises:
        CRNNError: ``export needs torch: pip install 'crnn-onnx[export]'`` (or onnx).
    """
    require("torch", extra="export", purpose="export")
    require("onnx", extra="export", purpose="export")
