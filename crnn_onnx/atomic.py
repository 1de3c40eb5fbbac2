"""Atomic output: a file (or folder) appears complete or not at all.

Every file the toolkit writes (models, checkpoints, results, labels, model repositories) is
written under a temporary name in the destination folder and renamed over the destination
only when complete, so a crash, a full disk or a failed verification never leaves a
half-written file where a reader expects a whole one, and never destroys the previous one.
:func:`atomic_path` hands out a temporary path, :func:`atomic_output` a text stream (or
stdout), :func:`atomic_folder` a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

from crnn_onnx.errors import CRNNError

__all__ = ["atomic_folder", "atomic_output", "atomic_path"]


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


@contextmanager
def atomic_output(path: str | Path | None) -> Iterator[TextIO]:
    """A text stream for the results: stdout, or a file that appears only when complete.

    With a path, the results go to a temporary file beside it, which replaces ``path`` (an
    atomic rename) when the block ends without an exception; on an exception the
    temporary file is removed and ``path`` is left as it was. A symbolic link is followed
    (the file it points to is replaced, the link kept). A path that exists but is not a
    regular file (``/dev/stdout``, a named pipe) is written directly: it cannot be
    replaced, and must not be.

    Raises:
        CRNNError: the folder does not exist or is not writable, ``path`` cannot be
            replaced (e.g. it is a directory), or writing fails (disk full).
    """
    if path is None:
        yield sys.stdout
        return
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    if target.exists() and not target.is_file() and not target.is_dir():
        yield from _direct_output(target)
        return
    folder = target.parent
    if not folder.is_dir():
        raise CRNNError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist")
    if target.is_dir():
        raise CRNNError(f"cannot write {str(target)!r}: it is a directory")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise CRNNError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
            try:
                stream.flush()
                os.fsync(stream.fileno())
            except OSError as err:  # disk full or I/O error surfacing at the end
                raise CRNNError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600 files
        try:
            os.replace(tmp_name, target)
        except OSError as err:
            raise CRNNError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp_name)
        raise


def _direct_output(target: Path) -> Iterator[TextIO]:
    try:
        stream = open(target, "w", encoding="utf-8", newline="")
    except OSError as err:
        raise CRNNError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
    with stream:
        yield stream


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_folder(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; rename it to ``target`` on success.

    On an exception the temporary folder is removed and ``target`` left as it was. With
    ``replace`` an existing ``target`` is removed just before the rename.

    Raises:
        CRNNError: the parent folder cannot be created or written; the message names
            ``target``.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent))
    except OSError as err:
        raise CRNNError(f"cannot write {target.parent}: {err.strerror or err}") from None
    try:
        yield staging
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700 folders
        if replace and target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise CRNNError(f"cannot write {target}: {err.strerror or err}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
