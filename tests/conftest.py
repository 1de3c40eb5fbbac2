"""Shared fixtures: a seeded CRNN, an upstream-style checkpoint of it, and its ONNX export.

The costly ones are session-scoped and must be treated as read-only: copy the model
(``copy.deepcopy``) before changing it. Everything is written under pytest's temporary
folders, never into the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from crnn_onnx.config import CRNNConfig

# torch's OpenMP threads busy-wait for each other; on a small machine busy with other work
# (a CI runner, a training job) that stretched a 40 ms forward pass to seconds. The policy
# is read when torch starts its thread pool, so it is set here, before any test imports
# torch; an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# One Hypothesis profile for the whole suite: the same examples on every run and machine,
# bounded, and no example database written into the working tree.
settings.register_profile(
    "crnn-onnx", derandomize=True, database=None, deadline=None, max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("crnn-onnx")

MODEL_SEED = 1234


@pytest.fixture(scope="session")
def default_config() -> CRNNConfig:
    """The built-in config: 36 characters + blank = 37 classes, input (3, 32, 100)."""
    return CRNNConfig()


@pytest.fixture(scope="session")
def random_model():
    """A seeded CRNN(37) in eval mode with trained-like, input-dependent logits.

    PyTorch's default initialisation shrinks the signal layer by layer, so a fresh CRNN
    gives nearly the same ~0.04 logits for every input, and a parity test at 1e-4 would
    prove little. Here the convolutions get He initialisation and the classifier weights
    are scaled up (logits up to ~3 that move by ~0.7 between random inputs, while ONNX
    Runtime stays within ~5e-6 of PyTorch), and the BatchNorm statistics and affine terms
    are perturbed so BatchNorm is not the identity. (Scaling the LSTM weights up as well
    pushed the ONNX/PyTorch difference to ~9e-5, too close to the 1e-4 tolerance for a
    stable test.)
    Session-scoped: do not modify it. Tests using it are skipped without torch.
    """
    torch = pytest.importorskip("torch", reason="needs the export extra (torch)")
    from crnn_onnx.export.model import CRNN

    with torch.random.fork_rng():
        torch.manual_seed(MODEL_SEED)
        model = CRNN(37)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                elif isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.2, 0.2)
                    module.num_batches_tracked.fill_(100)
            model.head.fc.weight.mul_(10.0)
    return model.eval()


@pytest.fixture(scope="session")
def upstream_checkpoint(random_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``random_model`` saved exactly as upstream CRNN-TextRec training saves it.

    ``{'model': state_dict, 'optimizer': ..., 'best_acc': 0.5, 'epoch': 3}``; the Adam state
    is populated (one step with zero gradients, which leaves the weights unchanged).
    """
    import copy

    import torch

    shadow = copy.deepcopy(random_model)
    optimizer = torch.optim.Adam(shadow.parameters(), lr=1e-3)
    for param in shadow.parameters():
        param.grad = torch.zeros_like(param)
    optimizer.step()
    path = tmp_path_factory.mktemp("ckpt") / "crnn_best.pth"
    torch.save(
        {
            "model": random_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "best_acc": 0.5,
            "epoch": 3,
        },
        path,
    )
    return path


@pytest.fixture(scope="session")
def exported_model(upstream_checkpoint: Path, default_config: CRNNConfig,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dynamic (batch, width) ONNX export of ``upstream_checkpoint``, not verified.

    Its logits equal ``random_model``'s; tests compare the two.
    """
    from crnn_onnx.export.exporter import export_checkpoint

    output = tmp_path_factory.mktemp("onnx") / "crnn.onnx"
    report = export_checkpoint(upstream_checkpoint, default_config, output, verify=False)
    return report.output


@pytest.fixture
def bad_model_file(tmp_path: Path, exported_model: Path) -> Callable[[str], Path]:
    """A factory: ``bad_model_file(kind)`` writes one kind of broken model file and returns it.

    Kinds: missing, directory, empty, text, png (an image named .onnx), truncated (the first
    200 kB of a real export).
    """

    def make(kind: str) -> Path:
        path = tmp_path / "model.onnx"
        if kind == "directory":
            path.mkdir()
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "text":
            path.write_text("this is not a model\n")
        elif kind == "png":
            import cv2
            import numpy as np

            ok, encoded = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
            assert ok
            path.write_bytes(encoded.tobytes())
        elif kind == "truncated":
            with exported_model.open("rb") as src:
                path.write_bytes(src.read(200_000))
        elif kind != "missing":
            raise ValueError(f"unknown kind {kind!r}")
        return path

    return make
