#!/usr/bin/env python3
"""Turn a training run's best checkpoint into the shipped model under weights/.

Writes ``weights/crnn.pth`` (upstream format, fp16 storage: loading restores fp32),
``weights/crnn.yaml`` (its config: ``--config``, by default the run's ``config.yaml`` beside
the checkpoint, which says the width policy it was trained at, else ``configs/crnn.yaml``)
and ``weights/crnn.onnx`` (exported from that very file and verified against it), then
prints the held-out evaluation if a labels file is given.

    python scripts/ship_model.py runs/crnn/best.pth --labels data/heldout500/labels.tsv
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from crnn_onnx.config import load_config
from crnn_onnx.export.checkpoint import load_checkpoint, save_checkpoint
from crnn_onnx.export.exporter import export_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "weights")
    parser.add_argument("--config", type=Path, help="its YAML config; default: config.yaml "
                        "beside the checkpoint, else configs/crnn.yaml")
    parser.add_argument("--labels", type=Path, help="labels.tsv to evaluate the result on")
    args = parser.parse_args()

    beside = args.checkpoint.parent / "config.yaml"
    config_path = args.config or (beside if beside.is_file() else ROOT / "configs" / "crnn.yaml")
    config = load_config(config_path)
    source = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = load_checkpoint(args.checkpoint, config)
    extra = {k: v for k, v in source.items()
             if k in ("best_acc", "step") and isinstance(v, (int, float))}
    ckpt = save_checkpoint(model, args.out / "crnn.pth", epoch=int(source.get("epoch", 0)),
                           extra=extra, half=True)
    shutil.copyfile(config_path, args.out / "crnn.yaml")
    report = export_checkpoint(ckpt, config, args.out / "crnn.onnx")
    print(f"{ckpt}: {ckpt.stat().st_size / 1e6:.1f} MB; {report.output}: "
          f"{report.size_bytes / 1e6:.1f} MB, max diff {report.max_diff:.2e}")
    if args.labels:
        subprocess.run([sys.executable, "-m", "crnn_onnx", "eval", str(args.labels),
                        "--model", str(report.output)], check=False)


if __name__ == "__main__":
    main()
