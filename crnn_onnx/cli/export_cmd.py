"""``export`` and ``quantize``: write a model file from a checkpoint or from another model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crnn_onnx.cli._app import app, errors_to_exit
from crnn_onnx.cli._shared import ConfigOverrideOption, config_override
from crnn_onnx.perf.quantize import CalibrationMethod


@app.command()
def export(
    ckpt: Annotated[
        Path,
        typer.Option("--ckpt", help="PyTorch checkpoint (.pth) to export.", show_default=False),
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML config (charset, input size); default: built-in."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="ONNX file to write; default: CKPT with .onnx."),
    ] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (11..20).")] = 17,
    static: Annotated[
        bool,
        typer.Option("--static", help="Fix the input at (1, 3, 32, config width) instead of "
                     "symbolic batch and width."),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option("--verify/--no-verify",
                     help="Compare ONNX Runtime with PyTorch before writing the file."),
    ] = True,
    atol: Annotated[
        float | None,
        typer.Option("--atol", help="Largest absolute logit difference accepted; default 1e-4, "
                     "or 0.1 with --fp16.", show_default=False),
    ] = None,
    fp16: Annotated[
        bool,
        typer.Option("--fp16", help="float16 weights and activations for GPUs; input and output "
                     "stay float32."),
    ] = False,
) -> None:
    """Export a checkpoint to a self-describing ONNX model, verified against PyTorch."""
    with errors_to_exit():
        from crnn_onnx.export import require_export_dependencies

        require_export_dependencies()
        from crnn_onnx.config import load_config
        from crnn_onnx.export.exporter import export_checkpoint

        cfg = load_config(config)
        report = export_checkpoint(
            ckpt, cfg, output, opset=opset, dynamic=not static, verify=verify, atol=atol,
            fp16=fp16,
        )
    shapes = (
        "dynamic (batch, 3, 32, width)" if report.dynamic
        else f"static (1, 3, {cfg.height}, {cfg.width})"
    )
    n = len(report.cases)
    diff = (
        f"{report.max_diff:.2e} over {n} input shape{'s' if n != 1 else ''} "
        f"(atol {report.atol:g})"
        if report.max_diff is not None else "not verified (--no-verify)"
    )
    typer.echo(f"exported  {report.output}")
    typer.echo(f"opset     {report.opset}")
    typer.echo(f"size      {report.size_bytes / 1e6:.1f} MB")
    typer.echo(f"shapes    {shapes}")
    if report.fp16:
        typer.echo("precision fp16 (input and output float32)")
    typer.echo(f"max diff  {diff}")
    typer.echo(f"time      {report.seconds:.1f} s")


@app.command()
def quantize(
    model: Annotated[
        Path, typer.Argument(help="fp32 ONNX model to quantize.", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="int8 model to write; default: NAME.int8.onnx "
                     "beside MODEL."),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="Folder of word images to calibrate on; default: "
                     "synthetic crops of the train split (crnn_onnx.synth)."),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", min=2, help="Most calibration images (1 in 5 is kept "
                          "out to check the result).")
    ] = 320,
    per_channel: Annotated[
        bool,
        typer.Option("--per-channel/--per-tensor", help="int8 weight scales per output "
                     "channel or per tensor."),
    ] = True,
    lstm: Annotated[
        bool,
        typer.Option("--lstm/--no-lstm", help="Also quantize the LSTM weights (dynamic int8); "
                     "--no-lstm keeps the LSTM float32."),
    ] = True,
    method: Annotated[
        CalibrationMethod,
        typer.Option("--method", help="How activation ranges are calibrated."),
    ] = "minmax",
    seed: Annotated[int, typer.Option("--seed", help="Seed for sampling or rendering.")] = 0,
    config: ConfigOverrideOption = None,
) -> None:
    """Quantize a model to int8 for the CPU (static, calibrated on word images)."""
    with errors_to_exit():
        from crnn_onnx.perf.quantize import quantize_model

        cfg = config_override(config)
        report = quantize_model(
            model, output, calibration=calibration, count=count, per_channel=per_channel,
            lstm=lstm, method=method, seed=seed, config=cfg,
        )
    scales = "per channel" if report.per_channel else "per tensor"
    typer.echo(f"quantized  {report.output}")
    typer.echo(f"weights    int8 ({scales}); activations uint8; LSTM "
               f"{'int8 (dynamic)' if report.lstm else 'float32'}")
    typer.echo(f"calibrated on {report.calibration_images} {report.calibration} "
               f"({report.method})")
    typer.echo(f"agreement  {100 * report.agreement:.1f}% of {report.check_images} images kept "
               "out of calibration read as the fp32 model reads them")
    typer.echo(f"size       {report.size_bytes / 1e6:.1f} MB (fp32 "
               f"{report.source_bytes / 1e6:.1f} MB)")
    typer.echo(f"time       {report.seconds:.1f} s")
