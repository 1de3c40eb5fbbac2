"""float16 models for GPUs: weights and activations in fp16, input and output kept float32.

onnxconverter-common's ``convert_float_to_float16`` with ``keep_io_types=True`` rewrites every
float tensor to fp16 and puts one Cast after the input and one before the output, so callers
feed and read float32 as with the fp32 model (names and metadata unchanged). An fp16 model is
for CUDA; ONNX Runtime's CPU provider computes it in fp32 between Casts. The tolerance
:data:`FP16_ATOL` is justified with measurements in docs/performance.md.

Needs ``onnx`` and ``onnxconverter-common`` (the ``export`` extra).
"""

from __future__ import annotations

import warnings

import onnx

from crnn_onnx.contract import PRECISION_KEY, set_metadata
from crnn_onnx.errors import CRNNError
from crnn_onnx.extras import require

__all__ = ["FP16_ATOL", "to_fp16"]

#: Largest absolute logit difference accepted between an fp16 export and PyTorch fp32.
FP16_ATOL = 0.1


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert an fp32 CRNN graph to fp16 with float32 input and output.

    Args:
        model: an fp32 ModelProto (not modified).

    Returns:
        A new ModelProto: fp16 initialisers and activations, Casts at the input and output,
        the same input/output names, and the same metadata plus ``crnn_onnx.precision =
        fp16``.

    Raises:
        CRNNError: onnxconverter-common is missing or the conversion fails.
    """
    float16 = require("onnxconverter_common.float16", extra="export", purpose="fp16 export",
                      name="onnxconverter-common")
    work = onnx.ModelProto()
    work.CopyFrom(model)  # the converter edits parts of its argument in place
    with warnings.catch_warnings():
        # One warning per weight below fp16's smallest normal (clamped to 1e-7): expected
        # for a trained network, and the verification judges the result instead.
        warnings.simplefilter("ignore", UserWarning)
        try:
            converted = float16.convert_float_to_float16(work, keep_io_types=True)
        except (ValueError, TypeError, RuntimeError) as err:
            raise CRNNError(f"fp16 conversion failed: {err}") from None
    set_metadata(converted, {PRECISION_KEY: "fp16"})
    return converted
