"""``finetune``: adapt a model to the user's own labelled crops, then optionally export it."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from crnn_onnx.cli._app import app, errors_to_exit
from crnn_onnx.config import WidthPolicy
from crnn_onnx.training.settings import FinetuneSettings, ReplayWidths

if TYPE_CHECKING:
    from crnn_onnx.training.outcome import TrainEvent

#: The library's defaults: the options show them and pass them on.
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(FinetuneSettings)
                             if f.default is not dataclasses.MISSING}


@contextmanager
def _stop_requests() -> Iterator[Callable[[], int | None]]:
    """The first Ctrl-C or SIGTERM asks the run to stop after its step (a second one acts
    at once); yields a callable giving the signal received, or ``None``."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM
                      else signal.default_int_handler)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def _reporter(quiet: bool) -> Iterator[Callable[[TrainEvent], None]]:
    """Notes and validations as lines on stderr, and a rich progress bar (step, loss,
    crops/s, time left, last validation) on a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from crnn_onnx.training.outcome import by_set_text

    console = Console(stderr=True)
    bar = Progress(TextColumn("step {task.fields[step]:>6}"), BarColumn(), TaskProgressColumn(),
                   TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                   disable=quiet or not console.is_terminal)
    task = bar.add_task("training", total=1.0, step=0, info="")
    last_val = ""

    def report(event: TrainEvent) -> None:
        nonlocal last_val
        if event.kind == "note" and not quiet:
            bar.console.print(event.message, markup=False, highlight=False)
        elif event.kind == "eval":
            last_val = f"val {event.val_accuracy:.2%}"
            if not quiet:
                by_sets = (f": {by_set_text(event.by_set)}"
                           if event.by_set and len(event.by_set) > 1 else "")
                bar.console.print(f"step {event.step:,}: validation {event.val_accuracy:.2%} "
                                  f"(best {event.best_accuracy:.2%})" + by_sets,
                                  highlight=False, markup=False)
        if event.kind in ("step", "eval"):
            info = (f"loss {event.loss:.3f}  {event.crops_per_s:.0f} crops/s  {last_val}"
                    if event.loss is not None else last_val)
            bar.update(task, completed=min(1.0, event.progress), step=event.step, info=info)

    with bar:
        yield report


@app.command()
def finetune(
    data: Annotated[
        list[Path],
        typer.Argument(help="Labelled crops of your domain: folders with labels.tsv "
                       "('file<TAB>text'), labels.tsv files, or LMDB folders.",
                       metavar="DATA", show_default=False),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder: new or empty, or this run's "
                           "folder to resume it.", show_default=False),
    ],
    init: Annotated[
        Path | None, typer.Option("--init", help="Checkpoint to start from (upstream format); "
                                  "default: the shipped model's.")] = _DEFAULTS["init"],
    from_scratch: Annotated[
        bool, typer.Option("--from-scratch", help="Start from random weights instead of a "
                           "checkpoint (training a new model, hours on a CPU).")
    ] = _DEFAULTS["from_scratch"],
    init_config: Annotated[
        Path | None, typer.Option("--init-config", help="Its YAML config (charset); default: "
                                  "the .yaml beside --init, else the built-in one.")
    ] = _DEFAULTS["init_config"],
    charset: Annotated[
        str | None, typer.Option("--charset", help="Characters to train for, e.g. with upper "
                                 "case and punctuation; default: --init's. Known characters "
                                 "keep their rows, new ones start fresh.")] = _DEFAULTS["charset"],
    outside_charset: Annotated[
        Literal["drop", "skip", "refuse"],
        typer.Option("--outside-charset", help="Label characters outside the charset: drop "
                     "them (as eval does), skip the crop, or refuse.")
    ] = _DEFAULTS["outside_charset"],
    val: Annotated[
        list[Path] | None, typer.Option("--val", help="Validation set (repeatable); default: "
                                        "a hold-out of DATA.")] = None,
    choose_on: Annotated[
        list[Path] | None, typer.Option("--choose-on", help="One of the --val sets (repeatable) "
                                        "whose crops choose the best checkpoint; the others are "
                                        "only reported. Default: all of them.")] = None,
    holdout: Annotated[
        float, typer.Option("--holdout", min=0.01, max=0.5, help="Share of DATA held out for "
                            "validation when there is no --val.")] = _DEFAULTS["holdout"],
    groups: Annotated[
        Path | None, typer.Option("--groups", help="'file<TAB>group' TSV: hold out whole "
                                  "groups (a receipt, a photo) instead of blocks of files.")
    ] = _DEFAULTS["groups"],
    minutes: Annotated[
        float | None, typer.Option("--minutes", min=0.01, help="Training time; the learning "
                                   "rate decays over it. Default 30 when --steps is not "
                                   "given.", show_default=False)] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="Optimiser steps instead of "
                                 "--minutes.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Crops per step.")
    ] = _DEFAULTS["batch_size"],
    width_policy: Annotated[
        WidthPolicy,
        typer.Option("--width-policy", help="bucket: each crop at its aspect ratio's width, as "
                     "the model will then read by default; fixed: every crop at the model "
                     "width, as upstream.")] = _DEFAULTS["width_policy"],
    lr: Annotated[float, typer.Option("--lr", min=1e-7, help="Peak learning rate (AdamW, "
                                      "warm-up then cosine decay).")] = _DEFAULTS["lr"],
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Warm-up steps.")
    ] = _DEFAULTS["warmup"],
    ema: Annotated[float, typer.Option("--ema", min=0.0, max=0.9999, help="Decay of the "
                                       "weights' moving average; 0 turns it off.")
    ] = _DEFAULTS["ema"],
    frozen_norm: Annotated[
        bool, typer.Option("--frozen-norm/--trained-norm", help="Keep the start weights' "
                           "BatchNorm statistics, or let them follow your data.")
    ] = _DEFAULTS["frozen_norm"],
    train_features: Annotated[
        bool, typer.Option("--train-features/--freeze-features", help="Train the whole "
                           "convolutional feature extractor, or freeze it below its last "
                           "convolution: faster steps, less forgetting.")
    ] = _DEFAULTS["train_features"],
    distill: Annotated[
        float, typer.Option("--distill", min=0.0, help="Weight of the loss that holds the "
                            "model's readings of the replay crops to the start weights'; 0 "
                            "turns it off.")] = _DEFAULTS["distill"],
    augment: Annotated[
        float, typer.Option("--augment", min=0.0, max=1.0, help="Share of your crops "
                            "augmented afresh each time they are drawn (the rest as they "
                            "are); 0 turns it off.")] = _DEFAULTS["augment"],
    replay: Annotated[
        float, typer.Option("--replay", min=0.0, max=0.9, help="Share of every batch (on "
                            "average, with --replay-widths own) drawn from general crops, so "
                            "the model keeps reading everything else.")] = _DEFAULTS["replay"],
    replay_renders: Annotated[
        int, typer.Option("--replay-renders", min=0, help="Synthetic general crops rendered "
                          "for replay with this machine's fonts.")] = _DEFAULTS["replay_renders"],
    replay_data: Annotated[
        list[Path] | None, typer.Option("--replay-data", help="Labelled general crops to "
                                        "replay as well (repeatable).")] = None,
    replay_widths: Annotated[
        ReplayWidths,
        typer.Option("--replay-widths", help="batch: every batch holds the replay share, at "
                     "the width of your crops; own: the replay is drawn by its own widths "
                     "(the share holds on average).")] = _DEFAULTS["replay_widths"],
    eval_every: Annotated[int, typer.Option("--eval-every", min=1, help="Steps between "
                                            "validations and checkpoints.")
    ] = _DEFAULTS["eval_every"],
    precision: Annotated[
        Literal["auto", "bf16", "fp32"],
        typer.Option("--precision", help="auto: bf16 on CPUs with AMX or AVX512-BF16, fp32 "
                     "elsewhere.")] = _DEFAULTS["precision"],
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="PyTorch threads.")
                       ] = _DEFAULTS["threads"],
    seed: Annotated[int, typer.Option("--seed", help="Seeds draws, augmentation, renders.")
                    ] = _DEFAULTS["seed"],
    export: Annotated[
        bool, typer.Option("--export", help="Then export the best checkpoint to OUT/model.onnx, "
                           "verified against PyTorch.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the summary.")] = False,
) -> None:
    """Fine-tune a model on your own labelled crops (CPU), resumably; optionally export it."""
    with errors_to_exit():
        from crnn_onnx.training import require_training_dependencies

        require_training_dependencies()
        from crnn_onnx.training.trainer import finetune as run_finetune

        settings = FinetuneSettings(
            data=tuple(data), out=out, init=init, from_scratch=from_scratch,
            init_config=init_config, charset=charset,
            outside_charset=outside_charset, val=tuple(val or ()),
            choose_on=tuple(choose_on or ()), holdout=holdout,
            groups=groups, steps=steps, minutes=minutes if minutes or steps else 30.0,
            batch_size=batch_size, width_policy=width_policy, lr=lr, warmup=warmup, ema=ema,
            frozen_norm=frozen_norm, train_features=train_features, distill=distill,
            augment=augment, replay=replay, replay_renders=replay_renders,
            replay_data=tuple(replay_data or ()), replay_widths=replay_widths,
            eval_every=eval_every, precision=precision, threads=threads, seed=seed)
        with _stop_requests() as stop_signal, _reporter(quiet) as report:
            result = run_finetune(settings, on_event=report,
                                  should_stop=lambda: stop_signal() is not None)
        folder = result.folder
        if result.interrupted:
            signum = stop_signal() or signal.SIGINT
            typer.echo(f"interrupted at step {result.step:,}: {folder.last} saved; the same "
                       "command resumes the run", err=True)
            raise typer.Exit(128 + signum)
        typer.echo(f"trained     {result.step:,} steps, {result.trained_s / 60:.1f} min, "
                   f"{result.crops_per_s:.1f} crops/s ({result.precision})")
        typer.echo(f"validation  {result.start_accuracy:.2%} -> {result.best_accuracy:.2%} "
                   f"({result.val_crops:,} crops; {result.train_crops:,} trained on)")
        if len(result.best_by_set) > 1:
            for name, score in result.best_by_set.items():
                start = result.start_by_set.get(name)
                before = f"{start:.2%} -> " if start is not None else ""
                typer.echo(f"  {name}  {before}{score:.2%}")
        if not result.improved:
            typer.echo(f"warning: no checkpoint read the validation crops better than the "
                       f"start weights did ({result.start_accuracy:.2%} -> "
                       f"{result.best_accuracy:.2%})", err=True)
        typer.echo(f"best        {folder.best} (config {folder.config})")
        typer.echo(f"log         {folder.log}")
        if export:
            from crnn_onnx.export.exporter import export_checkpoint

            exported = export_checkpoint(folder.best, result.config, folder.onnx)
            typer.echo(f"exported    {exported.output} (ONNX Runtime matches PyTorch within "
                       f"{exported.max_diff:.1e})")
            typer.echo(f"next        crnn-onnx eval LABELS --model {exported.output}")
        else:
            typer.echo(f"next        crnn-onnx export --ckpt {folder.best} "
                       f"--config {folder.config}")
