"""How a model is run: one options object from the command line through the Predictor to the
Ray actors, and every choice declared once (the CLI derives its choices from these tuples)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from crnn_onnx.config import WIDTH_POLICIES
from crnn_onnx.errors import CRNNError, UsageError

__all__ = [
    "CONV_ALGO_SEARCHES",
    "DECODERS",
    "DEVICES",
    "ENGINES",
    "GRAPH_OPTIMIZATIONS",
    "PRECISIONS",
    "WIDTH_CHOICES",
    "ConvAlgoSearch",
    "DecoderName",
    "Device",
    "EngineName",
    "GraphOptimization",
    "Precision",
    "PredictorOptions",
    "WidthChoice",
    "check_choice",
]

EngineName = Literal["onnxruntime", "openvino"]
ENGINES: tuple[str, ...] = get_args(EngineName)
#: The arithmetic a model runs in (int8 models run as quantized, whatever this says).
Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)
GraphOptimization = Literal["disable", "basic", "extended", "all"]
GRAPH_OPTIMIZATIONS: tuple[str, ...] = get_args(GraphOptimization)
ConvAlgoSearch = Literal["HEURISTIC", "EXHAUSTIVE", "DEFAULT"]
CONV_ALGO_SEARCHES: tuple[str, ...] = get_args(ConvAlgoSearch)
DecoderName = Literal["greedy", "beam"]
DECODERS: tuple[str, ...] = get_args(DecoderName)
#: A width policy (:data:`crnn_onnx.config.WIDTH_POLICIES`), or ``auto``: the one the model
#: was trained for (its config's), ``fixed`` for a model whose input width is fixed.
WidthChoice = Literal["auto", "fixed", "bucket"]
WIDTH_CHOICES: tuple[str, ...] = ("auto", *WIDTH_POLICIES)


def check_choice(what: str, value: object, choices: Sequence[str]) -> None:
    """Refuse a value outside ``choices``, naming them.

    Raises:
        CRNNError: ``unknown <what> <value> (known: ...)``.
    """
    if value not in choices:
        raise CRNNError(f"unknown {what} {value!r} (known: {', '.join(choices)})")


def check_at_least(name: str, value: int | None, least: int) -> None:
    """Refuse an integer setting below ``least`` (``None`` passes: the default applies)."""
    if value is not None and value < least:
        raise CRNNError(f"{name} must be at least {least}, got {value}")


@dataclass(frozen=True)
class PredictorOptions:
    """How the :class:`~crnn_onnx.inference.predictor.Predictor` runs a model.

    Attributes:
        engine: what runs the model: ``onnxruntime`` (CPU or CUDA) or ``openvino`` (CPU;
            the ``openvino`` extra).
        precision: ``fp32`` (exact parity with PyTorch), or ``bf16`` (OpenVINO on a CPU
            with AMX or AVX512-BF16).
        device: ``auto`` (CUDA when the engine has it, else the CPU, saying which in one
            log line), ``cpu``, or ``cuda`` (an error if CUDA cannot be used).
        batch_size: most images per model run.
        threads: the engine's intra-op threads; ``None`` for its default (one per core).
        width_policy: ``auto`` (the policy the model was trained for, from its config),
            ``fixed`` (every image at the model's width, as upstream) or ``bucket`` (width
            from each image's aspect ratio; dynamic-width models only).
        io_workers: threads that read and preprocess images; ``None`` chooses (see
            :func:`~crnn_onnx.inference.predictor.default_io_workers`).
        graph_optimization: ONNX Runtime's graph optimisation level.
        cudnn_conv_algo_search: how ONNX Runtime's CUDA provider picks convolution
            algorithms; ``EXHAUSTIVE`` benchmarks them for every new input shape.
        decoder: ``greedy`` (best path) or ``beam`` (CTC prefix beam search); ``None``:
            greedy, or beam with a lexicon.
        beam_width: prefixes the beam search keeps per frame.
        allowlist: the only characters that may be read (their classes are masked before
            decoding, so the best allowed reading is chosen); ``None``: all.
        blocklist: characters that are never read.
        lexicon: a file of words, one per line, or the words themselves: every reading is
            then one of them (beam search along a prefix trie).
    """

    engine: EngineName = "onnxruntime"
    precision: Precision = "fp32"
    device: Device = "auto"
    batch_size: int = 32
    threads: int | None = None
    width_policy: WidthChoice = "auto"
    io_workers: int | None = None
    graph_optimization: GraphOptimization = "all"
    cudnn_conv_algo_search: ConvAlgoSearch = "HEURISTIC"
    decoder: DecoderName | None = None
    beam_width: int = 10
    allowlist: str | None = None
    blocklist: str | None = None
    lexicon: str | Path | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_choice("engine", self.engine, ENGINES)
        check_choice("precision", self.precision, PRECISIONS)
        if self.precision == "bf16" and self.engine != "openvino":
            raise UsageError("precision='bf16' needs engine='openvino' (ONNX Runtime runs "
                             "this model in fp32 on the CPU)")
        check_choice("device", self.device, DEVICES)
        check_choice("width policy", self.width_policy, WIDTH_CHOICES)
        check_choice("graph optimisation level", self.graph_optimization, GRAPH_OPTIMIZATIONS)
        check_choice("cudnn_conv_algo_search", self.cudnn_conv_algo_search, CONV_ALGO_SEARCHES)
        check_at_least("batch_size", self.batch_size, 1)
        check_at_least("threads", self.threads, 1)
        check_at_least("io_workers", self.io_workers, 1)
        if self.decoder is not None:
            check_choice("decoder", self.decoder, DECODERS)
        check_at_least("beam_width", self.beam_width, 1)
