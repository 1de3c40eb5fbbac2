"""Safe checkpoint loading and saving for the CRNN.

:func:`load_checkpoint` never executes code from a pickle: it always calls ``torch.load`` with
``weights_only=True`` and turns every refusal or corruption into a one-line
:class:`~crnn_onnx.errors.CRNNError`. It accepts the layouts met in practice:

* upstream CRNN-TextRec: ``{'model': state_dict, 'optimizer': ..., 'epoch': ..., 'best_acc': ...}``
* ``{'state_dict': state_dict, ...}`` (PyTorch Lightning and many scripts)
* a bare ``state_dict``

with keys optionally prefixed by ``module.`` (DataParallel) and/or ``model.`` (Lightning), in
any combination. Half-precision tensors are restored to float32.

This module imports torch: it is used for export and training only, never for inference.
"""

from __future__ import annotations

import logging
import pickle
import re
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crnn_onnx.atomic import atomic_path
from crnn_onnx.config import CRNNConfig
from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.export.model import CRNN

try:  # numpy >= 2
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import scalar as _np_scalar  # type: ignore[no-redef]

__all__ = ["load_checkpoint", "normalize_state_dict", "save_checkpoint"]

logger = logging.getLogger(__name__)

#: Keys under which checkpoints nest their state dict, tried in this order.
_STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict")
#: Wrapper prefixes stripped from keys: DataParallel/DDP and Lightning modules.
_KEY_PREFIXES = ("module.", "model.")
#: How many names to show when listing missing/unexpected/mismatched keys.
_SHOW = 3

# What a corrupt or foreign file can make the weights-only unpickler raise is open-ended
# (random bytes give KeyError, IndexError, EOFError, ...); these are the families seen.
_LOAD_ERRORS = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    ArithmeticError,
    struct.error,
)

# Training scripts often store metrics as numpy scalars (``'best_acc': np.float64(0.9)``).
# Rebuilding a numeric numpy scalar from its dtype and raw bytes runs no code, so these
# globals are allowed on top of torch's weights-only set (both numpy 1 and 2 module paths).
_NUMPY_SCALAR_GLOBALS: list[Any] = [
    (_np_scalar, "numpy.core.multiarray.scalar"),
    (_np_scalar, "numpy._core.multiarray.scalar"),
    np.dtype,
    *(type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                  np.float16, np.float32, np.float64)),
]


