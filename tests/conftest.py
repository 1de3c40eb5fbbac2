"""Shared fixtures: a seeded CRNN, an upstream-style checkpoint of it, and its ONNX export;
the fonts and photographs the synthetic renderer draws with in tests.

The costly ones are session-scoped and must be treated as read-only: copy the model
(``copy.deepcopy``) before changing it. Everything is written under pytest's temporary
folders, never into the working directory.

Tests see what a new machine has, whatever this one has installed by hand: the DejaVu fonts
of ``fonts-dejavu-core``, no background photographs, an empty cache folder
(:func:`only_what_a_new_machine_has`). A test that renders brings the rest.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis_budget
import numpy as np
import pytest
import typer.testing
from hypothesis import HealthCheck, settings
from hypothesis_budget import examples

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


def pytest_configure(config: pytest.Config) -> None:
    """The quick tier (``-m "not slow"``) draws a quarter of the property tests' examples
    (tests/hypothesis_budget.py); the full run, CI's, draws them all."""
    if "not slow" in (config.getoption("markexpr", "") or ""):
        hypothesis_budget.QUICK = True
        settings.register_profile("crnn-onnx-quick", settings.get_profile("crnn-onnx"),
                                  max_examples=examples(100))
        settings.load_profile("crnn-onnx-quick")

# Typer's CliRunner builds the click command from the app on every invoke, evaluating the
# annotations of every option of every command again: it cost more than many commands' own
# runs. The CLI builds it once per process; so do the tests, once per app.
if hasattr(typer.testing, "_get_command"):
    typer.testing._get_command = functools.cache(typer.testing._get_command)

MODEL_SEED = 1234
#: Where Debian and Ubuntu put DejaVu, and the faces of fonts-dejavu-core that every new
#: machine has there (fonts-dejavu-extra's are not always installed).
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
DEJAVU_CORE = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
               "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")


