"""ONNX export: parity with PyTorch, the graph contract, metadata, atomic writes, failures.

The CRNN is exported once per session (``exported_model``) and once statically here; the
plumbing tests (atomic writes, verification failure) use a tiny stand-in network that exports
in milliseconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs the export extra (torch)")
onnx = pytest.importorskip("onnx", reason="needs the export extra (onnx)")
pytest.importorskip("onnxruntime", reason="needs the cpu or gpu extra (onnxruntime)")

import onnxruntime as ort  # noqa: E402

from crnn_onnx import __version__  # noqa: E402
from crnn_onnx.config import CRNNConfig  # noqa: E402
from crnn_onnx.contract import INPUT_NAME, OUTPUT_NAME, config_from_metadata  # noqa: E402
from crnn_onnx.errors import CRNNError  # noqa: E402
from crnn_onnx.export import exporter as exporter_module  # noqa: E402
from crnn_onnx.export.exporter import export_checkpoint, export_onnx  # noqa: E402
from crnn_onnx.export.model import CRNN  # noqa: E402
from crnn_onnx.export.verify import VerifyReport, verify_onnx  # noqa: E402

ATOL = 1e-4
# verify_onnx's matrix, which `export` checks by default: single image, odd batch, a full
# bucket x default width, wider crops, 3x default. It runs whole in the slow tier; its
# corners, a quarter of its cost, in the quick one.
BATCHES = (1, 3, 8)
WIDTHS = (100, 160, 320)
QUICK_BATCHES = (1, 3)
QUICK_WIDTHS = (100, 320)


class TinyNet(torch.nn.Module):
    """Stand-in with the CRNN's contract: (N, 3, 32, W) -> (W // 4 + 1, N, 37)."""

    num_classes = 37

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 37, (32, 4), stride=(1, 4), padding=(0, 2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images).squeeze(2).permute(2, 0, 1)


class DivergentNet(TinyNet):
    """Behaves differently when traced: what a broken export looks like to verification."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = super().forward(images)
        return out if torch.jit.is_tracing() else out + 1.0


def _dims(value_info: onnx.ValueInfoProto) -> list[str | int]:
    """Each dimension as its symbolic name, or its size when fixed."""
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


@pytest.fixture(scope="module")
def dynamic_proto(exported_model: Path) -> onnx.ModelProto:
    return onnx.load(str(exported_model))


@pytest.fixture(scope="module")
def parity_report(random_model: CRNN, exported_model: Path,
                  default_config: CRNNConfig) -> VerifyReport:
    """One run of the verification matrix's corners, shared by the parity cases."""
    return verify_onnx(random_model, exported_model, default_config,
                       batch_sizes=QUICK_BATCHES, widths=QUICK_WIDTHS, atol=ATOL)


