"""The ``crnn-onnx`` command line: thin Typer commands over the library.

Each command parses its options, calls the library, and prints results on stdout; logs,
warnings and progress go to stderr. A :class:`~crnn_onnx.errors.CRNNError` becomes one line
on stderr and exit code 1; usage errors exit 2 (Typer's ``BadParameter``).

Heavy imports (torch, onnxruntime) happen inside the commands that need them, so
``crnn-onnx --help`` and ``predict`` stay fast and ``predict`` never imports torch.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
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


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a CI job's timeout, ``kill``) unwinds the stack like Ctrl-C does, so that
    ``--output``'s temporary file is removed and a previous results file stays as it was;
    the exit code is the shell's usual 128 + 15. A second SIGTERM kills at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    app()


# Commands are defined below, one function each, grouped by the issue that owns them.


# --- export -------------------------------------------------------------------------------


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
    with _errors_to_exit():
        try:
            import torch  # noqa: F401  (checked first: the export extra's main dependency)

            from crnn_onnx.exporter import export_checkpoint
        except ModuleNotFoundError as err:
            if err.name not in ("torch", "onnx"):
                raise
            raise CRNNError(f"export needs {err.name}: pip install 'crnn-onnx[export]'") from None
        from crnn_onnx.config import load_config
        from crnn_onnx.fp16 import FP16_ATOL

        cfg = load_config(config)
        atol = atol if atol is not None else FP16_ATOL if fp16 else 1e-4
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
        f"{report.max_diff:.2e} over {n} input shape{'s' if n != 1 else ''} (atol {atol:g})"
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


# --- predict ------------------------------------------------------------------------------


class _Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class _WidthPolicy(str, Enum):
    fixed = "fixed"
    bucket = "bucket"


# Options that several commands share, declared once.
_ModelOption = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="ONNX model; default: the shipped weights/crnn.onnx."),
]
_ConfigOverrideOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML config overriding the model's metadata (needed for "
                 "models exported without it)."),
]
_BatchSizeOption = Annotated[
    int, typer.Option("--batch-size", min=1, help="Images per model run.")
]
_DeviceOption = Annotated[
    _Device,
    typer.Option("--device", help="auto: CUDA if this onnxruntime has it, else CPU; cpu; cuda "
                 "(an error if CUDA cannot run)."),
]
_ThreadsOption = Annotated[
    int | None,
    typer.Option("--threads", min=1,
                 help="ONNX Runtime intra-op threads; default: one per physical core."),
]
_WidthPolicyOption = Annotated[
    _WidthPolicy,
    typer.Option("--width-policy", help="fixed: every image at the model width (as upstream); "
                 "bucket: width from each image's aspect ratio (dynamic-width models)."),
]


class _Format(str, Enum):
    text = "text"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


#: Show a progress bar (on a terminal, without --quiet) from this many inputs on.
_PROGRESS_MIN_INPUTS = 64


@contextmanager
def _predict_logging(quiet: bool) -> Iterator[None]:
    """--quiet keeps only warnings; OpenCV's own decoder chatter is hidden unless -v (the
    records already say why an image failed)."""
    import cv2

    package_logger = logging.getLogger("crnn_onnx")
    old_level = package_logger.level
    old_cv2 = cv2.utils.logging.getLogLevel()
    if quiet:
        package_logger.setLevel(logging.WARNING)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        package_logger.setLevel(old_level)
        cv2.utils.logging.setLogLevel(old_cv2)


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
        typer.Argument(help="Image files, directories (searched recursively) or glob patterns.",
                       metavar="PATHS",
                       show_default=False),
    ],
    model: _ModelOption = None,
    config: _ConfigOverrideOption = None,
    device: _DeviceOption = _Device.auto,
    batch_size: _BatchSizeOption = 32,
    threads: _ThreadsOption = None,
    width_policy: _WidthPolicyOption = _WidthPolicy.fixed,
    fmt: Annotated[
        _Format,
        typer.Option("--format", "-f", help="text: path, text, confidence per line; json: one "
                     "array; jsonl: one object per line; csv: with a header."),
    ] = _Format.text,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the results to FILE (atomically) instead of "
                     "stdout."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar, info lines or summary.")
    ] = False,
) -> None:
    """Recognise the text in word images; results on stdout, exit 1 if any input failed."""
    import sys

    from crnn_onnx.config import load_config
    from crnn_onnx.images import expand_paths
    from crnn_onnx.predictor import Predictor
    from crnn_onnx.records import RecordWriter, atomic_output
    from crnn_onnx.weights import default_model_path

    total = failed = 0
    with _errors_to_exit(), _predict_logging(quiet):
        sources = expand_paths(paths)
        cfg = load_config(config) if config is not None else None
        model_path = model if model is not None else default_model_path()
        with atomic_output(output) as stream:
            predictor = Predictor(
                model_path, device.value, batch_size=batch_size, threads=threads,
                width_policy=width_policy.value, config=cfg,
            )
            writer = RecordWriter(stream, fmt.value)
            show_bar = not quiet and len(sources) >= _PROGRESS_MIN_INPUTS and sys.stderr.isatty()
            with _progress(len(sources), show_bar) as advance:
                for prediction in predictor.predict_paths(sources):
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


# --- evaluation and synthetic data --------------------------------------------------------


class _ReportFormat(str, Enum):
    text = "text"
    json = "json"


class _Split(str, Enum):
    train = "train"
    heldout = "heldout"


@app.command("eval")
def evaluate(
    labels: Annotated[
        Path,
        typer.Argument(help="TSV of 'relative/path<TAB>text' lines, paths relative to its folder.",
                       metavar="LABELS", show_default=False),
    ],
    model: _ModelOption = None,
    config: _ConfigOverrideOption = None,
    device: _DeviceOption = _Device.auto,
    batch_size: _BatchSizeOption = 32,
    threads: _ThreadsOption = None,
    width_policy: _WidthPolicyOption = _WidthPolicy.fixed,
    min_accuracy: Annotated[
        float | None,
        typer.Option("--min-accuracy", min=0.0, max=1.0,
                     help="Exit 1 when word accuracy (0..1) is below this: a CI gate."),
    ] = None,
    fmt: Annotated[
        _ReportFormat, typer.Option("--format", "-f", help="text or json (on stdout).")
    ] = _ReportFormat.text,
) -> None:
    """Measure word accuracy, CER, accuracy by length and confusions on a labelled set."""
    import json

    from crnn_onnx.config import load_config
    from crnn_onnx.evaluate import read_labels, score
    from crnn_onnx.predictor import Predictor
    from crnn_onnx.weights import default_model_path

    with _errors_to_exit():
        items = read_labels(labels)
        cfg = load_config(config) if config is not None else None
        predictor = Predictor(
            model if model is not None else default_model_path(), device.value,
            batch_size=batch_size, threads=threads, width_policy=width_policy.value, config=cfg,
        )
        predictions = predictor.predict([item.path for item in items])
        report = score(
            [item.text for item in items], [p.text for p in predictions],
            predictor.config.charset, [str(item.path) for item in items],
        )
    for item, prediction in zip(items, predictions, strict=True):
        if prediction.error:
            typer.echo(f"warning: {item.path}: {prediction.error}", err=True)
    if fmt is _ReportFormat.json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(f"images         {report.total}")
        typer.echo(f"word accuracy  {report.word_accuracy:.2%} ({report.correct}/{report.total})")
        typer.echo(f"CER            {report.cer:.2%}")
        typer.echo(f"unreadable     {report.failed}")
        by_length = ", ".join(f"{k}: {a:.0%} ({n})" for k, (n, a) in report.by_length.items())
        typer.echo(f"by length      {by_length}")
        confusions = ", ".join(f"{t or '∅'}→{p or '∅'} ×{c}" for t, p, c in report.confusions)
        typer.echo(f"confusions     {confusions or 'none'}")
    if min_accuracy is not None and report.word_accuracy < min_accuracy:
        typer.echo(
            f"error: word accuracy {report.word_accuracy:.2%} is below --min-accuracy "
            f"{min_accuracy:.2%}", err=True,
        )
        raise typer.Exit(1)


@app.command()
def synth(
    out_dir: Annotated[
        Path, typer.Argument(help="Folder to write PNG crops and labels.tsv into.",
                             metavar="OUT_DIR", show_default=False)
    ],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Crops to render.")] = 100,
    split: Annotated[
        _Split,
        typer.Option("--split", help="heldout: font families and words never used in "
                     "training (for evaluation); train: the training distribution."),
    ] = _Split.heldout,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same crops.")] = 0,
) -> None:
    """Render synthetic word crops with installed fonts, labelled for `crnn-onnx eval`."""
    with _errors_to_exit():
        try:
            import PIL  # noqa: F401

            from crnn_onnx.synth import write_dataset
        except ModuleNotFoundError as err:
            if err.name != "PIL":
                raise
            raise CRNNError("synth needs Pillow: pip install 'crnn-onnx[synth]'") from None
        labels = write_dataset(out_dir, count, split=split.value, seed=seed)
    typer.echo(f"wrote {count} crops and {labels}")


# --- scale-out: Ray and Triton ------------------------------------------------------------


class _BulkFormat(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"


class _InstanceKind(str, Enum):
    gpu = "gpu"
    cpu = "cpu"


@contextmanager
def _ray_logging(quiet: bool) -> Iterator[None]:
    """--quiet also hides Ray Data's info lines (execution plan, timings)."""
    ray_data_logger = logging.getLogger("ray.data")
    old_level = ray_data_logger.level
    if quiet:
        ray_data_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        ray_data_logger.setLevel(old_level)


