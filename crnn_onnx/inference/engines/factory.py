"""Opening a model with the engine the options name."""

from __future__ import annotations

from pathlib import Path

from crnn_onnx.config import CRNNConfig
from crnn_onnx.inference.engines.base import Engine
from crnn_onnx.inference.options import PredictorOptions

__all__ = ["open_engine"]


def open_engine(model_path: str | Path, options: PredictorOptions,
                config: CRNNConfig | None = None) -> Engine:
    """The engine ``options.engine`` names, running ``model_path`` as ``options`` say.

    Raises:
        CRNNError: the engine is not installed, or the model cannot be loaded.
    """
    if options.engine == "openvino":
        from crnn_onnx.inference.engines.openvino import OvEngine, OvOptions

        return OvEngine(model_path, OvOptions(device=options.device, threads=options.threads,
                                              precision=options.precision), config=config)
    from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions

    return OrtEngine(model_path, OrtOptions(
        device=options.device, threads=options.threads,
        graph_optimization=options.graph_optimization,
        cudnn_conv_algo_search=options.cudnn_conv_algo_search,
    ), config=config)
