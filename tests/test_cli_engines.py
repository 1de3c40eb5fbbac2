"""--engine and --precision on every command that runs a model."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crnn_onnx.cli import app

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
runner = CliRunner()


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engine-eval") / "labels.tsv"
    path.write_text("".join(f"{p}\t{p.stem}\n" for p in sorted(SAMPLES.glob("*.png"))),
                    encoding="utf-8")
    return path


@pytest.mark.slow  # predict and eval on both engines
def test_predict_and_eval_read_the_same_on_both_engines(labels: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("openvino", reason="needs the openvino extra")
    env = {"CRNN_ONNX_CACHE_DIR": str(tmp_path / "cache")}
    caplog.set_level(logging.INFO, logger="crnn_onnx")
    read = {}
    for engine in ("onnxruntime", "openvino"):
        result = runner.invoke(app, ["predict", str(SAMPLES), "--engine", engine, "-f",
                                     "jsonl"], env=env)
        assert result.exit_code == 0, result.output
        read[engine] = [json.loads(line) for line in result.stdout.splitlines()]
        evaluated = runner.invoke(app, ["eval", str(labels), "--engine", engine, "-f", "json"],
                                  env=env)
        assert json.loads(evaluated.stdout)["correct"] == 6, evaluated.output
    assert [r["text"] for r in read["openvino"]] == [r["text"] for r in read["onnxruntime"]]
    for a, b in zip(read["openvino"], read["onnxruntime"], strict=True):
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)
    assert any(r.getMessage().startswith("running on OpenVINO") and
               r.getMessage().endswith("CPU, fp32") for r in caplog.records)


def test_bf16_is_said_in_the_info_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("openvino", reason="needs the openvino extra")
    from crnn_onnx.inference.engines.cpu_features import BF16_FLAGS, cpu_flags

    try:
        has_bf16 = bool(cpu_flags() & set(BF16_FLAGS))
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    caplog.set_level(logging.INFO, logger="crnn_onnx")
    result = runner.invoke(app, ["predict", str(SAMPLES / "amends.png"), "--engine", "openvino",
                                 "--precision", "bf16"],
                           env={"CRNN_ONNX_CACHE_DIR": str(tmp_path / "cache")})
    if has_bf16:
        assert result.exit_code == 0, result.output
        assert "amends" in result.stdout
        assert any(r.getMessage().endswith("CPU, bf16") for r in caplog.records)
    else:
        assert result.exit_code == 1
        assert "needs a CPU with AMX or AVX512-BF16" in result.stderr


def test_openvino_without_its_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    result = runner.invoke(app, ["predict", str(SAMPLES / "amends.png"), "--engine", "openvino"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: the OpenVINO engine needs openvino: "
                                     "pip install 'crnn-onnx[openvino]'")