def _read_checkpoint(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``, every failure mapped to a one-line error."""
    if not path.exists():
        raise CRNNError(f"checkpoint {str(path)!r} not found")
    if path.is_dir():
        raise CRNNError(f"checkpoint {str(path)!r} is a directory, not a file")
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol N": noise for a file we reject anyway.
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(_NUMPY_SCALAR_GLOBALS):
                return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        raise CRNNError(f"cannot read checkpoint {str(path)!r}: {err.strerror or err}") from None
    except pickle.UnpicklingError as err:
        message = str(err)
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", message)
        if unsafe:
            raise CRNNError(
                f"checkpoint {str(path)!r} refers to {unsafe.group(1)}, which is not a tensor "
                "or plain container; refusing to unpickle it (that could run code). If you "
                "trust the file, re-save just its state dict with torch.save"
            ) from None
        raise CRNNError(
            f"checkpoint {str(path)!r} is not a PyTorch checkpoint (corrupt or another format)"
        ) from None
    except EOFError:
        raise CRNNError(f"checkpoint {str(path)!r} is empty or truncated") from None
    except _LOAD_ERRORS as err:
        raise CRNNError(
            f"checkpoint {str(path)!r} is not a readable PyTorch checkpoint "
            f"({type(err).__name__}: {one_line(err, keep='first', limit=120)})"
        ) from None


def _strip_prefixes(key: str) -> str:
    while key.startswith(_KEY_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _find_state_dict(obj: Any, source: str) -> Mapping[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint, whichever layout it uses."""
    if not isinstance(obj, Mapping):
        raise CRNNError(f"{source} holds a {type(obj).__name__}, not a state dict")
    # Nested layouts such as {'state_dict': {'model': ...}} exist; a few levels are plenty.
    for _ in range(3):
        if _is_state_dict(obj):
            return obj
        nested = next((obj[k] for k in _STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            break
        obj = nested
    keys = ", ".join(repr(k) for k in list(obj)[:5])
    raise CRNNError(
        f"{source} holds no state dict (expected tensors, or one under 'model' or "
        f"'state_dict'; found keys {keys or 'none'})"
    )


def normalize_state_dict(
    state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes and restore reduced-precision floats to float32.

    Args:
        state_dict: tensors keyed by (possibly ``module.``/``model.``-prefixed) names.
        source: how to name the origin in error messages.

    Returns:
        A new dict with upstream key names; floating tensors are float32, others unchanged.

    Raises:
        CRNNError: two keys collapse to the same name once prefixes are stripped.
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        name = _strip_prefixes(key)
        if name in out:
            raise CRNNError(f"{source} holds {name!r} twice (with and without a wrapper prefix)")
        out[name] = tensor.float() if tensor.is_floating_point() else tensor
    return out


def _count(n: int, what: str) -> str:
    """``"1 missing key"``, ``"3 missing keys"``."""
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOW])
    more = f", ... ({len(names) - _SHOW} more)" if len(names) > _SHOW else ""
    return shown + more


def _check_against(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    expected = model.state_dict()
    # Checkpoints from before PyTorch 0.4.1 lack BatchNorm's counter; torch fills it in.
    missing = sorted(
        k for k in expected if k not in state and not k.endswith("num_batches_tracked")
    )
    unexpected = sorted(k for k in state if k not in expected)
    problems = []
    if missing:
        problems.append(f"{_count(len(missing), 'missing key')} ({_listed(missing)})")
    if unexpected:
        problems.append(f"{_count(len(unexpected), 'unexpected key')} ({_listed(unexpected)})")
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if mismatched:
        problems.append(
            f"{_count(len(mismatched), 'tensor')} with the wrong shape (checkpoint vs model: "
            f"{_listed(mismatched)})"
        )
    if problems:
        raise CRNNError(f"{source} does not match the CRNN architecture: " + "; ".join(problems))


def load_checkpoint(path: str | Path, config: CRNNConfig) -> CRNN:
    """Load a trained CRNN from a ``.pth`` checkpoint, safely.

    Args:
        path: checkpoint file in any layout described in the module docstring.
        config: gives the class count the checkpoint must have (``config.num_classes``).

    Returns:
        The CRNN on the CPU, in eval mode, with float32 weights.

    Raises:
        CRNNError: the file is missing, unreadable, not a checkpoint, would need to run code
            to unpickle, or does not fit the architecture or the charset.
    """
    path = Path(path)
    source = f"checkpoint {str(path)!r}"
    state = normalize_state_dict(_find_state_dict(_read_checkpoint(path), source), source)

    fc_weight = state.get("head.fc.weight")
    if fc_weight is not None and fc_weight.dim() == 2 and fc_weight.shape[0] != config.num_classes:
        raise CRNNError(
            f"{source} has {fc_weight.shape[0]} classes but the charset gives "
            f"{config.num_classes} ({len(config.charset)} characters + blank); "
            "use the charset the model was trained with"
        )
    model = CRNN(config.num_classes)
    _check_against(model, state, source)
    # A finite sum proves every element finite, cheaply; only otherwise look element-wise.
    bad = [
        k for k, t in state.items()
        if t.is_floating_point() and not torch.isfinite(t.sum()) and not torch.isfinite(t).all()
    ]
    if bad:
        raise CRNNError(f"{source} holds NaN or infinite values in {_listed(bad)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # _check_against should have caught it; keep it one line
        raise CRNNError(f"{source} does not load: {one_line(err, keep='first')}") from None
    logger.debug("loaded %s (%d tensors)", path, len(state))
    return model.float().eval()


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    *,
    epoch: int,
    extra: Mapping[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``{'model': state_dict, 'epoch': epoch, **extra}`` atomically (upstream layout).

    The file is written next to ``path`` under a temporary name and then renamed over it, so
    an interrupted save never leaves a truncated checkpoint behind.

    Args:
        model: the network; a DataParallel/DDP wrapper is unwrapped first.
        path: destination ``.pth`` file; its folder is created if needed.
        epoch: stored under ``'epoch'``.
        extra: more entries, e.g. ``{'optimizer': opt.state_dict(), 'best_acc': 0.9}``;
            they must be loadable with ``weights_only=True`` (tensors, numbers, strings,
            lists, dicts).
        half: store floating tensors as float16 (half the size; :func:`load_checkpoint`
            restores float32).

    Returns:
        The written path.

    Raises:
        CRNNError: ``extra`` overrides ``'model'``/``'epoch'``, or the file cannot be written.
    """
    path = Path(path)
    extra = dict(extra or {})
    clash = sorted({"model", "epoch"} & set(extra))
    if clash:
        raise CRNNError(f"save_checkpoint: extra must not override {', '.join(clash)}")
    module = getattr(model, "module", model)
    state = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
        for k, v in module.state_dict().items()
    }
    payload = {"model": state, "epoch": int(epoch), **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path
