"""Bulk recognition's inputs: local paths and URIs, listed in order.

Local paths expand exactly as the Predictor expands them
(:func:`crnn_onnx.inference.images.expand_paths`); URIs (``s3://``, ``gs://``, ``hdfs://``,
``file://``) are opened with pyarrow's filesystems, a folder listed recursively in sorted
order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crnn_onnx.errors import one_line
from crnn_onnx.inference.images import IMAGE_EXTENSIONS, expand_paths
from crnn_onnx.scale.ray_cluster import pyarrow_module

__all__ = ["BulkInput", "list_inputs"]

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
        pa = pyarrow_module()
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
