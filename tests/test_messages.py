"""The library's messages name its parameters; the CLI's name its flags."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crnn_onnx.cli import app
from crnn_onnx.cli._app import in_cli_words
from crnn_onnx.errors import CRNNError

PACKAGE = Path(__file__).resolve().parent.parent / "crnn_onnx"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")


@functools.cache
def _cli_flags() -> frozenset[str]:
    """Every long option of every command of the CLI (built once, as the CLI builds it)."""
    import typer.main

    group = typer.main.get_command(app)
    flags = set()
    for command in group.commands.values():  # type: ignore[attr-defined]
        for param in command.params:
            flags.update(opt for opt in (*param.opts, *param.secondary_opts)
                         if opt.startswith("--"))
    return frozenset(flags)


def _message_strings(path: Path) -> list[str]:
    """The string constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


@pytest.mark.parametrize(
    "path", [p for p in sorted(PACKAGE.rglob("*.py")) if "cli" not in p.relative_to(PACKAGE).parts
             and p.name != "__main__.py"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_library_messages_name_no_cli_flag(path: Path) -> None:
    known = _cli_flags()
    found = {flag for s in _message_strings(path) for flag in FLAG.findall(s)} & known
    assert not found, f"{path.name} names CLI flags: {sorted(found)}"


def test_the_flag_check_knows_the_cli() -> None:
    assert {"--device", "--width-policy", "--config", "--no-verify", "--static"} <= _cli_flags()


@pytest.mark.parametrize(
    ("library", "cli"),
    [
        ("device='cuda': this onnxruntime build", "--device cuda: this onnxruntime build"),
        ("width_policy='bucket' needs ...: use width_policy='fixed'",
         "--width-policy bucket needs ...: use --width-policy fixed"),
        ("pass config= with the YAML", "pass --config with the YAML"),
        ("precision='bf16' needs engine='openvino'", "--precision bf16 needs --engine openvino"),
        ("a lexicon needs decoder='beam'", "a lexicon needs --decoder beam"),
        ("or skip verification (verify=False)", "or skip verification (--no-verify)"),
        ("lower workers=, threads= or gpus_per_worker=",
         "lower --workers, --threads or --gpus-per-worker"),
        ("pass force=True to replace it, or pick another name=",
         "pass --force to replace it, or pick --name"),
        ("(exported with dynamic=False); ... or pass max_batch_size=0",
         "(exported with --static); ... or pass --max-batch-size 0"),
        ("make it with `quantize_model(m/crnn.onnx)`, or pass int8_model=",
         "make it with `crnn-onnx quantize m/crnn.onnx`, or pass --int8-model"),
        ("export one with `export_checkpoint(ckpt)` and pass model=",
         "export one with `crnn-onnx export --ckpt model.pth` and pass --model"),
        # only whole words: a longer name that ends the same is left alone
        ("my_config= or x.config= stays", "my_config= or x.config= stays"),
    ],
)
def test_the_cli_puts_its_flags_for_the_library_words(library: str, cli: str) -> None:
    assert in_cli_words(library) == cli


def test_a_library_error_reaches_python_in_library_words_and_the_cli_in_flags(
        exported_model: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    bare = tmp_path / "bare.onnx"
    proto = onnx.load(str(exported_model))
    del proto.metadata_props[:]
    onnx.save(proto, str(bare))
    from crnn_onnx.inference.predictor import Predictor

    with pytest.raises(CRNNError, match=r"pass config= with the YAML") as caught:
        Predictor(bare)
    assert "--" not in str(caught.value)
    crop = tmp_path / "crop.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(crop), np.full((32, 80, 3), 200, np.uint8))
    result = CliRunner().invoke(app, ["predict", str(crop), "--model", str(bare)])
    assert result.exit_code == 1
    assert "pass --config with the YAML" in result.stderr
