"""Training at the widths inference will use: crops grouped by input width, batches of one.

Under the ``bucket`` policy every crop has its own input width
(:func:`crnn_onnx.inference.preprocess.target_width`: its aspect ratio's, in steps of 32 px,
at least the config width); under ``fixed`` they all share the config width. A batch is
drawn from one :class:`WidthGroups` group and fitted to the group's width, so a short word
never pays for a long word's frames. Buckets with fewer crops than ``least`` are merged
into the next wider one (their crops padded, never squeezed), so that no batch repeats a
handful of crops.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crnn_onnx.config import CRNNConfig, WidthPolicy
from crnn_onnx.inference.preprocess import target_width

__all__ = ["WidthGroups", "crop_widths"]


def crop_widths(images: Sequence[np.ndarray], config: CRNNConfig, policy: WidthPolicy
                ) -> list[int]:
    """The input width of each (H, W, 3) crop under ``policy``."""
    return [target_width(image.shape, config, policy) for image in images]


@dataclass(frozen=True)
class WidthGroups:
    """Crops (by index) grouped under the batch widths they are trained at.

    Attributes:
        widths: the groups' batch widths, ascending.
        members: each group's crop indices.
    """

    widths: tuple[int, ...]
    members: tuple[tuple[int, ...], ...]

    @classmethod
    def build(cls, widths: Sequence[int], least: int) -> WidthGroups:
        """Group crop indices by width, merging buckets of fewer than ``least`` crops into
        the next wider one (the widest leftovers join the group below them)."""
        by_width: dict[int, list[int]] = {}
        for index, width in enumerate(widths):
            by_width.setdefault(width, []).append(index)
        groups: list[tuple[int, list[int]]] = []
        pending: list[int] = []
        for width in sorted(by_width):
            pending += by_width[width]
            if len(pending) >= least:
                groups.append((width, pending))
                pending = []
        if pending:
            if groups:  # too few to stand alone: the widest group takes them at their width
                groups[-1] = (max(by_width), groups[-1][1] + pending)
            else:
                groups.append((max(by_width), pending))
        return cls(tuple(w for w, _ in groups), tuple(tuple(m) for _, m in groups))

    def __len__(self) -> int:
        return sum(len(m) for m in self.members)

    def choose(self, rng: random.Random) -> tuple[int, tuple[int, ...]]:
        """A group with probability proportional to its size: (batch width, its crops)."""
        pick = rng.randrange(len(self))
        for width, members in zip(self.widths, self.members, strict=True):
            if pick < len(members):
                return width, members
            pick -= len(members)
        raise AssertionError("unreachable: pick < len(self)")

    def share(self, width: int) -> float:
        """The share of the crops in the group of exactly ``width`` (0 if there is none)."""
        if width not in self.widths:
            return 0.0
        return len(self.members[self.widths.index(width)]) / len(self)

    def up_to(self, width: int) -> tuple[int, ...]:
        """The crops of the widest group no wider than ``width`` (the narrowest group's if
        every group is wider: they are then squeezed to ``width``)."""
        at = max(0, bisect.bisect_right(self.widths, width) - 1)
        return self.members[at]
