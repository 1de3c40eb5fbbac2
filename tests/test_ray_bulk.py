"""``crnn-onnx bulk`` and crnn_onnx.scale.ray_bulk on a small local Ray instance.

Starting Ray takes seconds on a small machine, so the module shares one instance (2 CPUs, no
dashboard), started on first use and shut down at the end; each Ray run starts its actors
(ONNX Runtime session per actor) anew, so the tests keep the number of runs small.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crnn_onnx.cli import app
from crnn_onnx.errors import CRNNError

runner = CliRunner()
pytestmark = [
    pytest.mark.slow,  # a Ray cluster and subprocesses
    # Ray Data's own DataContext touches its deprecated settings when it is copied.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
]

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


@pytest.fixture(scope="module")
def ray_local() -> Iterator[object]:
    ray = pytest.importorskip("ray", reason="needs the ray extra")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning",
             object_store_memory=128 * 2**20)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Word crops in a folder and a subfolder, plus corrupt files: empty, text, truncated."""
    folder = tmp_path_factory.mktemp("bulk-words")
    (folder / "sub").mkdir()
    for i, word in enumerate(WORDS):
        image = np.full((32, 20 + 14 * len(word), 3), 235, np.uint8)
        cv2.putText(image, word, (3, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (25, 25, 25), 2)
        where = folder / "sub" if i % 3 == 2 else folder
        cv2.imwrite(str(where / f"{i:02d}-{word}.png"), image)
    (folder / "03-empty.png").write_bytes(b"")
    (folder / "sub" / "05-text.png").write_text("not an image")
    whole = (folder / "00-alpha.png").read_bytes()
    (folder / "06-truncated.png").write_bytes(whole[: len(whole) // 2])
    return folder


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_bulk_jsonl_is_byte_identical_to_predict(ray_local: object, words: Path,
                                                 exported_model: Path, tmp_path: Path) -> None:
    # Several inputs, a missing one among them; batch size 2 spreads them over both actors
    # in many small calls, so the order of the results is really put to the test. A file
    # name that is not UTF-8 (Linux allows it) must come out as predict writes it.
    odd = tmp_path / os.fsdecode(b"caf\xe9.png")
    odd.write_bytes((words / "01-bravo.png").read_bytes())
    args = [str(words), str(tmp_path / "missing.png"), str(words / "sub" / "02-charlie.png"),
            str(odd)]
    local, bulk = tmp_path / "predict.jsonl", tmp_path / "bulk.jsonl"
    expected = runner.invoke(app, ["predict", *args, "--model", str(exported_model),
                                   "--format", "jsonl", "--output", str(local)])
    result = runner.invoke(app, ["bulk", *args, "--model", str(exported_model),
                                 "--output", str(bulk), "--workers", "2", "--batch-size", "2"])
    assert expected.exit_code == 1, expected.stderr  # corrupt inputs: exit 1, as predict
    assert result.exit_code == 1, result.stderr
    assert bulk.read_bytes() == local.read_bytes()
    records = _jsonl(bulk)
    assert len(records) == 14  # the folder's 8 words and 3 corrupt files, missing, charlie, odd
    assert records[-1]["text"] == records[1]["text"]  # the odd name holds bravo's image
    failed = [r for r in records if r["error"] is not None]
    assert {Path(str(r["path"])).name for r in failed} == {
        "03-empty.png", "05-text.png", "06-truncated.png", "missing.png"}
    assert all(r["text"] is None and r["confidence"] is None for r in failed)
    assert "14 inputs: 10 recognised, 4 failed" in result.stderr
    assert "on 2 workers" in result.stderr


def test_bulk_reads_paths_from_stdin(ray_local: object, words: Path, exported_model: Path,
                                     tmp_path: Path) -> None:
    listed = f"{words / 'sub' / '02-charlie.png'}\n\n{tmp_path / 'missing.png'}\n"
    out = tmp_path / "stdin.jsonl"
    result = runner.invoke(app, ["bulk", "-", "--model", str(exported_model), "--output",
                                 str(out), "--workers", "1"], input=listed)
    assert result.exit_code == 1, result.stderr  # the missing file
    records = _jsonl(out)
    assert [Path(r["path"]).name for r in records] == ["02-charlie.png", "missing.png"]
    assert records[0]["error"] is None and records[1]["error"] == "no such file or directory"


def test_bulk_runs_the_openvino_engine_too(ray_local: object, words: Path,
                                           exported_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="needs the openvino extra")
    crop = str(words / "sub" / "02-charlie.png")
    out = tmp_path / "ov.jsonl"
    result = runner.invoke(app, ["bulk", crop, "--model", str(exported_model), "--output",
                                 str(out), "--workers", "1", "--engine", "openvino"],
                           env={"CRNN_ONNX_CACHE_DIR": str(tmp_path / "cache")})
    assert result.exit_code == 0, result.stderr
    expected = runner.invoke(app, ["predict", crop, "--model", str(exported_model), "-f",
                                   "jsonl"])
    (got,) = _jsonl(out)
    (want,) = map(json.loads, expected.stdout.splitlines())
    assert got["text"] == want["text"]
    assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-4)


def test_bulk_parquet_from_file_uris_holds_the_same_records(
    ray_local: object, words: Path, exported_model: Path, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from crnn_onnx.inference.options import PredictorOptions
    from crnn_onnx.inference.predictor import Predictor
    from crnn_onnx.scale.ray_bulk import bulk_predict

    output = tmp_path / "bulk.parquet"
    report = bulk_predict([words.as_uri(), (tmp_path / "nothing-here").as_uri()], output,
                          model_path=exported_model, fmt="parquet",
                          options=PredictorOptions(batch_size=3, threads=1), workers=2)
    rows = pq.read_table(output).to_pylist()
    assert (report.total, report.failed, report.workers) == (len(rows), 4, 2)
    assert rows[-1] == {"path": (tmp_path / "nothing-here").as_uri(), "text": None,
                        "confidence": None, "error": "no such file or directory"}
    # A folder URI is listed recursively in sorted order; the records are predict's own.
    uris = [row["path"] for row in rows[:-1]]
    assert uris == sorted(uris)
    local = {
        Path(p.path).as_uri(): p.record()
        for p in Predictor(exported_model, PredictorOptions(device="cpu")).predict_paths([words])
    }
    assert len(local) == len(uris)
    for row in rows[:-1]:
        assert row == {**local[row["path"]], "path": row["path"]}


def test_bulk_refuses_more_workers_than_the_cluster_holds(
    ray_local: object, words: Path, exported_model: Path, tmp_path: Path
) -> None:
    from crnn_onnx.scale.ray_bulk import bulk_predict

    with pytest.raises(CRNNError, match=r"3 worker\(s\) x \(1 CPU, 0 GPU\) do not fit"):
        bulk_predict([words], tmp_path / "out.jsonl", model_path=exported_model, workers=3)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_worker_failure_surfaces_as_the_toolkit_error(
    ray_local: object, words: Path, exported_model: Path, tmp_path: Path
) -> None:
    # The driver checks the model on the CPU; CUDA is only asked for inside the actors,
    # where this CPU-only onnxruntime refuses it. Ray passes that on as a long remote
    # traceback: the user gets the session's own one-line message, and no file.
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the actors would not fail")
    from crnn_onnx.inference.options import PredictorOptions
    from crnn_onnx.scale.ray_bulk import bulk_predict

    with pytest.raises(CRNNError) as caught:
        bulk_predict([words], tmp_path / "out.jsonl", model_path=exported_model,
                     options=PredictorOptions(device="cuda", threads=1), workers=1,
                     gpus_per_worker=0.0, progress=False)
    assert str(caught.value).startswith("device='cuda': this onnxruntime build")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_bulk_bad_model_is_a_one_line_error(ray_local: object, words: Path,
                                            tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    result = runner.invoke(app, ["bulk", str(words), "--model", str(bad),
                                 "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert not (tmp_path / "out.jsonl").exists()


def test_bulk_without_ray_says_which_extra_to_install(words: Path, exported_model: Path,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    result = runner.invoke(app, ["bulk", str(words), "--model", str(exported_model),
                                 "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 1
    assert result.stderr == "error: bulk recognition needs Ray: pip install 'crnn-onnx[ray]'\n"


def test_cli_and_library_import_without_ray_or_pyarrow() -> None:
    code = (
        "import sys\n"
        "sys.modules['ray'] = sys.modules['pyarrow'] = None\n"
        "import crnn_onnx.cli, crnn_onnx.scale.ray_bulk, crnn_onnx.scale.triton\n"
        "sys.argv = ['crnn-onnx', '--help']\n"
        "try:\n"
        "    crnn_onnx.cli.main()\n"
        "except SystemExit as stop:\n"
        "    print('exit', stop.code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "bulk" in done.stdout and "triton-repo" in done.stdout
    assert "exit 0" in done.stdout