@pytest.fixture(scope="session", autouse=True)
def only_what_a_new_machine_has(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The installed fonts the renderer finds are copies of the DejaVu core faces in a folder
    of their own (yielded); it finds no background photographs (nor scikit-image's), and the
    cache folder (``XDG_CACHE_HOME``, inherited by child processes) starts empty.

    So a test that needs the held-out font families, wallpapers or a warm cache fails on
    every machine, not only on a new one, where it would otherwise pass unnoticed.
    """
    from crnn_onnx.synth import backgrounds, fonts

    folder = tmp_path_factory.mktemp("fonts")
    for name in DEJAVU_CORE:
        if (DEJAVU / name).is_file():
            shutil.copy(DEJAVU / name, folder / name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fonts, "FONT_DIRS", (str(folder),))
        patch.setattr(backgrounds, "BACKGROUND_DIRS", ())
        patch.setattr(backgrounds, "_skimage_data_dir", list)
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield folder


@pytest.fixture(scope="session")
def dejavu_fonts(only_what_a_new_machine_has: Path) -> list[Path]:
    """The DejaVu core faces, DejaVuSans.ttf first, in their own folder (``[0].parent``)."""
    missing = [name for name in DEJAVU_CORE if not (DEJAVU / name).is_file()]
    if missing:
        pytest.fail(f"{DEJAVU} lacks {', '.join(missing)}: install fonts-dejavu-core, which "
                    "every Debian and Ubuntu machine has")
    return [only_what_a_new_machine_has / name for name in DEJAVU_CORE]


def photographs(count: int, seed: int = 0) -> list[np.ndarray]:
    """Photograph-like (120, 160, 3) uint8 RGB images made here: smooth colour fields with
    hard-edged shapes and grain, as backgrounds for the realistic renderer."""
    import cv2

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        field = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
        image = cv2.resize(field, (160, 120), interpolation=cv2.INTER_CUBIC)
        for _ in range(3):
            x, y = int(rng.integers(0, 140)), int(rng.integers(0, 100))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.rectangle(image, (x, y), (x + int(rng.integers(10, 60)), y + 30), color, -1)
        grain = rng.normal(0, 8, image.shape)
        images.append(np.clip(image + grain, 0, 255).astype(np.uint8))
    return images


@pytest.fixture(scope="session")
def background_bank():
    """Four :func:`photographs` as a bank for the realistic renderer."""
    from crnn_onnx.synth.backgrounds import BackgroundBank

    return BackgroundBank(photographs(4))


@pytest.fixture(scope="session")
def background_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of four :func:`photographs` as PNG, for a process that loads its own."""
    import cv2

    folder = tmp_path_factory.mktemp("photos")
    for i, image in enumerate(photographs(4)):
        cv2.imwrite(str(folder / f"{i}.png"), image[..., ::-1])
    return folder


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


@pytest.fixture(scope="session")
def static_model(random_model, default_config: CRNNConfig,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``random_model`` exported with a fixed (1, 3, 32, 100) input, like upstream's own."""
    from crnn_onnx.export.exporter import export_onnx

    path = tmp_path_factory.mktemp("static") / "static.onnx"
    return export_onnx(random_model, default_config, path, dynamic=False)


@pytest.fixture(scope="session")
def fp16_model(upstream_checkpoint: Path, default_config: CRNNConfig,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``upstream_checkpoint`` exported with ``fp16=True`` (float16 inside, float32 input and
    output), not verified: test_fp16 compares its logits with the fp32 export's, and its slow
    tests run the export's verification."""
    pytest.importorskip("onnxconverter_common", reason="fp16 export needs onnxconverter-common")
    from crnn_onnx.export.exporter import export_checkpoint

    out = tmp_path_factory.mktemp("fp16") / "crnn.fp16.onnx"
    assert export_checkpoint(upstream_checkpoint, default_config, out, fp16=True,
                             verify=False).fp16
    return out


@pytest.fixture(scope="session")
def shipped_int8(dejavu_fonts: list[Path], background_bank,
                 tmp_path_factory: pytest.TempPathFactory) -> Callable[[bool], Any]:
    """``shipped_int8(lstm)``: the report of ``quantize_model`` making the shipped model int8
    (its LSTM too, or left in float), calibrated on ten rendered crops (eight calibrate, two
    check); each made once per session."""
    import cv2

    from crnn_onnx.perf.quantize import quantize_model
    from crnn_onnx.synth.dataset import synth_samples
    from crnn_onnx.weights import default_model_path

    root = tmp_path_factory.mktemp("shipped-int8")
    (root / "calibration").mkdir()
    for i, sample in enumerate(synth_samples(10, seed=1, fonts=dejavu_fonts, realism=0.5,
                                             backgrounds=background_bank)):
        cv2.imwrite(str(root / "calibration" / f"{i}.png"), sample.image)
    made = {}

    def make(lstm: bool):  # type: ignore[no-untyped-def]
        if lstm not in made:
            made[lstm] = quantize_model(default_model_path(), root / f"lstm-{lstm}.int8.onnx",
                                        calibration=root / "calibration", count=10, lstm=lstm)
        return made[lstm]

    return make


@pytest.fixture(scope="session")
def assert_reads_like_fp32(dejavu_fonts: list[Path], background_bank) -> Callable[..., None]:
    """``assert_reads_like_fp32(engine)``: the int8 ``engine`` (the shipped model quantized)
    reads 48 rendered word crops, half of them scenes, as the shipped fp32 model does.

    What it protects: what a user of ``quantize`` sees, the strings read, on every CPU. int8
    kernels differ between CPUs (without VNNI, ONNX Runtime's and OpenVINO's u8 x s8 products
    can saturate), so the bounds are derived from what quantization noise can do, not fitted
    to one CPU. Measured on an AVX2-only EPYC (no VNNI, the noisiest case; see
    docs/performance.md): a frame's logit moves by at most 1.65 (99.9% within 0.48), the
    frames whose class changes led by at most 0.13 in fp32, 48 of 48 strings the same (99.5%
    of 200 crops). So:

    * every frame where fp32's best class leads the second by more than 3 keeps its class
      (noise would have to move two logits by about twice the largest change seen, in
      opposite directions);
    * at least 45 of the 48 strings are the same (at 1.3% differing, the rate measured on
      real photographed crops on that CPU, 0.6 would differ).

    Broken quantization (ranges that clip, a saturating layer, a scale off) changes clearly
    decided frames and strings by the dozen and fails both.
    """
    from crnn_onnx.inference.decoder import ctc_greedy_decode
    from crnn_onnx.inference.engines.onnxruntime import OrtEngine, OrtOptions
    from crnn_onnx.inference.preprocess import batch
    from crnn_onnx.synth.dataset import synth_samples
    from crnn_onnx.weights import default_model_path

    fp32 = OrtEngine(default_model_path(), OrtOptions(device="cpu"))
    config = fp32.spec.config
    crops = [s.image for s in synth_samples(48, seed=2, fonts=dejavu_fonts, realism=0.5,
                                            backgrounds=background_bank)]
    x = batch(crops, config)
    want = fp32.run(x)
    top2 = np.sort(want, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 3.0
    want_texts = [r.text for r in ctc_greedy_decode(want, config.charset)]

    def check(engine) -> None:  # type: ignore[no-untyped-def]
        got = engine.run(x)
        assert got.shape == want.shape and got.dtype == np.float32
        changed = (got.argmax(-1) != want.argmax(-1)) & clear
        assert not changed.any(), f"{changed.sum()} of {clear.sum()} clear frames changed class"
        texts = [r.text for r in ctc_greedy_decode(got, config.charset)]
        differ = [(a, b) for a, b in zip(want_texts, texts, strict=True) if a != b]
        assert len(differ) <= 3, f"{len(differ)} of 48 strings differ (fp32, int8): {differ}"

    return check


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


def draw_word_set(folder: Path, words: list[str], *, seed: int = 0) -> Path:
    """Word crops drawn with OpenCV's built-in font (no font files needed) and their
    ``labels.tsv`` in ``folder``; returns ``folder``."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i, word in enumerate(words):
        crop = np.full((32, 14 + 15 * len(word), 3), int(rng.integers(190, 250)), np.uint8)
        cv2.putText(crop, word, (4, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.65, (20, 20, 20), 2)
        cv2.imwrite(str(folder / f"{i:03d}.png"), crop)
        lines.append(f"{i:03d}.png\t{word}\n")
    (folder / "labels.tsv").write_text("".join(lines), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def word_set() -> Callable[..., Path]:
    """``word_set(folder, words)``: draws a labelled set of word crops (see
    :func:`draw_word_set`)."""
    return draw_word_set
