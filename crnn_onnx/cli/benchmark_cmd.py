"""``benchmark``: time the engines and the prediction pipeline on the same inputs."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from crnn_onnx.cli._app import app, errors_to_exit, in_cli_words
from crnn_onnx.cli._shared import EngineOption, PrecisionOption, ReportFormat, model_or_default
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.options import Device
from crnn_onnx.perf.field import DEFAULT_FIELD, FIELD


def _startup_timer(model: Path, runs: int, engine: str, precision: str
                   ) -> Callable[[str], float]:
    """Times ``crnn-onnx predict IMAGE --model MODEL --engine E --precision P -q`` as a
    whole process, ``runs`` times; the median wall time."""
    def time_startup(image: str) -> float:
        command = [sys.executable, "-m", "crnn_onnx", "predict", image, "--model", str(model),
                   "--engine", engine, "--precision", precision, "-q"]
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  check=False)
            walls.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise CRNNError("one-image predict failed: "
                                f"{done.stderr.decode().strip()[-300:]}")
        return statistics.median(walls)

    return time_startup


def _int_list(value: str, option: str) -> list[int]:
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {value!r}",
                                 param_hint=option) from None
    if not numbers or min(numbers) < 1:
        raise typer.BadParameter(f"expected integers >= 1, got {value!r}", param_hint=option)
    return numbers


@app.command()
def benchmark(
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="fp32 ONNX model; default: the shipped "
                     "weights/crnn.onnx."),
    ] = None,
    batch_sizes: Annotated[
        str, typer.Option("--batch-sizes", help="Comma-separated batch sizes.")
    ] = "1,8,32",
    width: Annotated[
        int | None,
        typer.Option("--width", min=1, help="Input width; default: the model's (100)."),
    ] = None,
    engines: Annotated[
        str,
        typer.Option("--engines", help="Comma-separated, of: " + ", ".join(FIELD) + ". torch "
                     "runs --ckpt, the int8 and fp16 engines --int8-model and --fp16-model; "
                     "engines that cannot run here are skipped with a note."),
    ] = ",".join(DEFAULT_FIELD),
    engine: EngineOption = "onnxruntime",
    precision: PrecisionOption = "fp32",
    ceilings: Annotated[
        bool,
        typer.Option("--ceilings/--no-ceilings", help="Measure the machine's fp32 and bf16 "
                     "GEMM rates (with PyTorch) and each engine's share of them."),
    ] = True,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Intra-op threads for every engine; default: "
                     "one per CPU."),
    ] = None,
    device: Annotated[
        Device, typer.Option("--device", help="ONNX Runtime device for the ort engines.")
    ] = "cpu",
    ckpt: Annotated[
        Path | None,
        typer.Option("--ckpt", help="Checkpoint for the torch engine; default: MODEL with .pth."),
    ] = None,
    int8_model: Annotated[
        Path | None,
        typer.Option("--int8-model", help="Model for the int8 engines; default: MODEL's "
                     "NAME.int8.onnx."),
    ] = None,
    fp16_model: Annotated[
        Path | None,
        typer.Option("--fp16-model", help="Model for ort-fp16; default: MODEL's NAME.fp16.onnx."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option("--images", help="Word images (a folder): the engines' inputs, and the "
                     "pipeline and start-up timings; without it the engines get random noise."),
    ] = None,
    pipeline_images: Annotated[
        int, typer.Option("--pipeline-images", min=1, help="Most images for the pipeline.")
    ] = 1000,
    seconds: Annotated[
        float,
        typer.Option("--seconds", min=0.01, help="Timed seconds per engine and batch size."),
    ] = 1.0,
    warmup: Annotated[
        int, typer.Option("--warmup", min=0, help="Untimed runs per engine and batch size.")
    ] = 3,
    startup_runs: Annotated[
        int,
        typer.Option("--startup-runs", min=0, help="One-image predict processes to time "
                     "(needs --images; 0 skips)."),
    ] = 3,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="text tables or one JSON object.")
    ] = "text",
) -> None:
    """Time every engine against the machine's ceilings, then predict's pipeline."""
    import dataclasses
    import json

    from crnn_onnx.perf.benchmark import run_benchmark
    from crnn_onnx.perf.report import format_text

    sizes = _int_list(batch_sizes, "--batch-sizes")
    names = [name.strip() for name in engines.split(",") if name.strip()]
    unknown = [name for name in names if name not in FIELD]
    if not names or unknown:
        raise typer.BadParameter(
            f"unknown engine(s) {', '.join(unknown) or '(none given)'}; known: "
            f"{', '.join(FIELD)}", param_hint="--engines",
        )
    with errors_to_exit():
        model_path = model_or_default(model)
        report = run_benchmark(
            model_path,
            engines=names, batch_sizes=sizes, width=width, threads=threads,
            device=device, ckpt=ckpt, int8_model=int8_model, fp16_model=fp16_model,
            images=images, pipeline_images=pipeline_images, seconds=seconds, warmup=warmup,
            startup=(_startup_timer(model_path, startup_runs, engine, precision)
                     if startup_runs else None),
            pipeline_engine=engine, pipeline_precision=precision, ceilings=ceilings,
        )
    report = dataclasses.replace(report, notes=tuple(map(in_cli_words, report.notes)),
                                 inputs=in_cli_words(report.inputs))
    if fmt == "json":
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(format_text(report))
