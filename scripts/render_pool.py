#!/usr/bin/env python3
"""Pre-render synthetic word crops into shards for training (one process per core).

Each shard is an ``.npz`` with ``images`` (N, 32, W, 3) uint8 BGR, already resized to height
32 keeping the aspect ratio and right-padded with 128 exactly as the model's preprocessing
does (only normalisation is left to the trainer), and ``labels`` (N,) normalised strings.

    python scripts/render_pool.py --out data/pool --shards 40 --per-shard 6000 --workers 2
    python scripts/render_pool.py --out data/val --split heldout --shards 1 --per-shard 2000

Fonts and backgrounds are the installed ones (scripts/install_synth_assets.sh) unless
``--fonts`` and ``--backgrounds`` name folders to draw from instead.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from crnn_onnx.config import CRNNConfig
from crnn_onnx.synth.backgrounds import BackgroundBank
from crnn_onnx.synth.dataset import synth_samples
from crnn_onnx.synth.fonts import discover_fonts
from crnn_onnx.synth.words import WordSource
from crnn_onnx.training.canvas import resize_and_pad


def render_shard(out: Path, split: str, index: int, count: int, seed_base: int,
                 compounds: float = 0.0, realism: float = 0.0, fonts: Path | None = None,
                 backgrounds: Path | None = None) -> str:
    path = out / f"{split}-{index:04d}.npz"
    if path.exists():
        return f"{path.name} exists"
    cv2.setNumThreads(1)
    config = CRNNConfig()
    images = np.empty((count, config.height, config.width, 3), np.uint8)
    labels = []
    start = time.time()
    words = WordSource(split=split, compounds=compounds)  # type: ignore[arg-type]
    font_files = discover_fonts(dirs=[str(fonts)]) if fonts is not None else None
    bank = BackgroundBank.from_dirs([str(backgrounds)]) if backgrounds is not None else None
    samples = synth_samples(count, split=split, seed=seed_base + index, words=words,  # type: ignore[arg-type]
                            realism=realism, fonts=font_files, backgrounds=bank)
    for i, sample in enumerate(samples):
        images[i] = resize_and_pad(sample.image, config)
        labels.append(sample.label)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=images, labels=np.array(labels))
    os.replace(tmp, path)
    return f"{path.name}: {count} in {time.time() - start:.0f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", choices=["train", "heldout"], default="train")
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--first", type=int, default=0, help="index of the first shard")
    parser.add_argument("--per-shard", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1000, help="shard i uses seed + i")
    parser.add_argument("--compounds", type=float, default=0.0,
                        help="share of CamelCase compounds (PayPal, SaiGon) among the texts")
    parser.add_argument("--realism", type=float, default=0.0,
                        help="share of crops drawn by the realistic scene renderer")
    parser.add_argument("--fonts", type=Path,
                        help="folder of fonts to draw with, whatever their split "
                             "(default: the installed fonts of --split)")
    parser.add_argument("--backgrounds", type=Path,
                        help="folder of photographs for --realism (default: the installed ones)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = [pool.submit(render_shard, args.out, args.split, i, args.per_shard, args.seed,
                              args.compounds, args.realism, args.fonts, args.backgrounds)
                for i in range(args.first, args.first + args.shards)]
        for job in jobs:
            print(job.result(), flush=True)


if __name__ == "__main__":
    main()
