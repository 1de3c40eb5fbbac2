"""``crnn-onnx benchmark``: what it measures and reports, on tiny inputs (never how fast)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime", reason="needs the cpu or gpu extra (onnxruntime)")

from crnn_onnx.cli import app
from crnn_onnx.errors import CRNNError
from crnn_onnx.perf.benchmark import run_benchmark
from crnn_onnx.perf.report import (
    BenchmarkReport,
    EngineTiming,
    PipelineReport,
    StageTiming,
    format_text,
)

runner = CliRunner()
# Narrow inputs: every timed run is a third of one at the model's width of 100.
FAST = {"seconds": 0.02, "warmup": 1, "ceilings": False, "width": 32}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    folder = tmp_path_factory.mktemp("words")
    rng = np.random.default_rng(0)
    for i in range(5):
        crop = rng.integers(0, 256, (int(rng.integers(20, 40)), int(rng.integers(50, 150)), 3),
                            dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i}.png"), crop)
    return folder


@pytest.fixture
def model(exported_model: Path, tmp_path: Path) -> Path:
    """A private copy, so that the engines' default neighbours (NAME.pth...) are this test's."""
    return Path(shutil.copy(exported_model, tmp_path / "crnn.onnx"))


@pytest.mark.slow  # times PyTorch, ONNX Runtime and the pipeline
def test_torch_and_ort_timed_on_the_same_inputs_with_pipeline(
    model: Path, upstream_checkpoint: Path, images: Path
) -> None:
    pytest.importorskip("torch", reason="the torch engine needs torch")
    report = run_benchmark(model, engines=["torch", "ort"], batch_sizes=[2, 1], ckpt=
                           upstream_checkpoint, images=images, startup=lambda image: 0.25,
                           **FAST)
    assert [(t.engine, t.batch) for t in report.timings] == [
        ("torch", 1), ("ort", 1), ("torch", 2), ("ort", 2)]
    for t in report.timings:
        assert t.width == 32 and t.runs >= 5 and 0 < t.median_ms <= t.p90_ms
        assert t.images_per_s == pytest.approx(t.batch * 1000 / t.median_ms)
    # Same weights on both sides: the engines really compute the same model.
    assert report.max_abs_diff["torch"] < 1e-4
    assert report.speedup("ort", 1, "torch") == pytest.approx(
        report.timing("torch", 1).median_ms / report.timing("ort", 1).median_ms)
    assert report.models == {"torch": str(upstream_checkpoint), "ort": str(model)}
    assert report.inputs.startswith("2 word images from")

    pipeline = report.pipeline
    assert pipeline is not None and pipeline.images == 5 and pipeline.batch == 2
    assert [s.stage for s in pipeline.stages] == [
        "image decode", "preprocessing", "inference", "CTC decoding"]
    assert all(s.ms_per_image > 0 for s in pipeline.stages) and pipeline.end_to_end_s > 0
    assert report.startup_s == 0.25  # the caller's timer, given the first image
    assert report.notes == ()


def test_missing_engines_are_skipped_with_a_note(model: Path) -> None:
    report = run_benchmark(model, engines=["torch", "ort", "ort-int8", "ort-fp16"],
                           batch_sizes=[1], **FAST)
    assert {t.engine for t in report.timings} == {"ort"}
    notes = " | ".join(report.notes)
    assert "crnn.int8.onnx not found" in notes and "crnn.fp16.onnx not found" in notes
    assert ("torch skipped: no checkpoint" in notes
            or "torch skipped: PyTorch is not installed" in notes)
    assert "pipeline and start-up skipped" in notes
    assert report.inputs.startswith("seeded standard-normal noise")
    assert report.pipeline is None and report.startup_s is None


@pytest.mark.slow  # quantizes and times the int8 neighbour
def test_int8_neighbour_is_found_and_compared(model: Path) -> None:
    # Any second model serves to check the wiring; a copy must give identical logits.
    shutil.copy(model, model.with_name("crnn.int8.onnx"))
    report = run_benchmark(model, engines=["ort", "ort-int8"], batch_sizes=[3], **FAST)
    assert report.models["ort-int8"].endswith("crnn.int8.onnx")
    assert report.max_abs_diff == {"ort-int8": 0.0}
    assert report.speedup("ort-int8", 3, "ort") is not None
    assert report.speedup("ort-int8", 3, "torch") is None


def test_bad_arguments(model: Path) -> None:
    with pytest.raises(CRNNError, match="unknown engine"):
        run_benchmark(model, engines=["tensorrt"], **FAST)
    with pytest.raises(CRNNError, match="batch sizes"):
        run_benchmark(model, batch_sizes=[0], **FAST)
    with pytest.raises(CRNNError, match="none of the engines"):
        run_benchmark(model, engines=["ort-int8"], **FAST)


def _report() -> BenchmarkReport:
    return BenchmarkReport(
        machine="Test CPU, 2 CPUs", versions={"onnxruntime": "1.0"}, threads=2, width=100,
        inputs="noise", models={"torch": "m.pth", "ort": "m.onnx"},
        timings=(EngineTiming("torch", 8, 100, 80.0, 90.0, 10),
                 EngineTiming("ort", 8, 100, 40.0, 44.0, 20)),
        pipeline=PipelineReport(
            images=100, batch=8, source="dir",
            stages=(StageTiming("image decode", 0.2), StageTiming("preprocessing", 0.1),
                    StageTiming("inference", 5.0), StageTiming("CTC decoding", 0.05)),
            end_to_end_s=0.625),
        startup_s=0.5, background_load=0.03, notes=("a note",),
        ceilings={"fp32": 400e9}, flops_per_image=1e9,
    )


def test_report_arithmetic_and_text() -> None:
    report = _report()
    assert report.speedup("ort", 8, "torch") == 2.0
    assert report.timing("ort", 8).images_per_s == 200.0
    assert report.pipeline.model_only_images_per_s == pytest.approx(200.0)
    assert report.pipeline.end_to_end_images_per_s == pytest.approx(160.0)
    assert report.pipeline.efficiency == pytest.approx(0.8)
    # 200 images/s x 1 GFLOP against a 400 GFLOP/s fp32 ceiling: half of it
    assert report.share_of_ceiling(report.timing("ort", 8)) == pytest.approx(0.5)
    text = format_text(report)
    assert ("ort                 8      40.00    44.00     200.0     2.00x   1.00x      50%"
            in text)
    assert "fp32 400 GFLOP/s (≈ 400 images/s); the model needs 1.00 GFLOP per image" in text
    assert "160.0 images/s, 80% of model-only 200.0 images/s" in text
    assert "start to exit: 0.50 s" in text and "used 3% of the CPUs" in text
    assert text.endswith("note: a note")


def test_report_as_json() -> None:
    data = json.loads(json.dumps(_report().as_dict()))
    ort = data["timings"][1]
    assert ort["engine"] == "ort" and ort["speedup_vs_torch"] == 2.0
    assert ort["images_per_s"] == 200.0 and ort["share_of_ceiling"] == pytest.approx(0.5)
    assert data["pipeline"]["efficiency"] == pytest.approx(0.8)


def test_cli_benchmark_json(model: Path) -> None:
    result = runner.invoke(app, ["benchmark", "-m", str(model), "--engines", "ort",
                                 "--batch-sizes", "1,2", "--seconds", "0.02", "--warmup", "0",
                                 "--width", "32", "--no-ceilings", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(t["engine"], t["batch"]) for t in data["timings"]] == [("ort", 1), ("ort", 2)]


def test_cli_benchmark_usage_errors(model: Path) -> None:
    bad_engine = runner.invoke(app, ["benchmark", "-m", str(model), "--engines", "ort,trt"])
    assert bad_engine.exit_code == 2 and "unknown engine(s) trt" in bad_engine.stderr
    bad_sizes = runner.invoke(app, ["benchmark", "-m", str(model), "--batch-sizes", "1,x"])
    assert bad_sizes.exit_code == 2
    missing = runner.invoke(app, ["benchmark", "-m", str(model.with_name("no.onnx"))])
    assert missing.exit_code == 1 and missing.stderr.startswith("error: model file")


@pytest.mark.slow  # it measures the machine: square GEMMs of 2048, the model's FLOPs counted
def test_the_field_is_measured_against_the_machines_ceilings(model: Path) -> None:
    """GEMM rates (with PyTorch), the model's FLOPs, each timing's arithmetic and share; an
    engine this machine cannot run is a note, never a failure."""
    pytest.importorskip("torch", reason="the ceilings are measured with PyTorch")
    report = run_benchmark(model, engines=["ort", "torch-bf16", "openvino-int8"],
                           batch_sizes=[2], seconds=0.02, warmup=1)
    assert report.ceilings["fp32"] > 1e9
    assert report.flops_per_image == pytest.approx(1.27e9, rel=0.05)
    (ort,) = [t for t in report.timings if t.engine == "ort"]
    share = report.share_of_ceiling(ort)
    assert ort.precision == "fp32" and share is not None and share > 0
    notes = " | ".join(report.notes)
    assert "openvino-int8 skipped:" in notes and "crnn.int8.onnx not found" in notes
    if "bf16" not in report.ceilings:
        assert "torch-bf16 skipped: this CPU has neither AMX nor AVX512-BF16" in notes


@pytest.mark.slow  # times both engines and the pipeline
def test_cli_benchmark_runs_the_pipeline_on_the_engine_asked_for(model: Path,
                                                                images: Path) -> None:
    pytest.importorskip("openvino", reason="needs the openvino extra")
    result = runner.invoke(app, ["benchmark", "-m", str(model), "--engines", "ort,openvino",
                                 "--batch-sizes", "2", "--seconds", "0.02", "--warmup", "0",
                                 "--width", "32", "--images", str(images), "--startup-runs", "0",
                                 "--no-ceilings", "--engine", "openvino", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["pipeline"]["engine"] == "openvino, fp32"
    assert {t["engine"] for t in data["timings"]} == {"ort", "openvino"}
    assert data["max_abs_diff"]["openvino"] < 1e-4
