"""The run folder of a fine-tuning run: what it holds, and whether a run may use it.

``DIR/run.json`` (the settings' identity), ``best.pth`` + ``config.yaml`` (the best weights by
validation accuracy, upstream checkpoint format, and their config), ``last.pth`` (weights,
optimiser and step, for resuming), ``log.jsonl`` (one JSON object per line), and
``model.onnx`` when exported. Every file is written atomically (temporary file, then rename),
so an interrupted run never leaves a half-written one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from crnn_onnx.atomic import atomic_path
from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError

__all__ = ["RunFolder", "check_run_folder"]

RUN_FILE = "run.json"


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder."""

    root: Path

    @property
    def run(self) -> Path:
        return self.root / RUN_FILE

    @property
    def best(self) -> Path:
        return self.root / "best.pth"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def last(self) -> Path:
        return self.root / "last.pth"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def onnx(self) -> Path:
        return self.root / "model.onnx"

    def create(self, identity: dict[str, Any]) -> None:
        """Make the folder and write ``run.json`` (kept as it is when resuming)."""
        if self.run.is_file():
            return
        with atomic_path(self.run) as tmp:
            tmp.write_text(json.dumps({"settings": identity}, indent=2) + "\n", encoding="utf-8")

    def write_config(self, config: CRNNConfig) -> None:
        """``config.yaml``: the charset and input settings ``crnn-onnx export`` reads."""
        data = {
            "image_shape": list(config.image_shape),
            "charset": "".join(config.charset),
            "mean": list(config.mean),
            "std": list(config.std),
            "pad_value": config.pad_value,
            "keep_ratio": config.keep_ratio,
            "bgr_to_rgb": config.bgr_to_rgb,
            "width_policy": config.width_policy,
        }
        with atomic_path(self.config) as tmp:
            tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                           encoding="utf-8")


def _differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [k for k in keys if stored.get(k) != wanted.get(k)]


def check_run_folder(root: Path, identity: dict[str, Any]) -> bool:
    """Whether ``root`` may hold this run, before anything is written.

    Returns:
        ``True`` when it already holds this run (same settings: resume), ``False`` when it is
        new or empty.

    Raises:
        CRNNError: ``root`` is a file, cannot be written, holds another run (naming the
            settings that differ) or holds other files.
    """
    if root.exists() and not root.is_dir():
        raise CRNNError(f"out={str(root)!r} is a file, not a folder")
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise CRNNError(f"cannot create {str(root)!r}: {str(probe)!r} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CRNNError(f"cannot write to {str(probe)!r} (permission denied)")
    if not root.exists() or not any(root.iterdir()):
        return False
    run = root / RUN_FILE
    if not run.is_file():
        raise CRNNError(f"out={str(root)!r} is not empty and holds no fine-tuning run; "
                        "give a new or empty folder")
    try:
        stored = json.loads(run.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CRNNError(f"{str(run)!r} is unreadable; give a new or empty folder") from None
    # Runs begun before these options existed trained the whole feature extractor, drew the
    # replay at the data's widths and chose on all their validation sets.
    stored.setdefault("train_features", True)
    stored.setdefault("replay_widths", "batch")
    stored.setdefault("choose_on", [])
    differ = _differences(stored, identity)
    if differ:
        raise CRNNError(f"out={str(root)!r} holds another run (its {', '.join(differ)} "
                        "differ); give a new folder, or the same settings to resume it")
    return True
