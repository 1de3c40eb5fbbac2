"""Where the shipped model lives.

A wheel carries it as package data (``crnn_onnx/weights/crnn.onnx``, see
``pyproject.toml``); a source or editable checkout has it at ``<repo>/weights/crnn.onnx``.
"""

from __future__ import annotations

from pathlib import Path

import crnn_onnx
from crnn_onnx.errors import CRNNError

__all__ = ["SHIPPED_MODEL_NAME", "default_model_path"]

SHIPPED_MODEL_NAME = "crnn.onnx"


def _candidate_paths() -> list[Path]:
    package_dir = Path(crnn_onnx.__file__).resolve().parent
    return [
        package_dir / "weights" / SHIPPED_MODEL_NAME,  # wheel install
        package_dir.parent / "weights" / SHIPPED_MODEL_NAME,  # editable / source checkout
    ]


def default_model_path() -> Path:
    """The shipped model file: the first of the wheel and source-checkout locations that exists.

    Raises:
        CRNNError: neither exists.
    """
    for path in _candidate_paths():
        if path.is_file():
            return path
    raise CRNNError(
        "no model given and the shipped model weights/crnn.onnx is missing; export one with "
        "`export_checkpoint(ckpt)` and pass model="
    )
