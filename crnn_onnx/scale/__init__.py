"""Scale-out on engines users already run: Ray Data for bulk jobs, a Triton model repository
for serving. Ray, pyarrow and onnx are imported only here, and only when used."""
