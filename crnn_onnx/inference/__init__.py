"""Inference: image files in, text out, with no torch, ray or onnx.

An image flows path → :mod:`~crnn_onnx.inference.images` (read and check) →
:mod:`~crnn_onnx.inference.preprocess` (resize, pad, normalise) → an engine
(:mod:`~crnn_onnx.inference.engines`) → :mod:`~crnn_onnx.inference.decoder` (CTC) →
:class:`~crnn_onnx.results.Prediction`; :mod:`~crnn_onnx.inference.predictor` composes them.
"""
