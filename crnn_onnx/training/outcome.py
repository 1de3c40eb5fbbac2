"""What a fine-tuning run reports as it goes (:class:`TrainEvent`) and how it ended
(:class:`FinetuneResult`)."""

from __future__ import annotations

from dataclasses import dataclass

from crnn_onnx.config import CRNNConfig
from crnn_onnx.training.run_folder import RunFolder

__all__ = ["FinetuneResult", "TrainEvent", "by_set_text"]


def by_set_text(by_set: dict[str, float]) -> str:
    """``NAME 97.10%, NAME 88.00%``: the accuracy of each validation set, for a line."""
    return ", ".join(f"{name} {score:.2%}" for name, score in by_set.items())


@dataclass(frozen=True)
class TrainEvent:
    """What the loop reports: ``kind`` is ``note`` (a line for the user), ``step`` or
    ``eval``; ``progress`` is the share of the schedule done (0..1); an ``eval`` carries the
    word accuracy over the sets that choose ``best.pth`` together and ``by_set``, that of
    each validation set by name."""

    kind: str
    step: int = 0
    progress: float = 0.0
    message: str = ""
    loss: float | None = None
    crops_per_s: float | None = None
    val_accuracy: float | None = None
    best_accuracy: float | None = None
    by_set: dict[str, float] | None = None


@dataclass(frozen=True)
class FinetuneResult:
    """How a run ended.

    Attributes:
        folder: the run folder's paths.
        config: the config of the trained model (its charset).
        step: steps done in all sessions of the run.
        best_accuracy: validation word accuracy of ``best.pth`` over the sets that choose it
            (``choose_on``, else all) together; ``start_accuracy`` that of the start weights
            (on the trained charset).
        best_by_set, start_by_set: the same, of each validation set by name.
        train_crops, val_crops: crops trained on, and those ``best.pth`` is chosen on.
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
    best_by_set: dict[str, float]
    start_by_set: dict[str, float]
    train_crops: int
    val_crops: int
    trained_s: float
    crops_per_s: float
    precision: str
    interrupted: bool

    @property
    def improved(self) -> bool:
        """Whether ``best.pth`` reads the sets that choose it better than the start weights
        did (when it does not, the start weights read them at least as well)."""
        return self.best_accuracy > self.start_accuracy