@app.command()
def bulk(
    paths: Annotated[
        list[str],
        typer.Argument(help="Image files, directories, glob patterns, or URIs pyarrow opens "
                       "(s3://, gs://, hdfs://, file://).", metavar="PATHS",
                       show_default=False),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Results file, written atomically when complete.",
                     show_default=False),
    ],
    fmt: Annotated[
        _BulkFormat,
        typer.Option("--format", "-f", help="jsonl: what `predict --format jsonl` writes; "
                     "parquet: the same records as columns."),
    ] = _BulkFormat.jsonl,
    model: _ModelOption = None,
    config: _ConfigOverrideOption = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", min=1, help="Ray actors, one ONNX Runtime session each; "
                     "default: as many as the cluster's CPUs (or GPUs) hold."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="An existing Ray cluster (ray://host:10001, host:6379, "
                     "auto); default: start a local one."),
    ] = None,
    batch_size: _BatchSizeOption = 32,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="ONNX Runtime threads per worker (and the "
                          "CPUs Ray reserves for it).")
    ] = 1,
    device: _DeviceOption = _Device.auto,
    gpus_per_worker: Annotated[
        float,
        typer.Option("--gpus-per-worker", min=0.0, help="GPUs Ray reserves per worker "
                     "(0.5: two share one); --device cuda implies 1 when unset."),
    ] = 0.0,
    width_policy: _WidthPolicyOption = _WidthPolicy.fixed,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars, info lines or summary.")
    ] = False,
) -> None:
    """Recognise many images on Ray Data; one record per input in OUTPUT, in input order.

    Runs the same pipeline as predict in a pool of Ray actors, on a local Ray instance or
    on the cluster at --address (image paths must then be readable on every node, or be
    URIs). Exit 1 if any input failed, as predict.
    """
    import sys

    from crnn_onnx.config import load_config
    from crnn_onnx.weights import default_model_path

    if device is _Device.cpu and gpus_per_worker > 0:
        raise typer.BadParameter("--device cpu does not use the GPUs --gpus-per-worker "
                                 "reserves", param_hint="'--gpus-per-worker'")
    gpus = gpus_per_worker or (1.0 if device is _Device.cuda else 0.0)
    with _errors_to_exit(), _predict_logging(quiet), _ray_logging(quiet):
        from crnn_onnx.ray_bulk import bulk_predict, ray_session

        cfg = load_config(config) if config is not None else None
        model_path = model if model is not None else default_model_path()
        with ray_session(address):
            report = bulk_predict(
                paths, output, model_path=model_path, fmt=fmt.value, config=cfg,
                device=device.value, batch_size=batch_size, threads=threads,
                width_policy=width_policy.value, workers=workers, gpus_per_worker=gpus,
                progress=not quiet and sys.stderr.isatty(),
            )
    if not quiet:
        typer.echo(
            f"{report.total} input{'s' if report.total != 1 else ''}: "
            f"{report.total - report.failed} recognised, {report.failed} failed; "
            f"{report.images_per_second:.1f} images/s on {report.workers} worker"
            f"{'s' if report.workers != 1 else ''}; wrote {report.output}",
            err=True,
        )
    if report.failed:
        raise typer.Exit(1)


