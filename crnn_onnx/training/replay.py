"""General crops mixed into every fine-tuning batch, so the model keeps reading everything else.

Two sources, either or both: synthetic renders of general words (:mod:`crnn_onnx.synth`, with
the fonts this machine has, and photographed-scene renders where background images are
installed), rendered once up front; and labelled folders the caller names (real crops of the
kind the model was trained on), augmented afresh each time they are drawn.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError
from crnn_onnx.training.data import CropSet
from crnn_onnx.training.labels import fit_labels
from crnn_onnx.training.settings import ReplayWidths
from crnn_onnx.training.widths import WidthGroups

__all__ = ["render_replay"]

logger = logging.getLogger(__name__)

#: Share of the renders drawn as photographed scenes, when background images are installed.
SCENE_SHARE = 0.3
#: Share of the renders with long texts (13 to 24 characters), read at their own width.
LONG_SHARE = 0.1


def render_replay(count: int, charset: Sequence[str], *, seed: int) -> CropSet:
    """``count`` synthetic word crops of the training split, labels fitted to ``charset``
    (dropping what it lacks).

    Raises:
        CRNNError: Pillow is missing, or no usable font is installed.
    """
    from crnn_onnx.synth.backgrounds import default_bank
    from crnn_onnx.synth.dataset import require_pillow, synth_samples
    from crnn_onnx.synth.words import LONG_MAX, WordSource

    require_pillow("rendering replay crops")
    try:
        bank = default_bank()
        realism = SCENE_SHARE
    except CRNNError as err:  # no photographs here: plain renders only
        logger.debug("replay renders without scenes: %s", err)
        bank, realism = None, 0.0
    images: list[np.ndarray] = []
    texts: list[str] = []
    words = WordSource(split="train", long=LONG_SHARE, max_len=LONG_MAX)
    for sample in synth_samples(count, split="train", seed=seed, realism=realism,
                                backgrounds=bank, words=words):
        images.append(sample.image)
        texts.append(sample.text)
    fit = fit_labels(texts, charset, "drop")
    keep = [i for i, label in enumerate(fit.labels) if label is not None]
    return CropSet([images[i] for i in keep], [fit.labels[i] or "" for i in keep],
                   [f"render-{i}" for i in keep])


def mix(domain: CropSet, replay: CropSet, n: int, share: float, rng: random.Random,
        config: CRNNConfig, *, augment: float, domain_groups: WidthGroups,
        replay_groups: WidthGroups | None, replay_by: ReplayWidths = "batch"
        ) -> tuple[np.ndarray, list[str], int]:
    """One batch of ``n`` crops at one width, a share ``share`` of them from ``replay``
    (always augmented), the rest from ``domain`` (a share ``augment`` of them augmented, so
    that the model also sees the domain's crops as they come).

    ``replay_by`` says how the width is chosen. ``batch``: a group of ``domain_groups`` (by
    its size), and ``round(n * share)`` replay crops from ``replay``'s widest group no wider
    than it, so the replay is drawn by the domain's widths. ``own``: a group of the mixture
    of both (``share`` of it ``replay_groups``), and each crop is a replay crop with that
    source's share of the mixture at this width, so each source is drawn by its own widths
    and ``share`` holds on average, not in every batch.

    Returns:
        (n, 32, W, 3) uint8 BGR crops, their labels, and how many of them, at the end, are
        replay crops.
    """
    replaying = replay_groups is not None and len(replay) > 0 and share > 0
    if replaying and replay_by == "own":
        assert replay_groups is not None
        width, _ = (replay_groups if rng.random() < share else domain_groups).choose(rng)
        from_replay = share * replay_groups.share(width)
        chance = from_replay / (from_replay + (1 - share) * domain_groups.share(width))
        n_replay = sum(rng.random() < chance for _ in range(n))
    else:
        width, _ = domain_groups.choose(rng)
        n_replay = round(n * share) if replaying else 0
    images, labels = domain.draw(n - n_replay, rng, config, pool=domain_groups.up_to(width),
                                 width=width, augment=augment)
    if n_replay:
        assert replay_groups is not None
        more, more_labels = replay.draw(n_replay, rng, config, augment=1.0, width=width,
                                        pool=replay_groups.up_to(width))
        images = np.concatenate([images, more])
        labels = labels + more_labels
    return images, labels, n_replay
