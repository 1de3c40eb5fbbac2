"""Accuracy of a recogniser on a labelled set: word accuracy, CER, by length, confusions.

A labelled set is a TSV file of ``relative/path<TAB>text`` lines, paths relative to the
file's folder (the format ``crnn-onnx synth`` writes). Ground truth is compared the way the
model can read it: lower-cased and limited to the model's charset (upstream's label rule),
so ``Hello!`` counts as read when the model says ``hello``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rapidfuzz.distance import Levenshtein

from crnn_onnx.errors import CRNNError

__all__ = ["EvalReport", "LabelledImage", "read_labels", "score"]


@dataclass(frozen=True)
class LabelledImage:
    """One line of a labels file: the image's resolved ``path`` and its ``text``."""

    path: Path
    text: str


def read_labels(path: str | Path) -> list[LabelledImage]:
    """Read a ``relative/path<TAB>text`` TSV; blank lines and ``#`` comments are skipped.

    Raises:
        CRNNError: the file is unreadable, empty, or a line has no tab (line number given).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise CRNNError(f"cannot read labels {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise CRNNError(f"labels {str(path)!r} is not UTF-8 text") from None
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        rel, sep, text = line.partition("\t")
        if not sep or not rel:
            raise CRNNError(f"{path}:{number}: expected 'relative/path<TAB>text'")
        items.append(LabelledImage(path=path.parent / rel, text=text))
    if not items:
        raise CRNNError(f"labels {str(path)!r} holds no labelled images")
    return items


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
        mistakes: up to 20 (path, truth, predicted) examples of misreads.
    """

    total: int
    correct: int
    failed: int
    word_accuracy: float
    cer: float
    by_length: dict[int, tuple[int, float]]
    confusions: list[tuple[str, str, int]]
    mistakes: list[tuple[str, str, str]] = field(default_factory=list)

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


def score(truths: Sequence[str], predictions: Sequence[str | None], charset: Sequence[str],
          paths: Sequence[str] | None = None, *, top_confusions: int = 10) -> EvalReport:
    """Compare predictions with ground truth.

    Args:
        truths: ground-truth texts as written in the labels file.
        predictions: the model's texts; ``None`` where the image could not be read.
        charset: the model's characters; truths are lower-cased and filtered to them.
        paths: image paths, for the examples of mistakes.
        top_confusions: how many confusions to keep.
    """
    if len(truths) != len(predictions):
        raise ValueError("truths and predictions differ in length")
    allowed = set(charset)
    correct = failed = errors = chars = 0
    lengths: dict[int, list[int]] = {}
    confusions: Counter[tuple[str, str]] = Counter()
    mistakes: list[tuple[str, str, str]] = []
    for i, (raw, pred) in enumerate(zip(truths, predictions, strict=True)):
        truth = "".join(ch for ch in raw.lower() if ch in allowed)
        ok = pred is not None and pred == truth
        failed += pred is None
        correct += ok
        per_len = lengths.setdefault(len(truth), [0, 0])
        per_len[0] += 1
        per_len[1] += ok
        chars += len(truth)
        if pred is None:
            errors += max(1, len(truth))
            continue
        if ok:
            continue
        errors += Levenshtein.distance(truth, pred)
        for op in Levenshtein.editops(truth, pred):
            t = truth[op.src_pos] if op.tag != "insert" else ""
            p = pred[op.dest_pos] if op.tag != "delete" else ""
            confusions[(t, p)] += 1
        if len(mistakes) < 20:
            mistakes.append((paths[i] if paths else str(i), truth, pred))
    total = len(truths)
    return EvalReport(
        total=total,
        correct=correct,
        failed=failed,
        word_accuracy=correct / total if total else 0.0,
        cer=errors / max(1, chars),
        by_length={k: (n, ok / n) for k, (n, ok) in sorted(lengths.items())},
        confusions=[(t, p, c) for (t, p), c in confusions.most_common(top_confusions)],
        mistakes=mistakes,
    )
