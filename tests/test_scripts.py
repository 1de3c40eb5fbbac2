"""The CI shell scripts in scripts/, run as a CI job runs them: bash, subprocess, exit codes.

Each script documents its exit codes in its header; these tests hold them to it, with the
test model (conftest) and a few synthetic crops.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions
from crnn_onnx.inference.options import PredictorOptions
from crnn_onnx.inference.predictor import Predictor

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
BASH = shutil.which("bash")

pytestmark = [pytest.mark.slow,  # bash and the CLI in subprocesses
              pytest.mark.skipif(BASH is None, reason="needs bash")]


def run_script(name: str, *args: str | Path, env: dict[str, str] | None = None,
               path: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run scripts/NAME with crnn-onnx (this interpreter's) first on PATH, no stdin."""
    environ = {**os.environ, **(env or {})}
    environ["PATH"] = path if path is not None else (
        f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    assert BASH is not None
    return subprocess.run(
        [BASH, str(SCRIPTS / name), *map(str, args)], env=environ, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four word crops in a folder (one in a subfolder, one with a space in its name)."""
    folder = tmp_path_factory.mktemp("crops")
    (folder / "sub").mkdir()
    for i, (name, word) in enumerate([("a.png", "cat"), ("b c.png", "road"),
                                      ("sub/d.png", "seven"), ("e.jpg", "x1")]):
        image = np.full((32, 24 + 18 * len(word), 3), 225, np.uint8)
        cv2.putText(image, word, (3, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (30, 30, 30 + i), 2)
        cv2.imwrite(str(folder / name), image)
    return folder


@pytest.mark.parametrize("name", ["export_and_verify.sh", "predict_folder.sh", "gate_model.sh"])
def test_scripts_are_strict_executable_and_document_exit_codes(name: str) -> None:
    script = SCRIPTS / name
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "# Exit codes:" in text
    assert os.access(script, os.X_OK)
    assert run_script(name).returncode == 2  # no arguments: usage on stderr


def test_missing_crnn_onnx_is_127(tmp_path: Path, crops: Path) -> None:
    empty_path = f"{tmp_path}{os.pathsep}/usr/bin{os.pathsep}/bin"
    if shutil.which("crnn-onnx", path=empty_path):
        pytest.skip("crnn-onnx is installed system-wide")
    done = run_script("predict_folder.sh", crops, tmp_path / "out.jsonl", path=empty_path)
    assert done.returncode == 127
    assert "crnn-onnx not found" in done.stderr


# --- export_and_verify.sh ---------------------------------------------------------------


def test_export_and_verify(upstream_checkpoint: Path, default_config, tmp_path: Path) -> None:
    out = tmp_path / "model dir" / "crnn.onnx"
    out.parent.mkdir()
    done = run_script("export_and_verify.sh", upstream_checkpoint, out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{out}\n"  # only the path on stdout
    assert "max diff" in done.stderr
    assert OrtEngine(out, OrtOptions(device="cpu")).spec.config == default_config


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["missing.pth"], {}, 2, "is not a file"),  # no such checkpoint
        (["garbage.pth"], {}, 1, "not a PyTorch checkpoint"),  # export fails
        (["garbage.pth"], {"CRNN_EXPORT_ARGS": "--no-verify"}, 2, "must not contain"),
        (["a", "b", "c"], {}, 2, "usage"),  # too many arguments
    ],
)
def test_export_and_verify_failures(tmp_path: Path, args: list[str], env: dict[str, str],
                                    code: int, message: str) -> None:
    (tmp_path / "garbage.pth").write_text("not a checkpoint")
    done = run_script("export_and_verify.sh", *[tmp_path / a for a in args], env=env)
    assert done.returncode == code
    assert message in done.stderr
    assert done.stdout == ""
    assert not list(tmp_path.glob("*.onnx"))  # nothing written


# --- predict_folder.sh ------------------------------------------------------------------


def test_predict_folder(exported_model: Path, crops: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    done = run_script("predict_folder.sh", crops, out, exported_model)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "4 inputs: 4 recognised, 0 failed" in done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    names = ["a.png", "b c.png", "e.jpg", "sub/d.png"]
    assert [r["path"] for r in records] == [str(crops / n) for n in names]
    predictor = Predictor(exported_model, PredictorOptions(device="cpu"))
    expected = predictor.predict([crops / n for n in names])
    assert [r["text"] for r in records] == [p.text for p in expected]


def test_predict_folder_with_unreadable_images_is_3(exported_model: Path, crops: Path,
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(crops, folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out.jsonl"
    done = run_script("predict_folder.sh", folder, out, exported_model)
    assert done.returncode == 3, done.stderr
    assert "5 inputs: 4 recognised, 1 failed" in done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["error"] is not None for r in records] == [False, False, True, False, False]


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("missing model", 1, "not found"),  # the run fails as a whole
        ("output folder missing", 1, "does not exist"),
        ("not a folder", 2, "is not a folder"),
        ("forbidden option", 2, "must not contain --quiet"),
    ],
)
def test_predict_folder_failures_keep_the_previous_results(
    exported_model: Path, crops: Path, tmp_path: Path, case: str, code: int, message: str
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    folder, model, env = crops, exported_model, {}
    if case == "missing model":
        model = tmp_path / "missing.onnx"
    elif case == "output folder missing":
        out = tmp_path / "nope" / "out.jsonl"
    elif case == "not a folder":
        folder = crops / "a.png"
    else:
        env = {"CRNN_PREDICT_ARGS": "--batch-size 2 --quiet"}
    done = run_script("predict_folder.sh", folder, out, model, env=env)
    assert done.returncode == code
    assert message in done.stderr
    assert (tmp_path / "out.jsonl").read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


# --- gate_model.sh ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def labels(exported_model: Path, crops: Path) -> dict[str, Path]:
    """Label files the test model reads perfectly ("own") and not at all ("wrong")."""
    names = ["a.png", "b c.png", "sub/d.png", "e.jpg"]
    predictor = Predictor(exported_model, PredictorOptions(device="cpu"))
    texts = [p.text for p in predictor.predict([crops / n for n in names])]
    own, wrong = crops / "own.tsv", crops / "wrong.tsv"
    own.write_text("".join(f"{n}\t{t}\n" for n, t in zip(names, texts, strict=True)))
    wrong.write_text("".join(f"{n}\t{t}zz\n" for n, t in zip(names, texts, strict=True)))
    return {"own": own, "wrong": wrong}


def test_gate_passes(exported_model: Path, labels: dict[str, Path]) -> None:
    done = run_script("gate_model.sh", labels["own"], "1", exported_model)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["word_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("which", "min_acc", "code", "message"),
    [
        ("wrong", "0.5", 1, "below --min-accuracy"),  # the gate closes; report on stdout
        ("missing", "0.5", 3, "could not evaluate"),  # no labels file
        ("own", "1.5", 2, "MIN_ACC must be a number from 0 to 1"),
        ("own", "high", 2, "MIN_ACC must be a number from 0 to 1"),
    ],
)
def test_gate_failures(exported_model: Path, labels: dict[str, Path], tmp_path: Path,
                       which: str, min_acc: str, code: int, message: str) -> None:
    path = labels.get(which, tmp_path / "missing.tsv")
    done = run_script("gate_model.sh", path, min_acc, exported_model)
    assert done.returncode == code
    assert message in done.stderr
    if code == 1:
        assert json.loads(done.stdout)["word_accuracy"] == 0.0
    else:
        assert done.stdout == ""


def test_gpu_check_runs_its_matrix_on_the_cpu() -> None:
    """The GPU check's own logic, on the CPU: export the fp16 twin, time every cell, print
    the table (the CUDA run itself needs a GPU)."""
    pytest.importorskip("torch", reason="the fp16 export needs torch")
    done = run_script("gpu_check.sh", "--cpu")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| fp")]
    # fp32 and fp16, IO binding on and off, two algorithm searches, batches 1 and 4
    assert len(rows) == 2 * 2 * 2 * 2
    assert all(float(row.split("|")[-2]) > 0 for row in rows)


@pytest.mark.parametrize(("args", "code"), [(["--gpu"], 2), ([], 2)])
def test_gpu_check_refuses_bad_usage_and_a_machine_without_gpu(args: list[str],
                                                               code: int) -> None:
    if not args and shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU")
    done = run_script("gpu_check.sh", *args)
    assert done.returncode == code
    assert done.stderr.strip().splitlines()[-1].startswith(("usage:", f"{SCRIPTS}"))
