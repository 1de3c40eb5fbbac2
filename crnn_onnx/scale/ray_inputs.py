"""Bulk recognition's inputs: local paths and URIs listed in order, and the optional imports.

Local paths expand exactly as ``crnn-onnx predict`` expands them
(:func:`crnn_onnx.inference.images.expand_paths`); URIs (``s3://``, ``gs://``, ``hdfs://``,
``file://``) are opened with pyarrow's filesystems, a folder listed recursively in sorted
order. Ray and pyarrow are imported only when used, and their absence is a
:class:`~crnn_onnx.errors.CRNNError` naming the extra to install.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.inference.images import IMAGE_EXTENSIONS, expand_paths

__all__ = ["RAY_EXTRA_HINT", "BulkInput", "import_pyarrow", "import_ray", "list_inputs"]

RAY_EXTRA_HINT = "pip install 'crnn-onnx[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module with Ray Data loaded.

    Raises:
        CRNNError: Ray (or the pyarrow and pandas it brings) is not installed.
    """
    try:
        import ray
        import ray.data
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] not in ("ray", "pyarrow", "pandas"):
            raise
        raise CRNNError(f"bulk recognition needs Ray: {RAY_EXTRA_HINT}") from None
    return ray


def import_pyarrow() -> ModuleType:
    """The ``pyarrow`` module with its filesystems loaded.

    Raises:
        CRNNError: pyarrow is not installed.
    """
    try:
        import pyarrow
        import pyarrow.fs
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] != "pyarrow":
            raise
        raise CRNNError(f"bulk recognition needs pyarrow: {RAY_EXTRA_HINT}") from None
    return pyarrow


def _is_uri(arg: str) -> bool:
    return "://" in arg


@dataclass(frozen=True)
class BulkInput:
    """One row to recognise: a local path or a URI (``fs_index`` set), or an error."""

    path: str
    error: str | None = None
    fs_index: int | None = None
    fs_path: str | None = None


def list_inputs(paths: Sequence[str | Path]) -> tuple[list[BulkInput], list[Any]]:
    """The inputs in order, and the pyarrow filesystems their URIs are read through."""
    inputs: list[BulkInput] = []
    filesystems: list[Any] = []
    for raw in paths:
        arg = os.fspath(raw)
        if not _is_uri(arg):
            inputs.extend(BulkInput(src.path, src.error) for src in expand_paths([arg]))
            continue
        pa = import_pyarrow()
        try:
            fs, root = pa.fs.FileSystem.from_uri(arg)
            info = fs.get_file_info(root)
            if info.type == pa.fs.FileType.Directory:
                listed = fs.get_file_info(pa.fs.FileSelector(root, recursive=True))
                found = sorted(
                    item.path for item in listed
                    if item.type == pa.fs.FileType.File
                    and os.path.splitext(item.path)[1].lower() in IMAGE_EXTENSIONS
                )
            elif info.type == pa.fs.FileType.File:
                found = [root]
            else:
                inputs.append(BulkInput(arg, "no such file or directory"))
                continue
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            inputs.append(BulkInput(arg, f"cannot open URI: {one_line(err, keep='first')}"))
            continue
        if not found:
            inputs.append(BulkInput(arg, "directory holds no image files"))
            continue
        filesystems.append(fs)
        base, root = arg.rstrip("/"), root.rstrip("/")
        inputs.extend(
            BulkInput(base + path[len(root):], fs_index=len(filesystems) - 1, fs_path=path)
            for path in found
        )
    return inputs, filesystems
