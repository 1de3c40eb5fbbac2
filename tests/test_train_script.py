"""The retraining chain of docs/training.md on a tiny run: render_pool.py renders shards,
train.py trains on them and on real crops, writes a checkpoint the toolkit loads and resumes
where it stopped, ship_model.py turns the result into a verified model that ``crnn-onnx eval``
reads; train.py refuses bad inputs in one line without leaving a run folder behind."""

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


def _train(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _script("train.py", "--threads", "1", "--batch-size", "8", "--warmup", "1", *args,
                   cwd=cwd)


def _events(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "train.log").read_text().splitlines()]


def test_a_run_trains_on_rendered_pools_and_real_crops_resumes_and_ships(
        data: dict[str, Path], upstream_checkpoint: Path, tmp_path: Path,
        default_config) -> None:
    from crnn_onnx.export.checkpoint import load_checkpoint

    run = tmp_path / "run"
    common = ["--pool", data["pool"], "--val", data["val"], "--real", data["real"],
              "--real-share", "0.5", "--run", run, "--eval-every", "2"]
    first = _train(*common, "--total-steps", "4", "--init", upstream_checkpoint, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    events = _events(run)
    real = next(e for e in events if e.get("event") == "real")
    assert real["train"] + real["val"] == 40 and real["val"] > 0
    assert [e["step"] for e in events if e.get("event") == "eval"] == [2, 4]
    assert events[-1] == {**events[-1], "event": "done", "step": 4}
    # The best weights load as an upstream-format checkpoint of the shipped architecture.
    model = load_checkpoint(run / "best.pth", default_config)
    assert sum(p.numel() for p in model.parameters()) > 8_000_000
    assert (run / "last.pth").is_file() and not (run / "last.tmp").exists()

    again = _train(*common, "--total-steps", "6", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    resumed = _events(run)[len(events):]
    assert next(e for e in resumed if e.get("event") == "resume")["step"] == 4
    assert [e["step"] for e in resumed if e.get("event") == "eval"] == [6]

    weights = tmp_path / "weights"
    shipped = _script("ship_model.py", run / "best.pth", "--out", weights,
                      "--labels", data["real"] / "labels.tsv", cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    assert {p.name for p in weights.iterdir()} == {"crnn.pth", "crnn.yaml", "crnn.onnx"}
    assert "max diff" in shipped.stdout and "word accuracy" in shipped.stdout.lower()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--pool", "missing", "is not a folder of shards"),
        ("--val", "empty", "no shards (*.npz) in the validation set"),
        ("--real", "empty", "labels.tsv"),
        ("--init", "model.pth", "checkpoint"),
    ],
)
def test_bad_inputs_are_one_line_and_leave_no_run_folder(
        data: dict[str, Path], tmp_path: Path, flag: str, value: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "model.pth").write_text("not a checkpoint")
    args: dict[str, Path] = {"--pool": data["pool"], "--val": data["val"],
                             "--real": data["real"], flag: tmp_path / value}
    run = tmp_path / "run"
    done = _train(*(x for pair in args.items() for x in pair), "--run", run,
                  "--total-steps", "1", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("train.py: ")
    assert message in done.stderr
    assert not run.exists()
