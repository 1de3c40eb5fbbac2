"""Fine-tune a CRNN on a user's labelled crops, on the CPU: :func:`finetune`.

Each batch mixes the user's crops (augmented) with general replay crops
(:mod:`crnn_onnx.training.replay`); the loss is CTC (blank 0) on (T, N, C) log-probabilities;
AdamW with linear warm-up then cosine decay to 2% of the peak, gradient clipping at 5, and an
exponential moving average (EMA) of the weights. Every ``eval_every`` steps, and at the end,
the EMA and the raw weights are scored on the validation crops (greedy decoding, exact match
on the charset); the better is kept as ``best.pth`` when it beats the best so far, and
``last.pth`` is written for resuming. A stop request (Ctrl-C, SIGTERM) ends the step in
progress, writes ``last.pth`` and returns; the same settings on the same folder resume the
same schedule.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from crnn_onnx.config import CRNNConfig, load_config
from crnn_onnx.contract import sequence_length
from crnn_onnx.errors import CRNNError
from crnn_onnx.export.checkpoint import load_checkpoint, save_checkpoint
from crnn_onnx.export.model import CRNN
from crnn_onnx.inference.decoder import ctc_greedy_decode
from crnn_onnx.training.charset import with_charset
from crnn_onnx.training.data import CropSet, holdout_split, read_crops, read_groups
from crnn_onnx.training.precision import resolve_precision
from crnn_onnx.training.replay import mix, render_replay
from crnn_onnx.training.run_folder import RunFolder, check_run_folder
from crnn_onnx.training.settings import FinetuneSettings
from crnn_onnx.weights import default_model_path

__all__ = ["FinetuneResult", "TrainEvent", "finetune"]

#: Consecutive steps with a NaN or infinite loss before the run is stopped.
NAN_PATIENCE = 5


@dataclass(frozen=True)
class TrainEvent:
    """What the loop reports: ``kind`` is ``note`` (a line for the user), ``step`` or
    ``eval``; ``progress`` is the share of the schedule done (0..1)."""

    kind: str
    step: int = 0
    progress: float = 0.0
    message: str = ""
    loss: float | None = None
    crops_per_s: float | None = None
    val_accuracy: float | None = None
    best_accuracy: float | None = None


@dataclass(frozen=True)
class FinetuneResult:
    """How a run ended.

    Attributes:
        folder: the run folder's paths.
        config: the config of the trained model (its charset).
        step: steps done in all sessions of the run.
        best_accuracy: validation word accuracy of ``best.pth``; ``start_accuracy`` that of
            the start weights (on the trained charset).
        train_crops, val_crops: crops trained on and validated on.
        trained_s: training time over all sessions, seconds.
        crops_per_s: crops trained on per second in this session, validations included.
        precision: ``bf16`` or ``fp32``.
        interrupted: stopped by request before the schedule ended (``last.pth`` resumes).
    """

    folder: RunFolder
    config: CRNNConfig
    step: int
    best_accuracy: float
    start_accuracy: float
    train_crops: int
    val_crops: int
    trained_s: float
    crops_per_s: float
    precision: str
    interrupted: bool


def _start_config(settings: FinetuneSettings) -> tuple[Path, CRNNConfig]:
    init = settings.init or default_model_path().with_suffix(".pth")
    config_path = settings.init_config
    if config_path is None and init.with_suffix(".yaml").is_file():
        config_path = init.with_suffix(".yaml")
    return init, load_config(config_path)


def _normalise(batch: np.ndarray, config: CRNNConfig) -> torch.Tensor:
    """(N, 32, W, 3) uint8 BGR -> (N, 3, 32, W) float32, the model's normalisation,
    channels-last in memory (oneDNN's fastest layout for the convolutions)."""
    x = torch.from_numpy(batch).float()
    if config.bgr_to_rgb:
        x = x.flip(-1)
    mean = torch.tensor(config.mean) * 255
    std = torch.tensor(config.std) * 255
    return ((x - mean) / std).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def _forward(model: CRNN, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """(N, 3, 32, W) -> (T, N, C) float32 logits; the backbone in bf16 autocast when asked."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = model.feat_extract(x)
    return model.head(model.neck(feats.float()))


@torch.no_grad()
def _accuracy(model: CRNN, images: np.ndarray, labels: list[str], config: CRNNConfig) -> float:
    """Word accuracy (exact match on the charset) of greedy readings of (N, 32, W, 3) crops."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(labels), 256):
        logits = model(_normalise(images[i:i + 256], config)).numpy()
        texts = [d.text for d in ctc_greedy_decode(logits, config.charset)]
        correct += sum(t == y for t, y in zip(texts, labels[i:i + 256], strict=True))
    model.train(was_training)
    return correct / max(1, len(labels))


def _lr_at(step: int, progress: float, settings: FinetuneSettings) -> float:
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    return settings.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _split(settings: FinetuneSettings, crops: CropSet, charset: tuple[str, ...],
           max_label: int, note: Callable[[str], None]) -> tuple[CropSet, CropSet]:
    """(train, validation): the validation sets, or a hold-out of the data."""
    if settings.val:
        val, _ = read_crops(settings.val, charset, "drop", max_label=max_label)
        note(f"validation: {len(val):,} crops from {', '.join(map(str, settings.val))}")
        return crops, val
    groups = read_groups(settings.groups) if settings.groups else None
    train_idx, val_idx = holdout_split(crops.names, settings.holdout, groups=groups)
    how = f"whole groups of {settings.groups}" if groups else "blocks of 40 consecutive files"
    note(f"validation: {len(val_idx):,} crops held out of the data ({settings.holdout:.0%}, "
         f"by {how}; the same on every run)")
    return crops.subset(train_idx), crops.subset(val_idx)


def finetune(settings: FinetuneSettings, *,
             on_event: Callable[[TrainEvent], None] = lambda event: None,
             should_stop: Callable[[], bool] = lambda: False) -> FinetuneResult:
    """Fine-tune, resuming the run in ``settings.out`` when it holds the same run.

    Args:
        settings: the run.
        on_event: called with notes, every step's figures and every validation.
        should_stop: polled after every step; ``True`` saves ``last.pth`` and returns.

    Raises:
        CRNNError: bad data or start checkpoint, a folder holding another run, NaN loss
            (the last good ``last.pth`` is kept); nothing is written before the inputs
            have been checked.
    """
    def note(message: str) -> None:
        on_event(TrainEvent("note", message=message))

    folder = RunFolder(settings.out)
    resuming = check_run_folder(folder.root, settings.identity())
    bf16 = resolve_precision(settings.precision)
    init, start_config = _start_config(settings)
    if settings.from_scratch:
        torch.manual_seed(settings.seed)
        model = CRNN(start_config.num_classes)
    else:
        model = load_checkpoint(init, start_config)
    config = start_config
    if settings.charset is not None and tuple(settings.charset) != start_config.charset:
        config = start_config.replace(charset=tuple(settings.charset))
        model, fresh = with_charset(model, start_config.charset, config.charset,
                                    seed=settings.seed)
        note(f"charset: {len(config.charset)} characters; {len(fresh)} new start fresh "
             f"({''.join(fresh)!r}), the rest keep their classifier rows")
    max_label = sequence_length(config.width) - 2
    crops, report = read_crops(settings.data, config.charset, settings.outside_charset,
                               max_label=max_label)
    note(f"data: {report.kept:,} of {report.labelled:,} crops kept"
         + (f"; {report.unreadable:,} unreadable" if report.unreadable else "")
         + (f"; {report.too_long:,} labels longer than {max_label}" if report.too_long else "")
         + (f"; {report.fit.emptied:,} labels without a character of the charset"
            if report.fit.emptied else ""))
    if report.fit.crops_affected:
        action = {"drop": "removed from their labels", "skip": "those crops left out"}[
            settings.outside_charset]
        note(f"{report.fit.crops_affected:,} labels hold characters outside the charset "
             f"({report.fit.summary()}): {action}")
    if not len(crops):
        raise CRNNError(f"no usable crops in {', '.join(map(str, settings.data))}")
    train, val = _split(settings, crops, config.charset, max_label, note)
    if not len(train) or not len(val):
        raise CRNNError(f"{len(crops)} crops are too few to train on and validate with; "
                        "give more data or a validation set")
    replay = CropSet([], [], [])
    if settings.replay and settings.replay_renders:
        replay += render_replay(settings.replay_renders, config.charset, seed=settings.seed)
    if settings.replay and settings.replay_data:
        general, _ = read_crops(settings.replay_data, config.charset, "drop",
                                max_label=max_label)
        replay += general
    if settings.replay:
        note(f"replay: {settings.replay:.0%} of every batch from {len(replay):,} general crops")
    note(f"precision: {'bf16 (this CPU computes it natively)' if bf16 else 'fp32'}")
    val_images = val.fitted(config)

    folder.root.mkdir(parents=True, exist_ok=True)
    folder.create(settings.identity())
    folder.write_config(config)
    model = model.train().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    ema = copy.deepcopy(model) if settings.ema else model
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    step, trained_s, best, best_step = 0, 0.0, -1.0, 0
    start_accuracy = _accuracy(model, val_images, val.labels, config)
    if resuming and folder.last.is_file():
        state = torch.load(folder.last, map_location="cpu", weights_only=True)
        model.load_state_dict(state["train_model"])
        ema.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        step, trained_s = int(state["step"]), float(state["trained_s"])
        best, best_step = float(state["best_accuracy"]), int(state["best_step"])
        start_accuracy = float(state["start_accuracy"])
        note(f"resuming at step {step:,} (best validation {best:.2%} at step {best_step:,})")
    log = folder.log.open("a", encoding="utf-8")

    def record(**fields: object) -> None:
        log.write(json.dumps({"time": round(time.time(), 1), **fields}) + "\n")
        log.flush()

    def progress(session_s: float) -> float:
        if settings.steps is not None:
            return step / settings.steps
        return (trained_s + session_s) / (60 * settings.minutes)  # type: ignore[operator]

    def save_last(session_s: float) -> None:
        save_checkpoint(ema, folder.last, epoch=step, extra={
            "train_model": model.state_dict(), "optimizer": optimiser.state_dict(),
            "step": step, "trained_s": trained_s + session_s, "best_accuracy": best,
            "best_step": best_step, "start_accuracy": start_accuracy})

    def checkpoint(session_s: float) -> None:
        nonlocal best, best_step
        scores = {"ema": _accuracy(ema, val_images, val.labels, config)}
        if ema is not model:
            scores["raw"] = _accuracy(model, val_images, val.labels, config)
        which = max(scores, key=lambda k: scores[k])
        if scores[which] > best or not folder.best.is_file():
            best, best_step = max(best, scores[which]), step
            save_checkpoint(ema if which == "ema" else model, folder.best, epoch=step,
                            extra={"best_acc": best, "step": step,
                                   "charset": "".join(config.charset)})
        save_last(session_s)
        record(event="eval", step=step, val_accuracy=scores, best=best, best_step=best_step)
        on_event(TrainEvent("eval", step, progress(session_s), val_accuracy=scores[which],
                            best_accuracy=best))

    if not resuming or not folder.last.is_file():
        record(event="start", settings=settings.identity(), train=len(train), val=len(val),
               replay=len(replay), precision="bf16" if bf16 else "fp32",
               start_accuracy=start_accuracy)
    else:
        record(event="resume", step=step)
    note(f"start: {start_accuracy:.2%} of the validation crops read correctly")
    finished_before = progress(0.0) >= 1.0
    if finished_before:
        note(f"the run in {folder.root} is complete ({step:,} steps); nothing to train")
    rng = random.Random(f"{settings.seed}:{step}")
    frames = sequence_length(config.width)
    session_start = time.perf_counter()
    window_start, window_crops, window_losses = session_start, 0, []
    bad_losses, interrupted, session_crops = 0, False, 0
    while progress(time.perf_counter() - session_start) < 1.0:
        if should_stop():
            interrupted = True
            break
        lr = _lr_at(step, progress(time.perf_counter() - session_start), settings)
        for group in optimiser.param_groups:
            group["lr"] = lr
        images, labels = mix(train, replay, settings.batch_size, settings.replay, rng, config,
                             augment=settings.augment)
        targets = torch.tensor([config.charset.index(c) + 1 for y in labels for c in y])
        log_probs = F.log_softmax(_forward(model, _normalise(images, config), bf16), dim=2)
        loss = F.ctc_loss(log_probs, targets, torch.full((len(labels),), frames),
                          torch.tensor([len(y) for y in labels]), blank=0, zero_infinity=True)
        if not torch.isfinite(loss):
            bad_losses += 1
            if bad_losses >= NAN_PATIENCE:
                record(event="nan", step=step)
                raise CRNNError(f"the loss became NaN at step {step} ({NAN_PATIENCE} steps in a "
                                f"row); lower the learning rate (lr={settings.lr:g}); "
                                f"{folder.last} keeps the last good weights")
            continue
        bad_losses = 0
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
        if ema is not model:  # EMA with a warm-up of its decay, so early steps fade fast
            decay = min(settings.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                    e.lerp_(p, 1 - decay)
                for e, b in zip(ema.buffers(), model.buffers(), strict=True):
                    e.copy_(b)
        step += 1
        window_crops += len(labels)
        session_crops += len(labels)
        window_losses.append(loss.item())
        now = time.perf_counter()
        crops_per_s = window_crops / max(1e-9, now - window_start)
        on_event(TrainEvent("step", step, progress(now - session_start), loss=window_losses[-1],
                            crops_per_s=crops_per_s))
        if step % 20 == 0:
            record(step=step, loss=round(float(np.mean(window_losses)), 4), lr=round(lr, 7),
                   crops_per_s=round(crops_per_s, 1))
            window_start, window_crops, window_losses = now, 0, []
        if step % settings.eval_every == 0:
            checkpoint(time.perf_counter() - session_start)
            window_start, window_crops, window_losses = time.perf_counter(), 0, []
    session_s = time.perf_counter() - session_start
    if interrupted:
        record(event="interrupted", step=step)
        save_last(session_s)
    elif not finished_before:
        if step % settings.eval_every or not folder.best.is_file():
            checkpoint(session_s)
        record(event="done", step=step, best=best, best_step=best_step)
    log.close()
    return FinetuneResult(folder, config, step, best, start_accuracy, len(train), len(val),
                          trained_s + session_s, session_crops / max(session_s, 1e-9),
                          "bf16" if bf16 else "fp32", interrupted)
