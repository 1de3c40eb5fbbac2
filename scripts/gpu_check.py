#!/usr/bin/env python3
"""Time ONNX Runtime on CUDA for the README: IO binding on and off, the fp32 model and its
``export --fp16`` twin, batch sizes, and cuDNN's convolution algorithm search.

Every cell runs the same seeded input (width 100) for a fixed time after warm-up runs and
reports images/s at the median latency. ``--device cpu`` runs the same matrix on the CPU, to
check the script itself on a machine without a GPU.

    python scripts/gpu_check.py --model weights/crnn.onnx --fp16-model /tmp/crnn.fp16.onnx
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions


@dataclass(frozen=True)
class Cell:
    """One measured configuration."""

    model: str
    io_binding: bool
    conv_algo: str
    batch: int
    median_ms: float
    images_per_s: float


def time_cell(engine: OrtEngine, batch: int, seconds: float, warmup: int) -> float:
    """Median milliseconds of one run of ``batch`` noise images at width 100."""
    x = np.random.default_rng(0).standard_normal((batch, 3, 32, 100), dtype=np.float32)
    for _ in range(warmup):
        engine.run(x)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        engine.run(x)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def measure(models: dict[str, Path], device: str, batches: list[int], algos: list[str],
            seconds: float, warmup: int) -> list[Cell]:
    cells = []
    for (name, path), binding, algo in itertools.product(models.items(), (True, False), algos):
        engine = OrtEngine(path, OrtOptions(device=device, io_binding=binding,  # type: ignore[arg-type]
                                            cudnn_conv_algo_search=algo))  # type: ignore[arg-type]
        for batch in batches:
            ms = time_cell(engine, batch, seconds, warmup)
            cells.append(Cell(name, binding, algo, batch, ms, batch / (ms / 1000)))
    return cells


def markdown(cells: list[Cell], header: str) -> str:
    lines = [header, "", "| model | IO binding | conv algo search | batch | median ms | images/s |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {c.model} | {'on' if c.io_binding else 'off'} | {c.conv_algo} | {c.batch} | "
              f"{c.median_ms:.2f} | {c.images_per_s:.0f} |" for c in cells]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--fp16-model", type=Path)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--algos", default="HEURISTIC,EXHAUSTIVE")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--format", choices=["markdown", "json"], default="markdown")
    args = parser.parse_args()
    models = {"fp32": args.model}
    if args.fp16_model is not None:
        models["fp16"] = args.fp16_model
    try:
        cells = measure(models, args.device, [int(b) for b in args.batches.split(",")],
                        args.algos.split(","), args.seconds, args.warmup)
    except CRNNError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps([asdict(c) for c in cells], indent=2))
    else:
        import onnxruntime

        print(markdown(cells, f"ONNX Runtime {onnxruntime.__version__} on {args.device}, "
                              f"width 100, {args.seconds:g} s per cell"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
