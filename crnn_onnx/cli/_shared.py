"""Choices and options that several commands share, declared once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from crnn_onnx.inference.options import DecoderName, Device, EngineName, Precision, WidthChoice

if TYPE_CHECKING:
    from crnn_onnx.config import CRNNConfig

__all__ = [
    "AllowlistOption",
    "BatchSizeOption",
    "BeamWidthOption",
    "BlocklistOption",
    "ConfigOverrideOption",
    "DecoderOption",
    "DeviceOption",
    "EngineOption",
    "LexiconOption",
    "ModelOption",
    "PrecisionOption",
    "ReportFormat",
    "ThreadsOption",
    "WidthPolicyOption",
    "config_override",
    "model_or_default",
    "predict_logging",
    "with_stdin",
]


#: How ``eval`` and ``benchmark`` print their report.
ReportFormat = Literal["text", "json"]


ModelOption = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="ONNX model; default: the shipped weights/crnn.onnx."),
]
ConfigOverrideOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML config overriding the model's metadata (needed for "
                 "models exported without it)."),
]
BatchSizeOption = Annotated[
    int, typer.Option("--batch-size", min=1, help="Images per model run.")
]
DeviceOption = Annotated[
    Device,
    typer.Option("--device", help="auto: CUDA if this onnxruntime has it, else CPU; cpu; cuda "
                 "(an error if CUDA cannot run)."),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option("--threads", min=1,
                 help="The engine's intra-op threads; default: one per physical core."),
]
WidthPolicyOption = Annotated[
    WidthChoice,
    typer.Option("--width-policy", help="auto: the policy the model was trained for (its "
                 "metadata); fixed: every image at the model width (as upstream); "
                 "bucket: width from each image's aspect ratio (dynamic-width models)."),
]


EngineOption = Annotated[
    EngineName,
    typer.Option("--engine", help="onnxruntime (CPU, or CUDA with IO binding) or openvino "
                 "(CPU; the openvino extra)."),
]
PrecisionOption = Annotated[
    Precision,
    typer.Option("--precision", help="fp32 (exact parity with PyTorch) or bf16 (--engine "
                 "openvino, on a CPU with AMX or AVX512-BF16)."),
]
AllowlistOption = Annotated[
    str | None,
    typer.Option("--allowlist", help="Only these characters may be read (e.g. 0123456789); "
                 "the best reading among them is chosen.", metavar="CHARS"),
]
BlocklistOption = Annotated[
    str | None,
    typer.Option("--blocklist", help="These characters are never read.", metavar="CHARS"),
]
DecoderOption = Annotated[
    DecoderName | None,
    typer.Option("--decoder", help="greedy (best path) or beam (CTC prefix beam search); "
                 "default: greedy, or beam with --lexicon.", show_default=False),
]
BeamWidthOption = Annotated[
    int, typer.Option("--beam-width", min=1, help="Prefixes the beam search keeps per frame.")
]
LexiconOption = Annotated[
    Path | None,
    typer.Option("--lexicon", help="File of words, one per line: every reading is one of "
                 "them (beam search along a prefix trie).", metavar="FILE"),
]


@contextmanager
def predict_logging(quiet: bool) -> Iterator[None]:
    """--quiet keeps only warnings; OpenCV's own decoder chatter is hidden unless -v (the
    records already say why an image failed)."""
    import cv2

    package_logger = logging.getLogger("crnn_onnx")
    old_level = package_logger.level
    old_cv2 = cv2.utils.logging.getLogLevel()
    if quiet:
        package_logger.setLevel(logging.WARNING)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        package_logger.setLevel(old_level)
        cv2.utils.logging.setLogLevel(old_cv2)


def with_stdin(paths: list[str]) -> Iterator[str]:
    """PATHS, each ``-`` replaced by the newline-separated paths read from standard input,
    lazily and in order; blank lines are skipped. Names are decoded as the file system does,
    so a name that is not UTF-8 still names its file."""
    import os
    import sys

    for arg in paths:
        if arg != "-":
            yield arg
            continue
        for raw in sys.stdin.buffer:
            line = os.fsdecode(raw.rstrip(b"\r\n"))
            if line.strip():
                yield line


def model_or_default(model: Path | None) -> Path:
    """``--model``, or the shipped model when it is not given.

    Raises:
        CRNNError: no model was given and the shipped one cannot be found.
    """
    from crnn_onnx.weights import default_model_path

    return model if model is not None else default_model_path()


def config_override(config: Path | None) -> CRNNConfig | None:
    """``--config`` loaded, or ``None`` when it is not given (the model's metadata applies).

    Raises:
        CRNNError: the YAML file is missing or invalid.
    """
    from crnn_onnx.config import load_config

    return load_config(config) if config is not None else None
