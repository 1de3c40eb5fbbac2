"""float16 models for GPUs: weights and activations in fp16, input and output kept float32.

The conversion is onnxconverter-common's ``convert_float_to_float16`` with
``keep_io_types=True``: it rewrites every float tensor of the graph to fp16 and puts one Cast
after the input ``images`` and one before the output ``output0``, so callers feed and read
float32 exactly as with the fp32 model (the export contract is unchanged, and so are the
input/output names and the crnn-onnx metadata). An fp16 model is for CUDA, where ONNX
Runtime runs Conv, LSTM and MatMul in half precision; the CPU provider has no fp16 kernels
for them and falls back to float32 arithmetic between Casts, so on a CPU it is slower than
fp32 while still giving fp16-rounded results (which is how the export is verified there).

Tolerance (:data:`FP16_ATOL` = 0.1 on the logits): fp16 keeps 11 significant bits, a
relative rounding error of up to 2**-11 ≈ 4.9e-4 per stored value, and every layer rounds
its weights and activations once more. Measured on two trained checkpoints (logits up to
±17): the largest difference from fp32 is 2.0e-3 to 2.1e-3 over the export's verification
inputs and 4.0e-3 to 7.1e-3 over 500 held-out word images, with every frame's arg-max, every
text and every confidence (to 2e-4) unchanged. On a GPU the arithmetic itself is fp16 too
(accumulating in fp32), which adds error of the same order, hence a tolerance about 14 times
the measured worst case. What it allows is harmless by construction: logits that move by at
most 0.1 change each softmax probability by a factor within [e**-0.2, e**0.2] = [0.82,
1.22], and can only swap the winning class of a frame whose two best logits were within 0.2
of each other, a frame the model was unsure of anyway. A broken conversion (a wrong Cast, an
overflow to inf) is off by whole units or NaN and fails it.

Needs ``onnx`` and ``onnxconverter-common`` (the ``export`` extra).
"""

from __future__ import annotations

import warnings

import onnx

from crnn_onnx.errors import CRNNError

__all__ = ["FP16_ATOL", "PRECISION_KEY", "is_fp16", "to_fp16"]

#: Largest absolute logit difference accepted between an fp16 export and PyTorch fp32.
FP16_ATOL = 0.1
#: Metadata key recording the precision of the weights (``fp16``); absent means fp32.
PRECISION_KEY = "crnn_onnx.precision"


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
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise CRNNError(
            "fp16 export needs onnxconverter-common: pip install 'crnn-onnx[export]'"
        ) from None
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
    props = {p.key: p.value for p in converted.metadata_props}
    props[PRECISION_KEY] = "fp16"
    del converted.metadata_props[:]
    for key, value in props.items():
        converted.metadata_props.add(key=key, value=value)
    return converted


def is_fp16(metadata: dict[str, str]) -> bool:
    """Whether a model's metadata marks it as an fp16 export."""
    return metadata.get(PRECISION_KEY) == "fp16"
