"""End-to-end parity: ``crnn-onnx predict`` on the ONNX export equals upstream's PyTorch pipeline.

The upstream side is written out here independently of crnn_onnx's inference code:
``cv2.imread`` -> ``TransformCRNN.resize_padding`` -> ``Normalize`` -> ``ToTensorV2`` -> the
torch model -> ``log_softmax`` -> best-path decoding.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crnn_onnx.cli import app
from crnn_onnx.config import DEFAULT_CHARSET

torch = pytest.importorskip("torch", reason="the upstream pipeline needs torch")

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# (word, image height, font scale, background BGR, file type): several sizes and shapes.
SAMPLES = [
    ("hello", 32, 0.8, (235, 235, 235), "png"),
    ("crnn", 48, 1.2, (220, 240, 250), "png"),
    ("x", 40, 1.0, (250, 250, 250), "png"),  # narrow: much padding
    ("internationalisation", 32, 0.7, (230, 230, 230), "png"),  # wide: squeezed to 100
    ("ocr2024", 64, 1.6, (200, 220, 200), "jpg"),
    ("grey", 24, 0.6, (240, 240, 240), "grey"),  # written as a single-channel PNG
]


def _draw(word: str, height: int, scale: float, background: tuple[int, int, int]) -> np.ndarray:
    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), base = cv2.getTextSize(word, font, scale, 2)
    canvas = np.empty((h + base + 8, w + 8, 3), np.uint8)
    canvas[:] = background
    cv2.putText(canvas, word, (4, h + 4), font, scale, (25, 25, 60), 2, cv2.LINE_AA)
    width = max(1, round(canvas.shape[1] * height / canvas.shape[0]))
    return cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def sample_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("parity")
    paths = []
    for i, (word, height, scale, background, kind) in enumerate(SAMPLES):
        image = _draw(word, height, scale, background)
        path = folder / f"{i}_{word}.{'jpg' if kind == 'jpg' else 'png'}"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if kind == "grey" else image)
        paths.append(path)
    return paths


def upstream_transform(image: np.ndarray, img_h: int = 32, img_w: int = 100) -> np.ndarray:
    h, w = image.shape[:2]
    ratio = w / float(h)
    natural = int(math.ceil(img_h * ratio))  # noqa: RUF046  (as upstream writes it)
    resized_w = img_w if natural > img_w else natural
    resized = cv2.resize(image, (resized_w, img_h)).astype("float32")
    padded = np.ones((img_h, img_w, 3), dtype=np.float32) * 128
    padded[:, :resized_w] = resized
    padded = padded[..., ::-1]
    normalised = (padded - MEAN * 255.0) / (STD * 255.0)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)


def upstream_predict(model: torch.nn.Module, paths: list[Path]) -> list[tuple[str, float]]:
    batch = torch.from_numpy(np.stack([upstream_transform(cv2.imread(str(p))) for p in paths]))
    with torch.no_grad():
        log_probs = torch.log_softmax(model(batch), dim=2)  # (T, N, C)
    probs, best = log_probs.exp().max(dim=2)
    results = []
    for n in range(best.shape[1]):
        chars, char_probs, prev = [], [], 0
        for t in range(best.shape[0]):
            cls, p = int(best[t, n]), float(probs[t, n])
            if cls != 0 and cls != prev:
                chars.append(DEFAULT_CHARSET[cls - 1])
                char_probs.append(p)
            elif cls != 0:  # same run: keep its best frame
                char_probs[-1] = max(char_probs[-1], p)
            prev = cls
        empty = float(probs[:, n].mean())
        results.append(("".join(chars), float(np.mean(char_probs)) if chars else empty))
    return results


def test_cli_text_equals_upstream_pipeline(random_model: torch.nn.Module, exported_model: Path,
                                           sample_paths: list[Path]) -> None:
    result = CliRunner().invoke(
        app, ["predict", "--model", str(exported_model), "--format", "jsonl", "--quiet",
              *map(str, sample_paths)],
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    expected = upstream_predict(random_model, sample_paths)
    assert [r["path"] for r in records] == [str(p) for p in sample_paths]
    assert [r["text"] for r in records] == [text for text, _ in expected]
    for record, (_, confidence) in zip(records, expected, strict=True):
        assert record["confidence"] == pytest.approx(confidence, abs=1e-4)
