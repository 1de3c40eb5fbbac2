"""Optional dependencies: imported where used, and named with their extra when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from crnn_onnx.errors import CRNNError

__all__ = ["require"]


def require(module: str, *, extra: str, purpose: str, name: str | None = None,
            brings: tuple[str, ...] = (), hint: str = "") -> ModuleType:
    """Import ``module`` (an optional dependency), or fail with one line saying what to install.

    Args:
        module: the module to import (``"ray.data"``, ``"PIL"``).
        extra: the crnn-onnx extra that installs it (``"ray"``).
        purpose: what needs it, starting the message (``"bulk recognition"``).
        name: how the message names the dependency; default the top-level module's name.
        brings: other top-level modules the import needs (pyarrow for Ray Data): their
            absence is reported the same way.
        hint: appended to the message (another way to do without it).

    Raises:
        CRNNError: ``<purpose> needs <name>: pip install 'crnn-onnx[<extra>]'<hint>``.
            An import error inside an installed package (a broken install) propagates.
    """
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = (err.name or "").split(".")[0]
        if missing not in (top, *brings):
            raise
        raise CRNNError(
            f"{purpose} needs {name or top}: pip install 'crnn-onnx[{extra}]'{hint}"
        ) from None
