"""The Typer application, its root options and the one error boundary every command uses."""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from crnn_onnx import __version__
from crnn_onnx.errors import CRNNError, UsageError

__all__ = ["app", "errors_to_exit", "exit_on_sigterm", "in_cli_words"]

app = typer.Typer(
    name="crnn-onnx",
    help="Export a CRNN text recogniser to ONNX and run it fast with ONNX Runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


#: How library messages name parameters (Python keyword syntax), and what the command line
#: calls them. Matched as whole words, longest first.
_CLI_WORDS: dict[str, str] = {
    "device='cuda'": "--device cuda",
    "device='cpu'": "--device cpu",
    "engine='openvino'": "--engine openvino",
    "precision='bf16'": "--precision bf16",
    "precision='fp32'": "--precision fp32",
    "decoder='beam'": "--decoder beam",
    "lexicon=": "--lexicon",
    "allowlist holds": "--allowlist holds",
    "blocklist holds": "--blocklist holds",
    "allowlist is empty; give None to allow every character":
        "--allowlist is empty; leave it out to allow every character",
    "width_policy='bucket'": "--width-policy bucket",
    "width_policy='fixed'": "--width-policy fixed",
    "verify=False": "--no-verify",
    "dynamic=False": "--static",
    "max_batch_size=0": "--max-batch-size 0",
    "force=True": "--force",
    "another name=": "--name",
    "gpus_per_worker=": "--gpus-per-worker",
    "calibration=": "--calibration",
    "int8_model=": "--int8-model",
    "fp16_model=": "--fp16-model",
    "images=DIR": "--images DIR",
    "workers=": "--workers",
    "threads=": "--threads",
    "config=": "--config",
    "out=": "--out ",
    "steps=": "--steps",
    "minutes=": "--minutes",
    "lr=": "--lr ",
    "outside_charset='drop' or 'skip'": "--outside-charset drop or skip",
    "precision='fp32' or 'auto'": "--precision fp32 or auto",
    "images=": "--images",
    "model=": "--model",
    "ckpt=": "--ckpt",
    "`export_checkpoint(ckpt)`": "`crnn-onnx export --ckpt model.pth`",
    "`export_checkpoint(CKPT, fp16=True)`": "`crnn-onnx export --fp16 --ckpt CKPT`",
}
_CLI_PATTERN = re.compile(
    r"(?<![\w.])(" + "|".join(map(re.escape, sorted(_CLI_WORDS, key=len, reverse=True))) + ")"
    r"|`quantize_model\((?P<model>[^`]*)\)`"
)


def in_cli_words(message: str) -> str:
    """A library message with its parameter names replaced by this CLI's flags."""
    def replace(match: re.Match[str]) -> str:
        if match.group("model") is not None:
            return f"`crnn-onnx quantize {match.group('model')}`"
        return _CLI_WORDS[match.group(1)]

    return _CLI_PATTERN.sub(replace, message)


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn the toolkit's own errors into one stderr line, in the CLI's words, and exit 1
    (2 for a usage error, as for a bad option)."""
    try:
        yield
    except CRNNError as err:
        typer.echo(f"error: {in_cli_words(str(err))}", err=True)
        raise typer.Exit(2 if isinstance(err, UsageError) else 1) from None


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
