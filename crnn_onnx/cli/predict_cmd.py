"""``predict``: recognise word images, one record per input."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from crnn_onnx.cli._app import app, errors_to_exit
from crnn_onnx.cli._shared import (
    AllowlistOption,
    BatchSizeOption,
    BeamWidthOption,
    BlocklistOption,
    ConfigOverrideOption,
    DecoderOption,
    DeviceOption,
    EngineOption,
    LexiconOption,
    ModelOption,
    PrecisionOption,
    ThreadsOption,
    WidthPolicyOption,
    config_override,
    model_or_default,
    predict_logging,
    with_stdin,
)
from crnn_onnx.records import OutputFormat

#: Show a progress bar (on a terminal, without --quiet) from this many inputs on.
_PROGRESS_MIN_INPUTS = 64


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    """A callable advancing a rich progress bar on stderr (a no-op when disabled)."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("recognising", total=total)
        yield lambda: bar.advance(task)


@app.command()
def predict(
    paths: Annotated[
        list[str],
        typer.Argument(help="Image files, directories (searched recursively) or glob patterns; "
                       "- reads newline-separated paths from standard input.",
                       metavar="PATHS",
                       show_default=False),
    ],
    model: ModelOption = None,
    config: ConfigOverrideOption = None,
    engine: EngineOption = "onnxruntime",
    precision: PrecisionOption = "fp32",
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    threads: ThreadsOption = None,
    width_policy: WidthPolicyOption = "auto",
    decoder: DecoderOption = None,
    beam_width: BeamWidthOption = 10,
    allowlist: AllowlistOption = None,
    blocklist: BlocklistOption = None,
    lexicon: LexiconOption = None,
    fmt: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="text: path, text, confidence per line; json: one "
                     "array; jsonl: one object per line; csv: with a header."),
    ] = "text",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the results to FILE (atomically) instead of "
                     "stdout."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar, info lines or summary.")
    ] = False,
    char_confidence: Annotated[
        bool,
        typer.Option("--char-confidence", help="Add char_confidences, one probability per "
                     "character read, to json/jsonl records and a column to csv."),
    ] = False,
) -> None:
    """Recognise the text in word images; results on stdout, exit 1 if any input failed."""
    import sys

    from crnn_onnx.atomic import atomic_output
    from crnn_onnx.inference.images import ImageSource, expand_paths
    from crnn_onnx.inference.options import PredictorOptions
    from crnn_onnx.inference.predictor import Predictor
    from crnn_onnx.records import RecordWriter

    total = failed = 0
    with errors_to_exit(), predict_logging(quiet):
        sources: Iterable[ImageSource] = expand_paths(with_stdin(paths))
        # Paths from standard input stream in as they come: no total, so no progress bar.
        if "-" not in paths:
            sources = list(sources)
        count = len(sources) if isinstance(sources, list) else 0
        cfg = config_override(config)
        model_path = model_or_default(model)
        with atomic_output(output) as stream:
            options = PredictorOptions(
                engine=engine, precision=precision, device=device, batch_size=batch_size,
                threads=threads, width_policy=width_policy, decoder=decoder,
                beam_width=beam_width, allowlist=allowlist, blocklist=blocklist,
                lexicon=lexicon)
            predictor = Predictor(model_path, options, config=cfg)
            writer = RecordWriter(stream, fmt, char_confidences=char_confidence)
            show_bar = not quiet and count >= _PROGRESS_MIN_INPUTS and sys.stderr.isatty()
            with _progress(count, show_bar) as advance:
                for prediction in predictor.predict_sources(sources):
                    writer.write(prediction)
                    total += 1
                    failed += not prediction.ok
                    advance()
            writer.close()
    if not quiet:
        typer.echo(f"{total} input{'s' if total != 1 else ''}: {total - failed} recognised, "
                   f"{failed} failed", err=True)
    if failed:
        raise typer.Exit(1)
