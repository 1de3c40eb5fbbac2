"""What a model file holds, read without running it: its tensors, opsets, size, precision,
layout and crnn-onnx metadata (:func:`~crnn_onnx.inspection.model_info.read_model_info`).
It reads the file with ``onnx``, which the inference package never imports."""
