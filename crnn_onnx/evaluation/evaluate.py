"""Accuracy of a recogniser on a labelled set: word accuracy, CER, by length, confusions.

By default truth and reading are both folded before they are compared: lower-cased and
limited to the letters and digits of the model's charset (upstream's label rule), so
``Hello!`` counts as read when the model says ``hello``, whatever the model's charset. With
``exact`` they are compared as written, case and punctuation included (for models trained on
such a charset). Labelled sets are read by :mod:`crnn_onnx.evaluation.datasets`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein

from crnn_onnx.evaluation.datasets import LabelledImage
from crnn_onnx.inference.predictor import ImageInput, Predictor
from crnn_onnx.results import Prediction

__all__ = ["EvalReport", "Misread", "evaluate", "folder_for", "score"]


@dataclass(frozen=True)
class Misread:
    """One image not read exactly.

    Attributes:
        path: the image (as given in the labels).
        truth: the ground truth, normalised to the model's charset.
        predicted: what the model read; ``None`` when the image could not be read.
        confidence: the reading's confidence; ``None`` when unknown or unreadable.
        distance: Levenshtein distance between truth and reading (the truth's length, at
            least 1, when unreadable).
        error: why the image could not be read, else ``None``.
    """

    path: str
    truth: str
    predicted: str | None
    confidence: float | None
    distance: int
    error: str | None = None


@dataclass(frozen=True)
class EvalReport:
    """Scores of one evaluation.

    Attributes:
        total: labelled images.
        correct: images read exactly (after normalising the ground truth).
        failed: images that could not be read at all (counted as wrong, CER 1).
        word_accuracy: ``correct / total``.
        cer: character error rate, total Levenshtein distance / total ground-truth characters.
        by_length: ground-truth length -> (images, word accuracy).
        confusions: most frequent (truth, predicted) character substitutions with counts;
            ``""`` stands for an inserted or deleted character.
        mistakes: up to 20 (path, truth, predicted) examples of misreads (unreadable images
            left out), in input order.
        misreads: every image not read exactly, unreadable ones included, in input order.
    """

    total: int
    correct: int
    failed: int
    word_accuracy: float
    cer: float
    by_length: dict[int, tuple[int, float]]
    confusions: list[tuple[str, str, int]]
    mistakes: list[tuple[str, str, str]] = field(default_factory=list)
    misreads: tuple[Misread, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "correct": self.correct,
            "failed": self.failed,
            "word_accuracy": self.word_accuracy,
            "cer": self.cer,
            "by_length": {str(k): {"images": n, "word_accuracy": a}
                          for k, (n, a) in sorted(self.by_length.items())},
            "confusions": [{"truth": t, "predicted": p, "count": c}
                           for t, p, c in self.confusions],
            "mistakes": [{"path": path, "truth": t, "predicted": p}
                         for path, t, p in self.mistakes],
        }


def folder_for(charset: Sequence[str], *, exact: bool = False) -> Callable[[str], str]:
    """How texts are compared for a model with ``charset``: as written when ``exact``, else
    lower-cased and limited to the charset's letters and digits (lower-cased)."""
    if exact:
        return lambda text: text
    kept = frozenset(ch.lower() for ch in charset if ch.isalnum())
    return lambda text: "".join(ch for ch in text.lower() if ch in kept)


def score(truths: Sequence[str], predictions: Sequence[str | None], charset: Sequence[str],
          paths: Sequence[str] | None = None, *, top_confusions: int = 10,
          confidences: Sequence[float | None] | None = None,
          errors: Sequence[str | None] | None = None, exact: bool = False) -> EvalReport:
    """Compare predictions with ground truth (both folded by :func:`folder_for`).

    Args:
        truths: ground-truth texts as written in the labels file.
        predictions: the model's texts; ``None`` where the image could not be read.
        charset: the model's characters.
        paths: image paths, for the examples of mistakes.
        top_confusions: how many confusions to keep.
        confidences: the readings' confidences, for :attr:`EvalReport.misreads`.
        errors: why unreadable images failed, for :attr:`EvalReport.misreads`.
        exact: compare as written (case and punctuation), not folded.
    """
    if len(truths) != len(predictions):
        raise ValueError("truths and predictions differ in length")
    misreads: list[Misread] = []
    fold = folder_for(charset, exact=exact)
    correct = failed = edits = chars = 0
    lengths: dict[int, list[int]] = {}
    confusions: Counter[tuple[str, str]] = Counter()
    mistakes: list[tuple[str, str, str]] = []
    for i, (raw, pred) in enumerate(zip(truths, predictions, strict=True)):
        truth = fold(raw)
        pred = None if pred is None else fold(pred)
        ok = pred is not None and pred == truth
        failed += pred is None
        correct += ok
        per_len = lengths.setdefault(len(truth), [0, 0])
        per_len[0] += 1
        per_len[1] += ok
        chars += len(truth)
        if ok:
            continue
        path = paths[i] if paths else str(i)
        distance = max(1, len(truth)) if pred is None else Levenshtein.distance(truth, pred)
        edits += distance
        misreads.append(Misread(path, truth, pred,
                                confidences[i] if confidences is not None else None, distance,
                                errors[i] if errors is not None else None))
        if pred is None:
            continue
        for op in Levenshtein.editops(truth, pred):
            t = truth[op.src_pos] if op.tag != "insert" else ""
            p = pred[op.dest_pos] if op.tag != "delete" else ""
            confusions[(t, p)] += 1
        if len(mistakes) < 20:
            mistakes.append((path, truth, pred))
    total = len(truths)
    return EvalReport(
        total=total,
        correct=correct,
        failed=failed,
        word_accuracy=correct / total if total else 0.0,
        cer=edits / max(1, chars),
        by_length={k: (n, ok / n) for k, (n, ok) in sorted(lengths.items())},
        confusions=[(t, p, c) for (t, p), c in confusions.most_common(top_confusions)],
        mistakes=mistakes,
        misreads=tuple(misreads),
    )


def evaluate(predictor: Predictor, items: Sequence[LabelledImage], *, top_confusions: int = 10,
             exact: bool = False) -> tuple[EvalReport, list[Prediction]]:
    """Read every labelled image with ``predictor`` and score the readings (as written when
    ``exact``, else folded: see :func:`folder_for`).

    Images that cannot be read (a broken file, a broken LMDB entry) count as wrong and keep
    their error in the report's misreads.

    Returns:
        The report, and one prediction per item, in order.
    """
    readable = [i for i, item in enumerate(items) if item.error is None]
    inputs: list[ImageInput] = []
    for i in readable:
        data = items[i].data
        inputs.append(data if data is not None else items[i].path)
    predictions = [Prediction(str(item.path), error=item.error) for item in items]
    for i, prediction in zip(readable, predictor.predict(inputs), strict=True):
        predictions[i] = Prediction(str(items[i].path), prediction.text, prediction.confidence,
                                    prediction.char_probs, prediction.error)
    report = score(
        [item.text for item in items], [p.text for p in predictions], predictor.config.charset,
        [str(item.path) for item in items], top_confusions=top_confusions,
        confidences=[p.confidence for p in predictions], errors=[p.error for p in predictions],
        exact=exact,
    )
    return report, predictions
