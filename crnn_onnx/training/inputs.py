"""What a fine-tuning run starts from, checked before anything is written: the start
weights (and a new charset's classifier), the data fitted to the charset, the validation
split, the replay crops and the precision, each said to the user in a note."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from crnn_onnx.config import CRNNConfig, load_config
from crnn_onnx.contract import sequence_length
from crnn_onnx.errors import CRNNError
from crnn_onnx.export.checkpoint import load_checkpoint
from crnn_onnx.export.model import CRNN
from crnn_onnx.inference.preprocess import widest_width
from crnn_onnx.training.charset import with_charset
from crnn_onnx.training.data import CropSet, holdout_split, read_crops, read_groups
from crnn_onnx.training.precision import resolve_precision
from crnn_onnx.training.replay import render_replay
from crnn_onnx.training.settings import FinetuneSettings
from crnn_onnx.weights import default_model_path

__all__ = ["HELD_OUT", "Inputs", "prepare_inputs"]

HELD_OUT = "held out"
"""The name of the validation set held out of the data (when no ``val`` is given)."""


@dataclass(frozen=True)
class Inputs:
    """The start of a run: ``model`` (float32, on the trained charset), its ``config``, the
    ``train`` crops, the validation sets ``val`` by name (each ``val`` source as given, or
    ``held out``), the ``replay`` crops, and whether to train in ``bf16``."""

    model: CRNN
    config: CRNNConfig
    train: CropSet
    val: dict[str, CropSet]
    replay: CropSet
    bf16: bool


def _start_config(settings: FinetuneSettings) -> tuple[Path, CRNNConfig]:
    init = settings.init or default_model_path().with_suffix(".pth")
    config_path = settings.init_config
    if config_path is None and init.with_suffix(".yaml").is_file():
        config_path = init.with_suffix(".yaml")
    return init, load_config(config_path)


def _split(settings: FinetuneSettings, crops: CropSet, charset: tuple[str, ...],
           max_label: int, note: Callable[[str], None]
           ) -> tuple[CropSet, dict[str, CropSet]]:
    """(train, validation sets by name): the validation sets, or a hold-out of the data."""
    if settings.val:
        val = {str(source): read_crops([source], charset, "drop", max_label=max_label)[0]
               for source in settings.val}
        note(f"validation: {sum(map(len, val.values())):,} crops from {', '.join(val)}")
        if settings.choose_on:
            note(f"best.pth chosen on {', '.join(settings.chosen())}")
        return crops, val
    groups = read_groups(settings.groups) if settings.groups else None
    train_idx, val_idx = holdout_split(crops.names, settings.holdout, groups=groups)
    how = f"whole groups of {settings.groups}" if groups else "blocks of 40 consecutive files"
    note(f"validation: {len(val_idx):,} crops held out of the data ({settings.holdout:.0%}, "
         f"by {how}; the same on every run)")
    return crops.subset(train_idx), {HELD_OUT: crops.subset(val_idx)}


def prepare_inputs(settings: FinetuneSettings, note: Callable[[str], None]) -> Inputs:
    """Load and check everything the run needs, saying what was found through ``note``.

    Raises:
        CRNNError: a start checkpoint that does not load or fit its charset, data missing,
            unusable or too small to split, labels refused by the policy, bf16 refused.
    """
    bf16 = resolve_precision(settings.precision)
    init, start_config = _start_config(settings)
    if settings.from_scratch:
        torch.manual_seed(settings.seed)
        model = CRNN(start_config.num_classes)
    else:
        model = load_checkpoint(init, start_config)
    config = start_config.replace(width_policy=settings.width_policy)
    if settings.charset is not None and tuple(settings.charset) != start_config.charset:
        config = config.replace(charset=tuple(settings.charset))
        model, fresh = with_charset(model, start_config.charset, config.charset,
                                    seed=settings.seed)
        note(f"charset: {len(config.charset)} characters; {len(fresh)} new start fresh "
             f"({''.join(fresh)!r}), the rest keep their classifier rows")
    widest = widest_width(config, config.width_policy)
    max_label = sequence_length(widest) - 2
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
    empty = [name for name, part in val.items() if not len(part)]
    if settings.val and empty:
        raise CRNNError(f"validation set {empty[0]!r} holds no usable crops")
    if not len(train) or empty:
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
        where = ("of every batch" if settings.replay_widths == "batch"
                 else "of the crops, each set by its own widths,")
        note(f"replay: {settings.replay:.0%} {where} from {len(replay):,} general crops")
    note("widths: " + (f"each crop at its aspect ratio's width ({config.width} to "
                       f"{widest} px, batches of one width), as inference reads it"
                       if config.width_policy == "bucket"
                       else f"every crop at {config.width} px"))
    note(f"precision: {'bf16 (this CPU computes it natively)' if bf16 else 'fp32'}")

    return Inputs(model, config, train, val, replay, bf16)