@app.command("triton-repo")
def triton_repo(
    repository: Annotated[
        Path,
        typer.Argument(help="Triton model repository folder (created if missing).",
                       metavar="DIR", show_default=False),
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="ONNX model (a crnn-onnx export); default: the "
                     "shipped weights/crnn.onnx."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="The model's name in Triton.")] = "crnn",
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=0, help="Largest batch Triton's dynamic "
                          "batcher forms (0: no batching).")
    ] = 64,
    instance_kind: Annotated[
        _InstanceKind,
        typer.Option("--instance-kind", help="Run the model instances on the GPU or the CPU."),
    ] = _InstanceKind.gpu,
    instances: Annotated[
        int, typer.Option("--instances", min=1, help="Model instances (per GPU, or on the CPU).")
    ] = 1,
    config: _ConfigOverrideOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing DIR/NAME.")
    ] = False,
) -> None:
    """Write DIR/NAME for Triton Inference Server's ONNX Runtime backend.

    DIR/NAME/1/model.onnx is the model with a batch-first output `logits` (N, T, C); the
    config.pbtxt carries its dims, dynamic batching, instance groups and the charset.
    """
    from crnn_onnx.config import load_config
    from crnn_onnx.weights import default_model_path

    with _errors_to_exit():
        from crnn_onnx.triton import write_model_repository

        cfg = load_config(config) if config is not None else None
        model_path = model if model is not None else default_model_path()
        repo = write_model_repository(
            repository, model_path, name=name, max_batch_size=max_batch_size,
            instance_kind=instance_kind.value, instances=instances, config=cfg, force=force,
        )
    typer.echo(f"wrote     {repo.model_dir}/ (config.pbtxt, labels.txt, 1/model.onnx)")
    typer.echo(f"input     {repo.input_name} FP32 {list(repo.input_dims)}")
    typer.echo(f"output    {repo.output_name} FP32 {list(repo.output_dims)} "
               "(batch-first; transpose to (T, N, C) to decode)")
    typer.echo(f"serve     tritonserver --model-repository {repository.resolve()}")


