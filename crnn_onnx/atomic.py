"""Atomic file output: a file appears complete or not at all.

Every file the toolkit writes (models, checkpoints, results, labels) is written to a
temporary name in the destination folder and renamed over the destination only when
complete, so a crash, a full disk or a failed verification never leaves a half-written file
where a reader expects a whole one, and never destroys the previous file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from crnn_onnx.errors import CRNNError

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(output: str | Path, *, make_parents: bool = True,
                suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; rename it over ``output`` on success.

    The caller writes the temporary path (any way it likes) inside the ``with`` block. When
    the block ends normally the file replaces ``output`` in one rename; when it raises, the
    temporary file is removed and ``output`` is left as it was.

    Args:
        output: the destination file.
        make_parents: create missing parent folders (otherwise a missing folder is an error).
        suffix: the kind of file expected (``".onnx"``), named in the message when
            ``output`` is a directory.

    Raises:
        CRNNError: ``output`` is a directory, its folder cannot be created or is missing, or
            an ``OSError`` (disk full, permissions) occurs while writing or renaming; the
            message names ``output``.
    """
    output = Path(output)
    if output.is_dir():
        wanted = f"a file name ending {suffix}" if suffix else "a file name"
        raise CRNNError(f"cannot write {str(output)!r}: it is a directory; give {wanted}")
    folder = output.parent
    if make_parents:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CRNNError(f"cannot create folder {str(folder)!r}: {err.strerror or err}"
                            ) from None
    elif not folder.is_dir():
        raise CRNNError(f"cannot write {str(output)!r}: folder {str(folder)!r} does not exist")
    tmp = output.with_name(f".{output.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, output)
    except OSError as err:
        raise CRNNError(f"cannot write {str(output)!r}: {err.strerror or err}") from None
    finally:
        with contextlib.suppress(OSError):  # never mask the error that got us here
            tmp.unlink(missing_ok=True)
