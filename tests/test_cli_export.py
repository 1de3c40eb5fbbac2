"""``crnn-onnx export`` through Typer's CliRunner: exit codes, stdout summary, stderr errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch", reason="needs the export extra (torch)")
onnx = pytest.importorskip("onnx", reason="needs the export extra (onnx)")
pytest.importorskip("onnxruntime", reason="needs the cpu or gpu extra (onnxruntime)")

from crnn_onnx.cli import app  # noqa: E402
from crnn_onnx.export import exporter as exporter_module  # noqa: E402
from crnn_onnx.export.model import CRNN  # noqa: E402

runner = CliRunner()


def _assert_one_line_error(result, *fragments: str) -> None:
    """Exit 1, nothing on stdout, exactly one ``error: ...`` line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def ckpt(upstream_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of the upstream checkpoint, so outputs beside it stay in this test."""
    return Path(shutil.copy(upstream_checkpoint, tmp_path / "crnn_best.pth"))


@pytest.mark.slow  # a static export verified at every batch size
def test_static_export_with_verification(ckpt: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "model.onnx"
    result = runner.invoke(app, ["export", "--ckpt", str(ckpt), "--output", str(output),
                                 "--static"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = dict(line.split(None, 1) for line in result.stdout.replace("max diff", "max_diff")
                 .splitlines())
    assert lines["exported"] == str(output)
    assert lines["opset"] == "17"
    assert lines["size"].endswith(" MB") and float(lines["size"].split()[0]) > 30
    assert lines["shapes"] == "static (1, 3, 32, 100)"
    assert lines["max_diff"].endswith("over 1 input shape (atol 0.0001)")
    assert float(lines["max_diff"].split()[0]) <= 1e-4
    assert lines["time"].endswith(" s")
    proto = onnx.load(str(output), load_external_data=False)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 32, 100]
    assert sorted(p.name for p in output.parent.iterdir()) == ["model.onnx"]


@pytest.mark.slow  # a whole export for the output's name
def test_default_output_is_ckpt_with_onnx_suffix_and_no_verify(ckpt: Path) -> None:
    result = runner.invoke(app, ["export", "--ckpt", str(ckpt), "--no-verify", "--opset", "18"])
    assert result.exit_code == 0, result.output
    output = ckpt.with_suffix(".onnx")
    assert output.is_file()
    assert f"exported  {output}" in result.stdout
    assert "max diff  not verified (--no-verify)" in result.stdout
    assert "shapes    dynamic (batch, 3, 32, width)" in result.stdout
    assert "opset     18" in result.stdout
    dims = onnx.load(str(output), load_external_data=False).graph.input[0].type.tensor_type
    assert [d.dim_param or d.dim_value for d in dims.shape.dim] == ["batch", 3, 32, "width"]


def test_missing_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    result = runner.invoke(app, ["export", "--ckpt", str(missing)])
    _assert_one_line_error(result, "not found", "nope.pth")
    assert list(tmp_path.iterdir()) == []


def test_garbage_checkpoint(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 not a checkpoint" * 50)
    result = runner.invoke(app, ["export", "--ckpt", str(garbage)])
    _assert_one_line_error(result, "garbage.pth", "not a")
    assert [p.name for p in tmp_path.iterdir()] == ["garbage.pth"]


def test_wrong_class_count(tmp_path: Path) -> None:
    path = tmp_path / "63.pth"
    torch.save({"model": CRNN(63).state_dict(), "epoch": 1}, path)
    result = runner.invoke(app, ["export", "--ckpt", str(path)])
    _assert_one_line_error(result, "has 63 classes", "gives 37 (36 characters + blank)")
    assert not path.with_suffix(".onnx").exists()


def test_config_file_sets_the_charset(ckpt: Path, tmp_path: Path) -> None:
    config = tmp_path / "abc.yaml"
    config.write_text("charset: abc\n")
    result = runner.invoke(app, ["export", "--ckpt", str(ckpt), "--config", str(config)])
    _assert_one_line_error(result, "has 37 classes but the charset gives 4 (3 characters + blank)")


def test_missing_config_file(ckpt: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "--ckpt", str(ckpt), "--config",
                                 str(tmp_path / "absent.yaml")])
    _assert_one_line_error(result, "cannot read config", "absent.yaml")


def test_unsupported_opset(ckpt: Path) -> None:
    result = runner.invoke(app, ["export", "--ckpt", str(ckpt), "--opset", "7"])
    _assert_one_line_error(result, "opset 7 is not supported")
    assert not ckpt.with_suffix(".onnx").exists()


class _DivergentNet(torch.nn.Module):
    """(N, 3, 32, W) -> (W // 4 + 1, N, 37), different when traced: a broken export."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 37, (32, 4), stride=(1, 4), padding=(0, 2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.conv(images).squeeze(2).permute(2, 0, 1)
        return out if torch.jit.is_tracing() else out + 1.0


def test_verification_failure(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exporter_module, "load_checkpoint", lambda path, config: _DivergentNet())
    result = runner.invoke(app, ["export", "--ckpt", str(ckpt), "--static"])
    _assert_one_line_error(result, "differ by up to", "nothing was written")
    assert not ckpt.with_suffix(".onnx").exists()


def test_without_torch(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    result = runner.invoke(app, ["export", "--ckpt", str(ckpt)])
    _assert_one_line_error(result, "export needs torch: pip install 'crnn-onnx[export]'")


def test_help_lists_the_options() -> None:
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0
    for option in ("--ckpt", "--config", "--output", "--opset", "--static", "--no-verify",
                   "--atol"):
        assert option in result.stdout
