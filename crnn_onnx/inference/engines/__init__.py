"""Engines: each runs an (N, 3, 32, W) float32 batch and returns (T, N, C) float32 logits.

What a model file must hold is read by :mod:`crnn_onnx.contract`, the same for every engine.
"""
