#!/usr/bin/env python3
"""A plain PyTorch recognition loop, the baseline the engines are compared with as whole
processes: read every image with OpenCV, preprocess as upstream does, run the checkpoint in
eager mode (fp32, or bf16 autocast with channels-last convolutions), decode greedily, print.

    python scripts/torch_pipeline.py weights/crnn.pth DIR [--bf16] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from crnn_onnx.config import CRNNConfig
from crnn_onnx.export.eager import eager_runner
from crnn_onnx.inference.decoder import ctc_greedy_decode
from crnn_onnx.inference.preprocess import preprocess


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    config = CRNNConfig()
    run = eager_runner(args.ckpt, config, args.threads, bf16=args.bf16)
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in {".png", ".jpg"})
    for start in range(0, len(files), args.batch_size):
        chunk = files[start:start + args.batch_size]
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in chunk]
        batch = np.stack([preprocess(image, config) for image in images])
        for path, decoded in zip(chunk, ctc_greedy_decode(run(batch), config.charset),
                                 strict=True):
            sys.stdout.write(f"{path}\t{decoded.text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
