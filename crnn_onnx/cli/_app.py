"""The Typer application, its root options and the one error boundary every command uses."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from crnn_onnx import __version__
from crnn_onnx.errors import CRNNError

__all__ = ["app", "errors_to_exit", "exit_on_sigterm"]

app = typer.Typer(
    name="crnn-onnx",
    help="Export a CRNN text recogniser to ONNX and run it fast with ONNX Runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@contextmanager
def errors_to_exit() -> Iterator[None]:
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


def exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a CI job's timeout, ``kill``) unwinds the stack like Ctrl-C does, so that
    ``--output``'s temporary file is removed and a previous results file stays as it was;
    the exit code is the shell's usual 128 + 15. A second SIGTERM kills at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)