# --- performance --------------------------------------------------------------------------
# (`benchmark --format` reuses _ReportFormat from `eval`.)


class _Calibration(str, Enum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


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
        typer.Option("--engines", help="Comma-separated: torch (eager, on --ckpt), ort (the "
                     "model), ort-int8 (--int8-model), ort-fp16 (--fp16-model)."),
    ] = "torch,ort,ort-int8",
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Intra-op threads for every engine; default: "
                     "one per CPU."),
    ] = None,
    device: Annotated[
        _Device, typer.Option("--device", help="ONNX Runtime device for the ort engines.")
    ] = _Device.cpu,
    ckpt: Annotated[
        Path | None,
        typer.Option("--ckpt", help="Checkpoint for the torch engine; default: MODEL with .pth."),
    ] = None,
    int8_model: Annotated[
        Path | None,
        typer.Option("--int8-model", help="Model for ort-int8; default: MODEL's NAME.int8.onnx."),
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
        _ReportFormat, typer.Option("--format", "-f", help="text tables or one JSON object.")
    ] = _ReportFormat.text,
) -> None:
    """Time torch eager, ONNX Runtime fp32/int8/fp16 and predict's pipeline on the same inputs."""
    import json

    from crnn_onnx.benchmark import ENGINES, format_text, run_benchmark
    from crnn_onnx.weights import default_model_path

    sizes = _int_list(batch_sizes, "--batch-sizes")
    names = [name.strip() for name in engines.split(",") if name.strip()]
    unknown = [name for name in names if name not in ENGINES]
    if not names or unknown:
        raise typer.BadParameter(
            f"unknown engine(s) {', '.join(unknown) or '(none given)'}; known: "
            f"{', '.join(ENGINES)}", param_hint="--engines",
        )
    with _errors_to_exit():
        report = run_benchmark(
            model if model is not None else default_model_path(),
            engines=names, batch_sizes=sizes, width=width, threads=threads,
            device=device.value, ckpt=ckpt, int8_model=int8_model, fp16_model=fp16_model,
            images=images, pipeline_images=pipeline_images, seconds=seconds, warmup=warmup,
            startup_runs=startup_runs,
        )
    if fmt is _ReportFormat.json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(format_text(report))


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
        _Calibration, typer.Option("--method", help="How activation ranges are calibrated.")
    ] = _Calibration.minmax,
    seed: Annotated[int, typer.Option("--seed", help="Seed for sampling or rendering.")] = 0,
    config: _ConfigOverrideOption = None,
) -> None:
    """Quantize a model to int8 for the CPU (static, calibrated on word images)."""
    from crnn_onnx.config import load_config

    with _errors_to_exit():
        from crnn_onnx.quantize import quantize_model

        cfg = load_config(config) if config is not None else None
        report = quantize_model(
            model, output, calibration=calibration, count=count, per_channel=per_channel,
            lstm=lstm, method=method.value, seed=seed, config=cfg,
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