@pytest.fixture(scope="module")
def static_export(random_model: CRNN, default_config: CRNNConfig,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Static export at a non-default opset."""
    output = tmp_path_factory.mktemp("static") / "crnn_static.onnx"
    return export_onnx(random_model, default_config, output, opset=13, dynamic=False)


# --- parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", QUICK_BATCHES)  # single image, odd batch
@pytest.mark.parametrize("width", QUICK_WIDTHS)  # default width, 3x default
def test_parity_with_pytorch(parity_report: VerifyReport, batch: int, width: int) -> None:
    case = next(c for c in parity_report.cases if (c.batch, c.width) == (batch, width))
    assert case.max_abs_diff <= ATOL, (
        f"ONNX Runtime differs from PyTorch by {case.max_abs_diff:.3g} > {ATOL} "
        f"at batch {batch}, width {width}"
    )


def test_parity_report_covers_the_matrix(parity_report: VerifyReport) -> None:
    assert {(c.batch, c.width) for c in parity_report.cases} == {
        (b, w) for b in QUICK_BATCHES for w in QUICK_WIDTHS
    }
    assert parity_report.passed and parity_report.max_diff <= ATOL


@pytest.mark.slow  # seconds: every case of the matrix through both PyTorch and ONNX Runtime
def test_parity_over_the_whole_verification_matrix(random_model: CRNN, exported_model: Path,
                                                    default_config: CRNNConfig) -> None:
    report = verify_onnx(random_model, exported_model, default_config, atol=ATOL)
    assert {(c.batch, c.width) for c in report.cases} == {
        (b, w) for b in BATCHES for w in WIDTHS
    }
    over = [(c.batch, c.width, c.max_abs_diff) for c in report.cases if c.max_abs_diff > ATOL]
    assert not over, f"ONNX Runtime differs from PyTorch by more than {ATOL} at {over}"
    assert report.passed


def test_onnx_logits_are_not_trivially_equal(exported_model: Path, random_model: CRNN) -> None:
    """Guard against a vacuous parity test: real, input-dependent logits of shape (T, N, C)."""
    import numpy as np

    session = ort.InferenceSession(str(exported_model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((2, 3, 32, 64), dtype=np.float32) for _ in range(2))
    out_a = session.run(None, {INPUT_NAME: a})[0]
    out_b = session.run(None, {INPUT_NAME: b})[0]
    assert out_a.shape == (64 // 4 + 1, 2, 37)
    assert np.abs(out_a).max() > 1.0  # logits of a few units, not ~0
    assert np.abs(out_a - out_b).max() > 1000 * ATOL  # and they depend on the input


# --- graph contract -------------------------------------------------------------------------


def test_input_and_output_names(dynamic_proto: onnx.ModelProto) -> None:
    assert [i.name for i in dynamic_proto.graph.input] == [INPUT_NAME] == ["images"]
    assert [o.name for o in dynamic_proto.graph.output] == [OUTPUT_NAME] == ["output0"]


def test_dynamic_dims_are_symbolic(dynamic_proto: onnx.ModelProto) -> None:
    assert _dims(dynamic_proto.graph.input[0]) == ["batch", 3, 32, "width"]
    assert _dims(dynamic_proto.graph.output[0]) == ["frames", "batch", 37]
    assert dynamic_proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_ort_sees_the_same_contract(exported_model: Path) -> None:
    session = ort.InferenceSession(str(exported_model), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("images", ["batch", 3, 32, "width"],
                                               "tensor(float)")
    assert (out.name, out.shape) == ("output0", ["frames", "batch", 37])


def test_metadata_round_trip(dynamic_proto: onnx.ModelProto,
                             default_config: CRNNConfig) -> None:
    metadata = {p.key: p.value for p in dynamic_proto.metadata_props}
    assert config_from_metadata(metadata) == default_config
    assert metadata["crnn_onnx.version"] == __version__
    assert metadata["crnn_onnx.torch_version"] == torch.__version__
    assert dynamic_proto.producer_name == "crnn-onnx"


def test_checker_passes_and_file_is_self_contained(exported_model: Path,
                                                   dynamic_proto: onnx.ModelProto) -> None:
    onnx.checker.check_model(str(exported_model), full_check=True)
    assert not any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in dynamic_proto.graph.initializer
    )
    # Only the model itself in its folder: no external-data files, no temporaries.
    assert [p.name for p in exported_model.parent.iterdir()] == [exported_model.name]
    assert exported_model.stat().st_size > 8_724_133 * 4  # fp32 weights inside the file


def test_default_opset_recorded(dynamic_proto: onnx.ModelProto) -> None:
    assert _default_opset(dynamic_proto) == 17


def test_static_export_has_fixed_shape(static_export: Path, random_model: CRNN,
                                       default_config: CRNNConfig) -> None:
    proto = onnx.load(str(static_export))
    assert _dims(proto.graph.input[0]) == [1, 3, 32, 100]
    assert _dims(proto.graph.output[0]) == [26, 1, 37]
    assert _default_opset(proto) == 13
    assert config_from_metadata({p.key: p.value for p in proto.metadata_props}) \
        == default_config

    report = verify_onnx(random_model, static_export, default_config)
    assert [(c.batch, c.width) for c in report.cases] == [(1, 100)]  # only its own shape
    assert report.passed


def test_static_width_follows_config(tmp_path: Path) -> None:
    config = CRNNConfig(image_shape=(3, 32, 160))
    path = export_onnx(TinyNet(), config, tmp_path / "w160.onnx", dynamic=False)
    proto = onnx.load(str(path))
    assert _dims(proto.graph.input[0]) == [1, 3, 32, 160]
    assert config_from_metadata({p.key: p.value for p in proto.metadata_props}) == config


def test_export_restores_training_mode(default_config: CRNNConfig, tmp_path: Path) -> None:
    net = TinyNet().train()
    export_onnx(net, default_config, tmp_path / "t.onnx")
    assert net.training


# --- atomic writes and failures ----------------------------------------------------------


def test_output_folder_is_created(default_config: CRNNConfig, tmp_path: Path) -> None:
    path = export_onnx(TinyNet(), default_config, tmp_path / "a" / "b" / "tiny.onnx")
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["tiny.onnx"]


def test_unwritable_output_folder(default_config: CRNNConfig, tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(CRNNError, match="cannot create folder") as err:
        export_onnx(TinyNet(), default_config, blocker / "tiny.onnx")
    assert "\n" not in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["not_a_folder"]


@pytest.mark.skipif(sys.platform == "win32" or (hasattr(__import__("os"), "geteuid")
                                                and __import__("os").geteuid() == 0),
                    reason="root (and Windows) ignore folder write permissions")
def test_read_only_output_folder(default_config: CRNNConfig, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(CRNNError, match="cannot write") as err:
            export_onnx(TinyNet(), default_config, folder / "tiny.onnx")
        assert "\n" not in str(err.value)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_failed_write_leaves_nothing_and_keeps_old_file(default_config: CRNNConfig,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "model.onnx"
    output.write_bytes(b"previous good model")

    def disk_full(proto, path, **kwargs):
        Path(path).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exporter_module.onnx, "save_model", disk_full)
    with pytest.raises(CRNNError, match="No space left on device") as err:
        export_onnx(TinyNet(), default_config, output)
    assert "\n" not in str(err.value)
    assert output.read_bytes() == b"previous good model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_output_that_is_a_folder(default_config: CRNNConfig, tmp_path: Path,
                                 upstream_checkpoint: Path) -> None:
    with pytest.raises(CRNNError, match=r"is a directory; give a file name ending \.onnx"):
        export_onnx(TinyNet(), default_config, tmp_path)
    folder = tmp_path / "models"
    folder.mkdir()
    with pytest.raises(CRNNError, match=r"is a directory; give a file name ending \.onnx"):
        export_checkpoint(upstream_checkpoint, default_config, folder)  # the CLI's path
    assert list(folder.iterdir()) == []


def test_verification_failure_writes_nothing(default_config: CRNNConfig, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = tmp_path / "ckpt.pth"
    ckpt.write_bytes(b"stand-in; loading is patched")
    output = tmp_path / "model.onnx"
    output.write_bytes(b"previous good model")
    monkeypatch.setattr(exporter_module, "load_checkpoint", lambda path, config: DivergentNet())

    with pytest.raises(CRNNError, match=r"differ by up to 1 \(atol 0.0001") as err:
        export_checkpoint(ckpt, default_config, output, dynamic=False)
    assert "nothing was written" in str(err.value) and "\n" not in str(err.value)
    assert output.read_bytes() == b"previous good model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth", "model.onnx"]


def test_tampered_model_fails_verification(static_export: Path, random_model: CRNN,
                                           default_config: CRNNConfig, tmp_path: Path) -> None:
    proto = onnx.load(str(static_export))
    bias = next(t for t in proto.graph.initializer if t.name == "head.fc.bias")
    values = onnx.numpy_helper.to_array(bias) + 0.5
    bias.CopyFrom(onnx.numpy_helper.from_array(values, name=bias.name))
    tampered = tmp_path / "tampered.onnx"
    onnx.save(proto, str(tampered))

    report = verify_onnx(random_model, tampered, default_config, atol=ATOL)
    assert not report.passed
    assert report.max_diff == pytest.approx(0.5, abs=1e-4)


def test_nan_output_never_passes(default_config: CRNNConfig, tmp_path: Path) -> None:
    net = TinyNet()
    path = export_onnx(net, default_config, tmp_path / "tiny.onnx", dynamic=False)
    with torch.no_grad():
        net.conv.bias.fill_(float("nan"))  # torch now gives NaN, ONNX does not
    report = verify_onnx(net, path, default_config)
    assert report.max_diff == float("inf") and not report.passed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"opset": 9}, "opset 9 is not supported"),
        ({"opset": 21}, "opset 21 is not supported"),
    ],
)
def test_bad_export_arguments(kwargs: dict, match: str, default_config: CRNNConfig,
                              tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match=match):
        export_onnx(TinyNet(), default_config, tmp_path / "x.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_class_count_mismatch_is_refused(tmp_path: Path) -> None:
    net = TinyNet()
    with pytest.raises(CRNNError, match="37 classes but the charset gives 4"):
        export_onnx(net, CRNNConfig(charset=("a", "b", "c")), tmp_path / "x.onnx")


def test_fp16_model_is_refused(default_config: CRNNConfig, tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match="float32"):
        export_onnx(TinyNet().half(), default_config, tmp_path / "x.onnx")


def test_checkpoint_export_guards(upstream_checkpoint: Path, default_config: CRNNConfig,
                                  tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match="atol"):
        export_checkpoint(upstream_checkpoint, default_config, tmp_path / "x.onnx", atol=-1)
    with pytest.raises(CRNNError, match="overwrite the checkpoint"):
        export_checkpoint(upstream_checkpoint, default_config, upstream_checkpoint)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_names_the_extras(default_config: CRNNConfig, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(CRNNError, match=r"crnn-onnx\[cpu\].*crnn-onnx\[gpu\].*verify=False"):
        verify_onnx(TinyNet(), tmp_path / "x.onnx", default_config)
