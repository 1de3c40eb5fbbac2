"""Speed: int8 quantization, and the benchmark of engines and of the prediction pipeline."""
