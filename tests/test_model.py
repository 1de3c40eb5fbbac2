"""The CRNN matches upstream CRNN-TextRec: state-dict keys and shapes, size, output shape."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="needs the export extra (torch)")

from crnn_onnx.config import HEIGHT  # noqa: E402
from crnn_onnx.contract import sequence_length  # noqa: E402
from crnn_onnx.export.model import CRNN  # noqa: E402


def _bn(channels: int, index: int) -> dict[str, tuple[int, ...]]:
    prefix = f"feat_extract.{index}."
    return {
        prefix + "weight": (channels,),
        prefix + "bias": (channels,),
        prefix + "running_mean": (channels,),
        prefix + "running_var": (channels,),
        prefix + "num_batches_tracked": (),
    }


def _lstm_layer(layer: int, in_features: int) -> dict[str, tuple[int, ...]]:
    gates, hidden = 4 * 256, 256  # i, f, g, o gates stacked
    shapes = {}
    for suffix in ("", "_reverse"):
        p = "neck.encoder.bilstm."
        shapes[f"{p}weight_ih_l{layer}{suffix}"] = (gates, in_features)
        shapes[f"{p}weight_hh_l{layer}{suffix}"] = (gates, hidden)
        shapes[f"{p}bias_ih_l{layer}{suffix}"] = (gates,)
        shapes[f"{p}bias_hh_l{layer}{suffix}"] = (gates,)
    return shapes


#: Upstream's state dict for 37 classes, key by key.
EXPECTED_SHAPES: dict[str, tuple[int, ...]] = {
    "feat_extract.0.weight": (64, 3, 3, 3),
    "feat_extract.0.bias": (64,),
    "feat_extract.3.weight": (128, 64, 3, 3),
    "feat_extract.3.bias": (128,),
    "feat_extract.6.weight": (256, 128, 3, 3),  # no bias: BatchNorm follows
    **_bn(256, 7),
    "feat_extract.9.weight": (256, 256, 3, 3),
    "feat_extract.9.bias": (256,),
    "feat_extract.12.weight": (512, 256, 3, 3),
    **_bn(512, 13),
    "feat_extract.15.weight": (512, 512, 3, 3),
    "feat_extract.15.bias": (512,),
    "feat_extract.18.weight": (512, 512, 2, 2),  # 2x2 kernel, no padding: height 2 -> 1
    **_bn(512, 19),
    **_lstm_layer(0, 512),
    **_lstm_layer(1, 2 * 256),  # layer 1 reads both directions of layer 0
    "head.fc.weight": (37, 512),
    "head.fc.bias": (37,),
}


@pytest.fixture(scope="module")
def model() -> CRNN:
    torch.manual_seed(0)
    return CRNN(37).eval()


def test_state_dict_keys_and_shapes_match_upstream(model: CRNN) -> None:
    state = model.state_dict()
    assert set(state) == set(EXPECTED_SHAPES)
    assert {k: tuple(v.shape) for k, v in state.items()} == EXPECTED_SHAPES


def test_parameter_count_matches_upstream(model: CRNN) -> None:
    assert sum(p.numel() for p in model.parameters()) == 8_724_133


def test_class_count_sets_the_head() -> None:
    model = CRNN(63)
    assert model.num_classes == 63
    assert tuple(model.head.fc.weight.shape) == (63, 512)


@pytest.mark.parametrize(
    ("batch", "width"),
    [
        (1, 100),  # the default input width
        (2, 64),
        (3, 101),  # width not divisible by 4
        (1, 7),  # narrow crops still give frames
        (1, 320),
    ],
)
def test_output_is_time_major_logits(model: CRNN, batch: int, width: int) -> None:
    with torch.inference_mode():
        out = model(torch.randn(batch, 3, HEIGHT, width))
    assert out.shape == (width // 4 + 1, batch, 37)
    assert out.shape[0] == sequence_length(width)
    assert out.dtype == torch.float32


@pytest.mark.parametrize(
    "shape",
    [
        (1, 3, 48, 100),  # height other than 32
        (1, 3, 16, 100),
        (1, 1, 32, 100),  # grey image
        (3, 32, 100),  # missing batch dimension
    ],
)
def test_wrong_input_shape_is_rejected(model: CRNN, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, 32, W\)"), torch.inference_mode():
        model(torch.randn(*shape))
