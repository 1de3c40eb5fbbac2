"""From a PyTorch checkpoint to a verified, self-describing ONNX file; torch lives only here
(and in training)."""
