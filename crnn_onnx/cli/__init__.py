"""The ``crnn-onnx`` command line: thin Typer commands over the library.

Each command parses its options, calls the library, and prints results on stdout; logs,
warnings and progress go to stderr. A :class:`~crnn_onnx.errors.CRNNError` becomes one line
on stderr and exit code 1; usage errors exit 2 (Typer's ``BadParameter``).

Heavy imports (torch, onnxruntime) happen inside the commands that need them, so
``crnn-onnx --help`` and ``predict`` stay fast and ``predict`` never imports torch.

One module per group of commands, each registering on the one :data:`app`: ``export_cmd``
(export, quantize), ``predict_cmd``, ``eval_cmd`` (eval, synth), ``finetune_cmd``,
``info_cmd``, ``scale_cmd`` (bulk, triton-repo), ``benchmark_cmd``; ``_app`` holds the app and
its error boundary, ``_shared`` the options several commands repeat.
"""

from __future__ import annotations

import signal

from crnn_onnx.cli._app import app, exit_on_sigterm

# Importing a command module registers its commands; this order is the order of --help.
# isort: off
from crnn_onnx.cli import export_cmd, predict_cmd, eval_cmd  # noqa: F401
from crnn_onnx.cli import finetune_cmd, info_cmd, scale_cmd, benchmark_cmd  # noqa: F401
# isort: on

__all__ = ["main"]


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    app()
