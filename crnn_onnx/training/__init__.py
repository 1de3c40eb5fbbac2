"""Training: fine-tuning a CRNN on labelled crops (:func:`trainer.finetune`, behind the
``train`` extra) and what it reads: labels fitted to a charset (``labels``), labelled and
rendered crops (``data``, ``replay``) and their augmentation (``augment``).

torch is imported by ``trainer``, ``inputs``, ``batches``, ``freezing`` and ``charset``
only; :func:`require_training_dependencies` lets a caller fail with one line, before
importing them, when it is missing.
"""

from __future__ import annotations

from crnn_onnx.extras import require

__all__ = ["require_training_dependencies"]


def require_training_dependencies() -> None:
    """Check that torch (the ``train`` extra) is installed.

    Raises:
        CRNNError: ``finetune needs torch: pip install 'crnn-onnx[train]'``.
    """
    require("torch", extra="train", purpose="finetune")
