"""``python -m crnn_onnx`` runs the CLI."""

from crnn_onnx.cli import main

main()
