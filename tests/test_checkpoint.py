"""Safe checkpoint loading: layouts, prefixes, fp16, mismatches, refusing code-running pickles."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the export extra (torch)")

from crnn_onnx.config import CRNNConfig  # noqa: E402
from crnn_onnx.errors import CRNNError  # noqa: E402
from crnn_onnx.export.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from crnn_onnx.export.model import CRNN  # noqa: E402


def _assert_same_weights(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    got, want = model.state_dict(), reference.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key


def _prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


def _one_line(err: pytest.ExceptionInfo[CRNNError]) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_upstream_checkpoint_loads(upstream_checkpoint: Path, random_model: CRNN,
                                   default_config: CRNNConfig) -> None:
    model = load_checkpoint(upstream_checkpoint, default_config)
    assert isinstance(model, CRNN)
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    _assert_same_weights(model, random_model)


# Each layout maps the model's state dict to what gets saved.
LAYOUTS: dict[str, Callable[[dict], object]] = {
    "bare state_dict": lambda sd: sd,
    "{'state_dict': ...}": lambda sd: {"state_dict": sd, "epoch": 1},
    "DataParallel module.": lambda sd: {"model": _prefixed(sd, "module.")},
    "Lightning model.": lambda sd: {"state_dict": _prefixed(sd, "model."), "global_step": 10},
    "combined module.model.": lambda sd: _prefixed(sd, "module.model."),
    "combined model.module.": lambda sd: {"model": _prefixed(sd, "model.module.")},
    "nested state_dict/model": lambda sd: {"state_dict": {"model": sd}},
    "numpy scalar metadata": lambda sd: {"model": sd, "best_acc": np.float64(0.9),
                                         "epoch": np.int64(7)},
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_checkpoint_layouts_load(layout: str, random_model: CRNN, default_config: CRNNConfig,
                                 tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(LAYOUTS[layout](random_model.state_dict()), path)
    _assert_same_weights(load_checkpoint(path, default_config), random_model)


def test_fp16_checkpoint_restored_to_fp32(random_model: CRNN, default_config: CRNNConfig,
                                          tmp_path: Path) -> None:
    path = save_checkpoint(random_model, tmp_path / "half.pth", epoch=1, half=True)
    stored = torch.load(path, weights_only=True)["model"]
    assert stored["head.fc.weight"].dtype == torch.float16
    assert stored["feat_extract.7.num_batches_tracked"].dtype == torch.int64  # not a float

    model = load_checkpoint(path, default_config)
    for key, value in model.state_dict().items():
        reference = random_model.state_dict()[key]
        if value.is_floating_point():
            assert value.dtype == torch.float32, key
            assert torch.equal(value, reference.half().float()), key
        else:
            assert torch.equal(value, reference), key


def test_save_checkpoint_writes_upstream_layout_atomically(random_model: CRNN,
                                                           default_config: CRNNConfig,
                                                           tmp_path: Path) -> None:
    wrapped = torch.nn.DataParallel(copy.deepcopy(random_model))
    path = save_checkpoint(wrapped, tmp_path / "runs" / "best.pth", epoch=4,
                           extra={"best_acc": 0.75})
    payload = torch.load(path, weights_only=True)
    assert payload["epoch"] == 4 and payload["best_acc"] == 0.75
    assert all(not k.startswith("module.") for k in payload["model"])
    assert [p.name for p in path.parent.iterdir()] == ["best.pth"]  # no temporary left over
    _assert_same_weights(load_checkpoint(path, default_config), random_model)

    with pytest.raises(CRNNError, match="must not override epoch"):
        save_checkpoint(random_model, tmp_path / "x.pth", epoch=1, extra={"epoch": 2})


def test_save_checkpoint_into_unwritable_place(random_model: CRNN, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(CRNNError, match=r"cannot create folder '.*file': File exists") as err:
        save_checkpoint(random_model, blocker / "best.pth", epoch=1)
    _one_line(err)


def test_wrong_class_count_names_both_numbers(tmp_path: Path,
                                              default_config: CRNNConfig) -> None:
    path = tmp_path / "63.pth"
    torch.save({"model": CRNN(63).state_dict()}, path)
    with pytest.raises(CRNNError) as err:
        load_checkpoint(path, default_config)
    assert "has 63 classes but the charset gives 37 (36 characters + blank)" in _one_line(err)
    # ... and the matching charset loads it.
    assert load_checkpoint(path, CRNNConfig(charset=tuple(f"c{i}" for i in range(62))))


def test_missing_and_unexpected_keys_are_listed(random_model: CRNN, default_config: CRNNConfig,
                                                tmp_path: Path) -> None:
    state = dict(random_model.state_dict())
    for key in [k for k in state if k.startswith("neck.encoder.bilstm.") and "l1" in k]:
        del state[key]  # the whole second LSTM layer: 8 tensors
    state["neck.encoder.extra.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CRNNError) as err:
        load_checkpoint(path, default_config)
    message = _one_line(err)
    assert "8 missing keys (neck.encoder.bilstm.bias_hh_l1" in message
    assert "(5 more)" in message
    assert "1 unexpected key (neck.encoder.extra.weight)" in message


def test_old_checkpoint_without_num_batches_tracked_loads(random_model: CRNN,
                                                          default_config: CRNNConfig,
                                                          tmp_path: Path) -> None:
    # Saved by PyTorch < 0.4.1, as some published CRNN weights were.
    state = {k: v for k, v in random_model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(state, path)
    model = load_checkpoint(path, default_config)
    assert torch.equal(model.feat_extract[7].running_var, random_model.feat_extract[7].running_var)


def test_shape_mismatch_is_listed(random_model: CRNN, default_config: CRNNConfig,
                                  tmp_path: Path) -> None:
    state = dict(random_model.state_dict())
    state["neck.encoder.bilstm.weight_ih_l0"] = torch.zeros(1024, 256)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(CRNNError) as err:
        load_checkpoint(path, default_config)
    assert "1 tensor with the wrong shape" in _one_line(err)
    assert "neck.encoder.bilstm.weight_ih_l0 (1024, 256) vs (1024, 512)" in str(err.value)


def test_different_architecture_is_rejected(default_config: CRNNConfig, tmp_path: Path) -> None:
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 37))
    path = tmp_path / "other.pth"
    torch.save({"model": other.state_dict()}, path)
    with pytest.raises(CRNNError, match="does not match the CRNN architecture") as err:
        load_checkpoint(path, default_config)
    message = _one_line(err)
    assert "missing keys" in message and "4 unexpected keys (0.bias, 0.weight, 1.bias" in message


def test_nan_weights_rejected(random_model: CRNN, default_config: CRNNConfig,
                              tmp_path: Path) -> None:
    state = dict(random_model.state_dict())
    state["head.fc.bias"] = torch.full((37,), float("nan"))
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(CRNNError, match=r"NaN or infinite values in head\.fc\.bias"):
        load_checkpoint(path, default_config)


class _CreatesMarker:
    """Unpickling this would call ``open(marker, 'w')``: code execution from a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_code_running_pickle_is_refused(random_model: CRNN, default_config: CRNNConfig,
                                        tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": random_model.state_dict(), "hook": _CreatesMarker(marker)}, path)

    with pytest.raises(CRNNError) as err:
        load_checkpoint(path, default_config)
    message = _one_line(err)
    assert "refusing to unpickle" in message and "open" in message
    assert not marker.exists()

    # Control: the payload is live, so the refusal above is what kept the marker away.
    with open(path, "rb"):
        torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty or truncated"),
        (b"definitely not a checkpoint\n" * 10, "not a"),
        (bytes(range(256)) * 8, "not a"),  # binary garbage
        (b"PK\x03\x04" + b"\x00" * 64, "not a readable PyTorch checkpoint"),  # broken zip
    ],
)
def test_garbage_file_is_one_line_error(tmp_path: Path, default_config: CRNNConfig,
                                        content: bytes, match: str) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(CRNNError, match=match) as err:
        load_checkpoint(path, default_config)
    _one_line(err)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([1, 2, 3], "holds a list, not a state dict"),
        ({"epoch": 3, "best_acc": 0.1}, "holds no state dict .*'epoch', 'best_acc'"),
        ({}, "holds no state dict"),
    ],
)
def test_checkpoint_without_state_dict(tmp_path: Path, default_config: CRNNConfig,
                                       payload: object, match: str) -> None:
    path = tmp_path / "odd.pth"
    torch.save(payload, path)
    with pytest.raises(CRNNError, match=match) as err:
        load_checkpoint(path, default_config)
    _one_line(err)


def test_plain_pickle_of_tensors_is_not_loaded_by_pickle(tmp_path: Path,
                                                         default_config: CRNNConfig) -> None:
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))  # a legacy (non-zip) pickle without tensors
    with pytest.raises(CRNNError) as err:
        load_checkpoint(path, default_config)
    _one_line(err)


def test_missing_file_and_directory(tmp_path: Path, default_config: CRNNConfig) -> None:
    with pytest.raises(CRNNError, match="not found") as err:
        load_checkpoint(tmp_path / "absent.pth", default_config)
    _one_line(err)
    with pytest.raises(CRNNError, match="is a directory") as err:
        load_checkpoint(tmp_path, default_config)
    _one_line(err)
