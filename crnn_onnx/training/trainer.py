"""Fine-tune a CRNN on a user's labelled crops, on the CPU: :func:`finetune`.

Each batch mixes the user's crops (augmented) with general replay crops
(:mod:`crnn_onnx.training.replay`); the loss is CTC (blank 0) on (T, N, C)
log-probabilities, plus, on the replay crops, the divergence of the model's per-frame
distributions from the start weights' (distillation, so it keeps reading as it did).
Unless told to train the whole feature extractor, the layers below its last convolution stay
as they were (:mod:`crnn_onnx.training.freezing`), BatchNorm statistics included. Then
AdamW with linear warm-up then cosine decay to 2% of the peak, gradient clipping at 5, and an
exponential moving average (EMA) of the weights. Every ``eval_every`` steps, and at the end,
the weights kept (the EMA's, or the raw ones without EMA) are scored on each validation set
(greedy decoding, exact match on the charset) and saved as ``best.pth`` when they read the
crops of the sets that choose (``choose_on``, else all) at least as well as the best so far
(a tie goes to the later, longer-trained weights), and ``last.pth`` is written for resuming.
A stop request (Ctrl-C, SIGTERM) ends the step in progress, writes ``last.pth`` and returns;
the same settings on the same folder resume the same schedule.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from crnn_onnx.contract import sequence_length
from crnn_onnx.errors import CRNNError
from crnn_onnx.export.checkpoint import save_checkpoint
from crnn_onnx.training.batches import (
    accuracy_by_set,
    distillation,
    forward,
    to_tensor,
    training_mode,
)
from crnn_onnx.training.data import CropSet
from crnn_onnx.training.freezing import freeze_lower_features
from crnn_onnx.training.inputs import prepare_inputs
from crnn_onnx.training.outcome import FinetuneResult, TrainEvent, by_set_text
from crnn_onnx.training.replay import mix
from crnn_onnx.training.run_folder import RunFolder, check_run_folder
from crnn_onnx.training.settings import FinetuneSettings
from crnn_onnx.training.widths import WidthGroups, crop_widths

__all__ = ["finetune"]

#: Consecutive steps with a NaN or infinite loss before the run is stopped.
NAN_PATIENCE = 5


def _lr_at(step: int, progress: float, settings: FinetuneSettings) -> float:
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    return settings.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


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
    threads = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    # Denormal floats slow CPU kernels many times over; flushing them is process-wide, so it
    # is undone (with the threads) when training ends, for the caller's own numerics.
    torch.set_flush_denormal(True)
    try:
        return _train(settings, on_event, should_stop)
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def _train(settings: FinetuneSettings, on_event: Callable[[TrainEvent], None],
           should_stop: Callable[[], bool]) -> FinetuneResult:
    def note(message: str) -> None:
        on_event(TrainEvent("note", message=message))

    folder = RunFolder(settings.out)
    resuming = check_run_folder(folder.root, settings.identity())
    inputs = prepare_inputs(settings, note)
    model, config, train, val, replay = (inputs.model, inputs.config, inputs.train,
                                         inputs.val, inputs.replay)
    bf16 = inputs.bf16
    val_batches = {name: part.fitted(config, config.width_policy) for name, part in val.items()}
    choose = settings.chosen() or list(val)  # the sets that choose best.pth
    val_crops = sum(len(part) for name, part in val.items() if name in choose)
    # Groups of at least a quarter batch, so that no batch repeats a handful of crops.
    least = max(1, settings.batch_size // 4)

    def width_groups(crops: CropSet) -> WidthGroups:
        return WidthGroups.build(crop_widths(crops.images, config, config.width_policy), least)

    train_groups = width_groups(train)
    replay_groups = width_groups(replay) if len(replay) else None

    folder.root.mkdir(parents=True, exist_ok=True)
    folder.create(settings.identity())
    folder.write_config(config)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    # Frozen features keep the start weights' BatchNorm statistics too.
    frozen_features = not (settings.train_features or settings.from_scratch)
    frozen_norm = frozen_features or (settings.frozen_norm and not settings.from_scratch)
    if frozen_features:
        freeze_lower_features(model)
    # The start weights, whose readings of the replay crops the model is held to.
    teacher = copy.deepcopy(model).eval().requires_grad_(False) if settings.distill else None
    ema = copy.deepcopy(model) if settings.ema else model
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    step, trained_s, best, best_step = 0, 0.0, -1.0, 0
    best_by_set: dict[str, float] = {}
    resumed = resuming and folder.last.is_file()
    if not resumed:
        start_accuracy, start_by_set = accuracy_by_set(model, val_batches, config,
                                                       choose=choose)
    else:  # its start accuracy was scored when the run began
        state = torch.load(folder.last, map_location="cpu", weights_only=True)
        model.load_state_dict(state["train_model"])
        ema.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        step, trained_s = int(state["step"]), float(state["trained_s"])
        best, best_step = float(state["best_accuracy"]), int(state["best_step"])
        start_accuracy = float(state["start_accuracy"])
        # Runs saved before the figures by set were kept have none.
        start_by_set = dict(state.get("start_by_set", {}))
        best_by_set = dict(state.get("best_by_set", {}))
        budget = (f"{settings.steps:,} steps" if settings.steps is not None
                  else f"{settings.minutes:g} min")
        note(f"resuming at step {step:,} after {trained_s / 60:.1f} min of {budget} (best "
             f"validation {best:.2%} at step {best_step:,})")
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
            "best_step": best_step, "start_accuracy": start_accuracy,
            "start_by_set": start_by_set, "best_by_set": best_by_set})

    def checkpoint(session_s: float) -> None:
        nonlocal best, best_step, best_by_set
        score, by_set = accuracy_by_set(ema, val_batches, config, choose=choose)
        if score >= best or not folder.best.is_file():
            best, best_step, best_by_set = max(best, score), step, by_set
            save_checkpoint(ema, folder.best, epoch=step, extra={
                "best_acc": best, "step": step, "charset": "".join(config.charset)})
        save_last(session_s)
        record(event="eval", step=step, val_accuracy=score, best=best, best_step=best_step,
               by_set=by_set)
        on_event(TrainEvent("eval", step, progress(session_s), val_accuracy=score,
                            best_accuracy=best, by_set=by_set))

    if not resumed:
        record(event="start", settings=settings.identity(), train=len(train), val=val_crops,
               replay=len(replay), precision="bf16" if bf16 else "fp32",
               start_accuracy=start_accuracy, start_by_set=start_by_set)
    else:
        record(event="resume", step=step)
    which = "the validation crops" if not settings.choose_on else "the chosen sets' crops"
    note(f"start: {start_accuracy:.2%} of {which} read correctly"
         + (f"; {by_set_text(start_by_set)}" if len(start_by_set) > 1 else ""))
    finished_before = progress(0.0) >= 1.0
    if finished_before:
        note(f"the run in {folder.root} is complete ({step:,} steps); nothing to train")
    rng = random.Random(f"{settings.seed}:{step}")
    session_start = time.perf_counter()
    window_start, window_crops, window_losses = session_start, 0, []
    bad_losses, interrupted, session_crops = 0, False, 0
    while progress(time.perf_counter() - session_start) < 1.0:
        if should_stop():
            interrupted = True
            break
        training_mode(model, frozen_norm=frozen_norm)
        lr = _lr_at(step, progress(time.perf_counter() - session_start), settings)
        for group in optimiser.param_groups:
            group["lr"] = lr
        images, labels, n_replay = mix(train, replay, settings.batch_size, settings.replay,
                                       rng, config, augment=settings.augment,
                                       domain_groups=train_groups, replay_groups=replay_groups,
                                       replay_by=settings.replay_widths)
        frames = sequence_length(images.shape[2])
        targets = torch.tensor([config.charset.index(c) + 1 for y in labels for c in y])
        log_probs = F.log_softmax(forward(model, to_tensor(images, config), bf16), dim=2)
        loss = F.ctc_loss(log_probs, targets, torch.full((len(labels),), frames),
                          torch.tensor([len(y) for y in labels]), blank=0, zero_infinity=True)
        if teacher is not None and n_replay:
            loss = loss + settings.distill * distillation(
                log_probs[:, -n_replay:], teacher, images[-n_replay:], config, bf16)
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
        torch.nn.utils.clip_grad_norm_(trainable, 5.0)
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
    return FinetuneResult(folder, config, step, best, start_accuracy, best_by_set, start_by_set,
                          len(train), val_crops,
                          trained_s + session_s, session_crops / max(session_s, 1e-9),
                          "bf16" if bf16 else "fp32", interrupted)
