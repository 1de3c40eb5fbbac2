"""The retraining chain of docs/training.md on a tiny run: render_pool.py renders shards,
``crnn-onnx finetune`` trains on real crops with the shards replayed and validates on a
rendered held-out shard, and ship_model.py turns its best checkpoint into a verified model
that ``crnn-onnx eval`` reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="training needs torch")

pytestmark = pytest.mark.slow  # whole trainer processes, each importing torch

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _script(name: str, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The children inherit conftest's OMP_WAIT_POLICY through os.environ.
    return subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def _real(folder: Path, count: int) -> None:
    """A folder of real-crop-like images of several sizes with a labels.tsv."""
    folder.mkdir(parents=True)
    lines = []
    for i in range(count):
        cv2.imwrite(str(folder / f"word_{i}.png"),
                    np.full((20 + i % 7, 40 + 9 * (i % 5), 3), 40 * (i % 6), np.uint8))
        lines.append(f"word_{i}.png\tWord {i}!")
    (folder / "labels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, dejavu_fonts: list[Path],
         background_folder: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train-data")
    renders = {"pool": ["--realism", "1.0"], "val": ["--split", "heldout"]}
    for name, args in renders.items():
        out = root / name
        # The fonts and photographs of conftest: what a new machine has, or made here.
        done = _script("render_pool.py", "--out", out, "--shards", "1", "--per-shard", "24",
                       "--workers", "1", "--fonts", dejavu_fonts[0].parent,
                       "--backgrounds", background_folder, *args, cwd=root)
        assert done.returncode == 0, done.stderr
    _real(root / "real", 40)
    return {name: root / name for name in ("pool", "val", "real")}


def _finetune(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crnn_onnx", "finetune", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_finetune_trains_on_real_crops_with_rendered_shards_replayed_and_ships(
        data: dict[str, Path], upstream_checkpoint: Path, tmp_path: Path,
        default_config) -> None:
    from crnn_onnx.export.checkpoint import load_checkpoint

    run = tmp_path / "run"
    done = _finetune(data["real"], "--replay-data", data["pool"], "--replay", "0.5",
                     "--replay-renders", "0", "--val", data["val"], "--init",
                     upstream_checkpoint, "--out", run, "--steps", "4", "--eval-every", "2",
                     "--batch-size", "8", "--warmup", "1", "--threads", "1", "--precision",
                     "fp32", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "replay: 50% of every batch from 24 general crops" in done.stderr
    assert "validation: 24 crops from" in done.stderr  # the rendered held-out shard
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "eval"] == [2, 4]
    # The best weights load as an upstream-format checkpoint of the shipped architecture.
    model = load_checkpoint(run / "best.pth", default_config)
    assert sum(p.numel() for p in model.parameters()) > 8_000_000

    weights = tmp_path / "weights"
    shipped = _script("ship_model.py", run / "best.pth", "--out", weights,
                      "--labels", data["real"] / "labels.tsv", cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    assert {p.name for p in weights.iterdir()} == {"crnn.pth", "crnn.yaml", "crnn.onnx"}
    assert "max diff" in shipped.stdout and "word accuracy" in shipped.stdout.lower()
    # The run's config ships with it: the model reads at the widths it was trained at.
    from crnn_onnx.config import load_config
    from crnn_onnx.inspection.model_info import read_model_info

    assert load_config(weights / "crnn.yaml").width_policy == "bucket"
    assert read_model_info(weights / "crnn.onnx").width_policy == "bucket"
