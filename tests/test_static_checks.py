"""Lint and type checks: the package stays ruff-clean and mypy-clean (run by the test suite,
so the README's one test command covers them)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ruff and mypy in subprocesses

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)


def test_ruff_finds_no_lint_in_package_tests_and_scripts() -> None:
    result = _run("ruff", "check", "--no-cache", "crnn_onnx", "tests", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_errors_in_the_package(tmp_path: Path) -> None:
    # The cache goes to a temporary folder: tests never write into the working tree.
    result = _run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"))
    assert result.returncode == 0, result.stdout + result.stderr
