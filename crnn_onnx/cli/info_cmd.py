"""``info``: what a model file holds, before deploying it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crnn_onnx.cli._app import app, errors_to_exit
from crnn_onnx.cli._shared import ReportFormat


@app.command()
def info(
    model: Annotated[
        Path, typer.Argument(help="ONNX model file.", metavar="MODEL", show_default=False)
    ],
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="text or json (on stdout).")
    ] = "text",
) -> None:
    """Describe a model: tensors, opset, precision, layout, charset and every metadata key."""
    import json

    from crnn_onnx.inspection.model_info import read_model_info

    with errors_to_exit():
        described = read_model_info(model)
    if fmt == "json":
        typer.echo(json.dumps(described.as_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(described.format_text())
