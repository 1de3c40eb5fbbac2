"""``bulk`` and ``triton-repo``: scale out on Ray Data, or serve with Triton."""

from __future__ import annotations

import logging
from collections.abc import Iterator
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
    WidthPolicyOption,
    config_override,
    model_or_default,
    predict_logging,
    with_stdin,
)
from crnn_onnx.scale.ray_bulk import BulkFormat
from crnn_onnx.scale.triton_config import InstanceKind


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
                       "(s3://, gs://, hdfs://, file://); - reads newline-separated paths "
                       "from standard input.", metavar="PATHS",
                       show_default=False),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Results file, written atomically when complete.",
                     show_default=False),
    ],
    fmt: Annotated[
        BulkFormat,
        typer.Option("--format", "-f", help="jsonl: what `predict --format jsonl` writes; "
                     "parquet: the same records as columns."),
    ] = "jsonl",
    model: ModelOption = None,
    config: ConfigOverrideOption = None,
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
    batch_size: BatchSizeOption = 32,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="ONNX Runtime threads per worker (and the "
                          "CPUs Ray reserves for it).")
    ] = 1,
    engine: EngineOption = "onnxruntime",
    precision: PrecisionOption = "fp32",
    device: DeviceOption = "auto",
    gpus_per_worker: Annotated[
        float,
        typer.Option("--gpus-per-worker", min=0.0, help="GPUs Ray reserves per worker "
                     "(0.5: two share one); --device cuda implies 1 when unset."),
    ] = 0.0,
    width_policy: WidthPolicyOption = "auto",
    decoder: DecoderOption = None,
    beam_width: BeamWidthOption = 10,
    allowlist: AllowlistOption = None,
    blocklist: BlocklistOption = None,
    lexicon: LexiconOption = None,
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

    if device == "cpu" and gpus_per_worker > 0:
        raise typer.BadParameter("--device cpu does not use the GPUs --gpus-per-worker "
                                 "reserves", param_hint="'--gpus-per-worker'")
    with errors_to_exit(), predict_logging(quiet), _ray_logging(quiet):
        from crnn_onnx.inference.options import PredictorOptions
        from crnn_onnx.scale.ray_bulk import bulk_predict
        from crnn_onnx.scale.ray_cluster import ray_session

        cfg = config_override(config)
        model_path = model_or_default(model)
        options = PredictorOptions(
            engine=engine, precision=precision, device=device, batch_size=batch_size,
            threads=threads, width_policy=width_policy,
            decoder=decoder, beam_width=beam_width, allowlist=allowlist, blocklist=blocklist,
            lexicon=lexicon)
        inputs = list(with_stdin(paths))
        with ray_session(address):
            report = bulk_predict(
                inputs, output, model_path=model_path, fmt=fmt, options=options, config=cfg,
                workers=workers, gpus_per_worker=gpus_per_worker or None,
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
        InstanceKind,
        typer.Option("--instance-kind", help="Run the model instances on the GPU or the CPU."),
    ] = "gpu",
    instances: Annotated[
        int, typer.Option("--instances", min=1, help="Model instances (per GPU, or on the CPU).")
    ] = 1,
    config: ConfigOverrideOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing DIR/NAME.")
    ] = False,
) -> None:
    """Write DIR/NAME for Triton Inference Server's ONNX Runtime backend.

    DIR/NAME/1/model.onnx is the model with a batch-first output `logits` (N, T, C); the
    config.pbtxt carries its dims, dynamic batching, instance groups and the charset.
    """

    with errors_to_exit():
        from crnn_onnx.scale.triton import write_model_repository

        cfg = config_override(config)
        model_path = model_or_default(model)
        repo = write_model_repository(
            repository, model_path, name=name, max_batch_size=max_batch_size,
            instance_kind=instance_kind, instances=instances, config=cfg, force=force,
        )
    typer.echo(f"wrote     {repo.model_dir}/ (config.pbtxt, labels.txt, 1/model.onnx)")
    typer.echo(f"input     {repo.input_name} FP32 {list(repo.input_dims)}")
    typer.echo(f"output    {repo.output_name} FP32 {list(repo.output_dims)} "
               "(batch-first; transpose to (T, N, C) to decode)")
    typer.echo(f"serve     tritonserver --model-repository {repository.resolve()}")
