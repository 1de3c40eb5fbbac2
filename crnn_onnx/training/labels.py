"""Labels fitted to a model's charset, with a stated policy for characters it cannot emit.

A charset without upper-case letters reads text case-insensitively, so labels are folded to
lower case first (``RECEIPT`` -> ``receipt``), as evaluation folds them. What is still
outside the charset (``:`` in ``TEL:07-350``, ``é``) is handled by :data:`OutsidePolicy`:

* ``"drop"``: remove those characters from the label (``tel07350``), as evaluation removes
  them from the ground truth; the crop is kept;
* ``"skip"``: leave the crop out;
* ``"refuse"``: stop with an error naming the characters.

Either way the characters and crops affected are counted, so the caller can say so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from crnn_onnx.errors import CRNNError

__all__ = ["OUTSIDE_POLICIES", "LabelFit", "OutsidePolicy", "fit_labels", "folds_case"]

OutsidePolicy = Literal["drop", "skip", "refuse"]
OUTSIDE_POLICIES: tuple[str, ...] = get_args(OutsidePolicy)


def folds_case(charset: Sequence[str]) -> bool:
    """Whether a model with this charset reads case-insensitively (it has no upper case)."""
    return not any(ch != ch.lower() for ch in charset)


@dataclass
class LabelFit:
    """Labels fitted to a charset.

    Attributes:
        labels: one entry per input label: the fitted label, or ``None`` when the crop is
            left out (skipped, or nothing left after dropping).
        outside: characters outside the charset -> how often they occurred.
        crops_affected: labels that held at least one such character.
        emptied: labels left empty (only characters outside the charset): always left out.
    """

    labels: list[str | None]
    outside: Counter[str] = field(default_factory=Counter)
    crops_affected: int = 0
    emptied: int = 0

    def summary(self, limit: int = 8) -> str:
        """``"':' 3,120, '-' 1,044, ..."``: the most frequent outside characters."""
        shown = ", ".join(f"{ch!r} {n:,}" for ch, n in self.outside.most_common(limit))
        more = len(self.outside) - limit
        return shown + (f" and {more} more" if more > 0 else "")


def fit_labels(labels: Sequence[str], charset: Sequence[str], policy: OutsidePolicy,
               *, source: str = "labels") -> LabelFit:
    """Fit every label to ``charset`` under ``policy``.

    Args:
        labels: labels as written in the data.
        charset: the model's characters (one character each).
        policy: what to do with characters outside the charset (module docstring).
        source: how to name the data in the error.

    Raises:
        CRNNError: ``policy`` is ``"refuse"`` and some label holds characters outside the
            charset; the message counts them and names the most frequent.
    """
    allowed = set(charset)
    fold = folds_case(charset)
    fit = LabelFit(labels=[])
    for raw in labels:
        text = raw.lower() if fold else raw
        outside = [ch for ch in text if ch not in allowed]
        if outside:
            fit.outside.update(outside)
            fit.crops_affected += 1
            if policy == "skip":
                fit.labels.append(None)
                continue
            text = "".join(ch for ch in text if ch in allowed)
        if not text:
            fit.emptied += 1
            fit.labels.append(None)
            continue
        fit.labels.append(text)
    if policy == "refuse" and fit.crops_affected:
        raise CRNNError(
            f"{fit.crops_affected:,} of {len(labels):,} {source} hold characters outside the "
            f"charset ({fit.summary()}); choose outside_charset='drop' or 'skip', or a charset "
            "that has them"
        )
    return fit
