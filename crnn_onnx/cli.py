"""The ``crnn-onnx`` command line: thin Typer commands over the library.

Each command parses its options, calls the library, and prints results on stdout; logs,
warnings and progress go to stderr. A :class:`~crnn_onnx.errors.CRNNError` becomes one line
on stderr and exit code 1; usage errors exit 2 (Typer's ``BadParameter``).

Heavy imports (torch, onnxruntime) happen inside the commands that need them, so
``crnn-onnx --help`` and ``predict`` stay fast and ``predict`` never imports torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

import typer

from crnn_onnx import __version__
from crnn_onnx.errors import CRNNError

__all__ = ["app", "main"]

app = typer.Typer(
    name="crnn-onnx",
    help="Export a CRNN text recogniser to ONNX and run it fast with ONNX Runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


@contextmanager
def _errors_to_exit() -> Iterator[None]:
    """Turn the toolkit's own errors into one stderr line and exit code 1."""
    try:
        yield
    except CRNNError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"crnn-onnx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log debug details to stderr.")
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = None,
) -> None:
    """Export a CRNN text recogniser to ONNX and run it fast with ONNX Runtime."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s: %(message)s",
    )


def main() -> None:
    """Console-script entry point."""
    app()


# Commands are defined below, one function each, grouped by the issue that owns them.
