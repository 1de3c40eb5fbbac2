"""FinetuneSettings: everything a fine-tuning run is told, validated in one place.

The settings that shape the run (data, start weights, charset, schedule) make its identity,
stored as ``run.json`` in the run folder: the same settings resume the run, other settings
are refused (:func:`crnn_onnx.training.run_folder.open_run`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from crnn_onnx.config import WIDTH_POLICIES, WidthPolicy
from crnn_onnx.errors import CRNNError
from crnn_onnx.inference.options import check_choice
from crnn_onnx.training.labels import OUTSIDE_POLICIES, OutsidePolicy

__all__ = ["REPLAY_WIDTHS", "FinetuneSettings", "ReplayWidths", "TrainPrecision"]

#: ``auto``: bf16 where the CPU computes it natively (AMX or AVX512-BF16), else fp32.
TrainPrecision = Literal["auto", "bf16", "fp32"]
#: How a batch's width is chosen when replaying (:func:`crnn_onnx.training.replay.mix`):
#: ``batch``: by the data's widths, the replay taken at it; ``own``: by both sets' widths, so
#: each is drawn by its own.
ReplayWidths = Literal["batch", "own"]
REPLAY_WIDTHS: tuple[str, ...] = get_args(ReplayWidths)


@dataclass(frozen=True)
class FinetuneSettings:
    """A fine-tuning run.

    Attributes:
        data: labelled sets of the user's domain (``labels.tsv`` files or folders, LMDB).
        out: the run folder.
        init: checkpoint to start from; ``None``: the shipped model's.
        from_scratch: start from random weights instead (``init`` must be ``None``).
        init_config: YAML config of ``init`` (its charset); ``None``: ``init``'s ``.yaml``
            sibling when there is one, else the built-in default.
        charset: the charset to train for; ``None`` keeps ``init``'s. Known characters keep
            their classifier rows, new ones start fresh.
        outside_charset: labels' characters outside the charset: ``drop``, ``skip``,
            ``refuse`` (:mod:`crnn_onnx.training.labels`).
        val: validation sets; empty: hold ``holdout`` of ``data`` out.
        choose_on: some of ``val``, whose crops together choose ``best.pth`` (a domain set,
            with a general one only watched); empty: all of ``val``.
        holdout: share of ``data`` held out for validation when ``val`` is empty.
        groups: ``file<TAB>group`` TSV: hold out whole groups (a receipt, a photo).
        steps: optimiser steps to train; or
        minutes: training time (the learning rate follows the elapsed share of it).
        batch_size: crops per step, replay included.
        width_policy: the input widths trained at, and recorded in the config for inference:
            ``bucket`` (each crop at its aspect ratio's width, batches of one width) or
            ``fixed`` (every crop at the config width, as upstream trains).
        lr: peak learning rate (AdamW), reached after ``warmup`` steps, then cosine decay to
            2% of it.
        warmup: warm-up steps.
        weight_decay: AdamW's.
        ema: decay of the weights' exponential moving average (0 turns it off).
        frozen_norm: keep the BatchNorm statistics of the start weights (ignored from
            scratch); else they follow the batches.
        train_features: train the whole convolutional feature extractor; ``False`` freezes
            it below its last convolution (weights and BatchNorm statistics) and trains the
            last convolution, the sequence layers and the classifier (faster steps, less
            forgetting). Ignored from scratch, which trains everything.
        distill: weight of the distillation loss on the replay crops (the model's per-frame
            distributions held to the start weights'); 0 turns it off.
        augment: share of the domain crops augmented afresh each time they are drawn
            (:func:`crnn_onnx.training.augment.augment_crop`); the rest are seen as they
            are. 0 turns augmentation off.
        replay: share of the crops drawn from general crops: of every batch, or on average
            under ``replay_widths='own'``.
        replay_renders: how many synthetic general crops to render for replay (0: none).
        replay_data: labelled sets of general crops to replay, beside the renders.
        replay_widths: ``batch``: a batch's width follows the data's widths and every batch
            holds the ``replay`` share, taken at that width (replay crops are then drawn by
            the data's widths); ``own``: the width follows both sets' widths and each is
            drawn by its own (``replay`` holds on average; wide-data batches hold fewer
            replay crops, and the reverse).
        eval_every: steps between validations (and checkpoints).
        precision: ``auto``, ``bf16`` or ``fp32`` (bf16: the convolutions in autocast).
        threads: torch threads; ``None``: torch's default.
        seed: seeds the draws, augmentation and renders.
    """

    data: tuple[Path, ...]
    out: Path
    init: Path | None = None
    from_scratch: bool = False
    init_config: Path | None = None
    charset: str | None = None
    outside_charset: OutsidePolicy = "drop"
    val: tuple[Path, ...] = ()
    choose_on: tuple[Path, ...] = ()
    holdout: float = 0.05
    groups: Path | None = None
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 32
    width_policy: WidthPolicy = "bucket"
    lr: float = 2e-4
    warmup: int = 50
    weight_decay: float = 0.01
    ema: float = 0.995
    frozen_norm: bool = False
    train_features: bool = False
    distill: float = 1.0
    augment: float = 0.75
    replay: float = 0.25
    replay_renders: int = 4000
    replay_data: tuple[Path, ...] = ()
    replay_widths: ReplayWidths = "batch"
    eval_every: int = 200
    precision: TrainPrecision = "auto"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.data:
            raise CRNNError("no training data given")
        if (self.steps is None) == (self.minutes is None):
            raise CRNNError("give exactly one budget: steps= or minutes=")
        if self.steps is not None and self.steps < 1:
            raise CRNNError(f"steps must be at least 1, got {self.steps}")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise CRNNError(f"minutes must be a positive number, got {self.minutes}")
        checks = {
            "batch_size": self.batch_size >= 2,
            "lr": math.isfinite(self.lr) and self.lr > 0,
            "warmup": self.warmup >= 0,
            "weight_decay": math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            "ema": 0.0 <= self.ema < 1.0,
            "replay": 0.0 <= self.replay < 1.0,
            "augment": 0.0 <= self.augment <= 1.0,
            "distill": math.isfinite(self.distill) and self.distill >= 0,
            "replay_renders": self.replay_renders >= 0,
            "eval_every": self.eval_every >= 1,
            "holdout": 0.0 < self.holdout <= 0.5,
        }
        bad = next((name for name, ok in checks.items() if not ok), None)
        if bad is not None:
            raise CRNNError(f"{bad}={getattr(self, bad)!r} is out of range")
        check_choice("width policy", self.width_policy, WIDTH_POLICIES)
        check_choice("replay widths", self.replay_widths, REPLAY_WIDTHS)
        check_choice("outside_charset policy", self.outside_charset, OUTSIDE_POLICIES)
        if self.charset is not None and not self.charset:
            raise CRNNError("charset is empty")
        if self.charset is not None and len(set(self.charset)) != len(self.charset):
            raise CRNNError("charset holds a character twice")
        known = {v.resolve() for v in self.val}
        stray = next((c for c in self.choose_on if c.resolve() not in known), None)
        if stray is not None:
            raise CRNNError(f"choose_on {str(stray)!r} is not one of the validation sets "
                            "(val)")
        if self.from_scratch and self.init is not None:
            raise CRNNError("give init= or from_scratch=True, not both")
        if self.threads is not None and self.threads < 1:
            raise CRNNError(f"threads must be at least 1, got {self.threads}")

    def chosen(self) -> list[str]:
        """The names (as given) of the validation sets that choose ``best.pth``; empty when
        there are none to name (the hold-out)."""
        picked = {c.resolve() for c in self.choose_on}
        return [str(v) for v in self.val if not picked or v.resolve() in picked]

    def identity(self) -> dict[str, Any]:
        """The settings that make the run what it is (JSON-ready): everything but the folder,
        the threads and the precision, which may change between sessions of one run."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("out", "threads", "precision"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value.resolve())
            elif isinstance(value, tuple):
                value = [str(Path(v).resolve()) for v in value]
            out[f.name] = value
        return out
