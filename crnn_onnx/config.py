"""CRNNConfig: the one validated place for model and preprocessing settings.

A config comes from YAML (``configs/crnn.yaml``), travels inside every exported ONNX file as
``metadata_props`` and is read back from it (:mod:`crnn_onnx.contract`), so a model file alone
is enough to predict.

Class layout follows upstream CRNN-TextRec's ``map_char2id``: the CTC blank is class 0 and
character ``i`` of the charset (duplicates skipped, first occurrence wins) is class ``i + 1``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from crnn_onnx.errors import CRNNError

__all__ = [
    "BLANK_INDEX",
    "CHANNELS",
    "DEFAULT_CHARSET",
    "HEIGHT",
    "MAX_WIDTH",
    "WIDTH_POLICIES",
    "CRNNConfig",
    "WidthPolicy",
    "config_from_mapping",
    "load_config",
    "read_dict_file",
]

#: CTC blank class index, as upstream CRNN-TextRec places it.
BLANK_INDEX = 0
#: Input channels (RGB after preprocessing) and height: the backbone reduces 32 rows to one.
CHANNELS = 3
HEIGHT = 32
#: Widest model input accepted (pixels). Crops are 32 high: 4096 is an aspect ratio of 128,
#: far beyond a word; the cap keeps a typo (or a hostile model's metadata) from making
#: preprocessing allocate gigabytes.
MAX_WIDTH = 4096
DEFAULT_CHARSET = "0123456789abcdefghijklmnopqrstuvwxyz"
#: How input widths are chosen (:func:`crnn_onnx.inference.preprocess.target_width`):
#: ``fixed``, every crop squeezed or padded to the config width; ``bucket``, a width from each
#: crop's aspect ratio.
WidthPolicy = Literal["fixed", "bucket"]
WIDTH_POLICIES: tuple[str, ...] = get_args(WidthPolicy)


def _dedupe(chars: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(chars))


def read_dict_file(path: str | Path) -> tuple[str, ...]:
    """Read an upstream-style dictionary: one character per line, duplicates skipped.

    Raises:
        CRNNError: the file is missing, unreadable, or holds no characters.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise CRNNError(f"cannot read dict_path {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise CRNNError(f"dict_path {str(path)!r} is not UTF-8 text") from None
    chars = [line for line in lines if line != ""]
    if not chars:
        raise CRNNError(f"dict_path {str(path)!r} holds no characters")
    return _dedupe(chars)


@dataclass(frozen=True)
class CRNNConfig:
    """Model and preprocessing settings.

    Attributes:
        image_shape: (C, H, W) of the model input; C must be 3 and H 32. W is the default
            (and, for static models, the only) input width.
        charset: the characters, class ``i + 1`` for ``charset[i]``; class 0 is the blank.
        mean: per-channel mean in RGB order, on 0..1 scale (multiplied by 255 when applied).
        std: per-channel standard deviation in RGB order, on 0..1 scale.
        pad_value: raw pixel value (0..255) used to right-pad resized images.
        keep_ratio: resize to height H keeping the aspect ratio (capped at W), then pad.
        bgr_to_rgb: convert OpenCV's BGR to RGB before normalising (upstream does).
        width_policy: the width policy the model was trained for, which inference uses
            unless told otherwise: ``fixed`` (upstream's models) or ``bucket``.
    """

    image_shape: tuple[int, int, int] = (3, 32, 100)
    charset: tuple[str, ...] = tuple(DEFAULT_CHARSET)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    pad_value: float = 128.0
    keep_ratio: bool = True
    bgr_to_rgb: bool = True
    width_policy: WidthPolicy = "fixed"

    def __post_init__(self) -> None:
        c, h, w = self.image_shape
        if c != CHANNELS:
            raise CRNNError(f"config key 'image_shape': channels must be {CHANNELS}, got {c}")
        if h != HEIGHT:
            raise CRNNError(f"config key 'image_shape': height must be {HEIGHT} (the CRNN "
                            f"backbone needs it), got {h}")
        if not 4 <= w <= MAX_WIDTH:
            raise CRNNError(
                f"config key 'image_shape': width must be within 4..{MAX_WIDTH}, got {w}"
            )
        if not self.charset:
            raise CRNNError("config key 'charset': must hold at least one character")
        if len(set(self.charset)) != len(self.charset):
            raise CRNNError("config key 'charset': characters must be unique")
        if any(not ch for ch in self.charset):
            raise CRNNError("config key 'charset': empty entries are not allowed")
        if not all(math.isfinite(m) for m in self.mean):
            raise CRNNError("config key 'mean': every value must be a finite number")
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            raise CRNNError("config key 'std': every value must be a positive finite number")
        if not 0 <= self.pad_value <= 255:
            raise CRNNError(f"config key 'pad_value': must be within 0..255, got {self.pad_value}")
        if self.width_policy not in WIDTH_POLICIES:
            raise CRNNError(f"config key 'width_policy': must be one of "
                            f"{', '.join(WIDTH_POLICIES)}, got {self.width_policy!r}")

    @property
    def height(self) -> int:
        return self.image_shape[1]

    @property
    def width(self) -> int:
        return self.image_shape[2]

    @property
    def num_classes(self) -> int:
        """Classes C the model outputs: the characters plus the blank."""
        return len(self.charset) + 1

    def replace(self, **changes: Any) -> CRNNConfig:
        """A validated copy with ``changes`` applied; the original is never mutated."""
        return dataclasses.replace(self, **changes)


_FIELD_TYPES: dict[str, str] = {
    "image_shape": "a list of 3 integers",
    "charset": "a string or a list of strings",
    "dict_path": "a path string",
    "mean": "a list of 3 numbers",
    "std": "a list of 3 numbers",
    "pad_value": "a number",
    "keep_ratio": "true or false",
    "bgr_to_rgb": "true or false",
    "width_policy": " or ".join(WIDTH_POLICIES),
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _triple(key: str, value: Any, *, integer: bool) -> tuple[Any, ...]:
    ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(
        (isinstance(v, int) and not isinstance(v, bool)) if integer else _is_number(v)
        for v in value
    )
    if not ok:
        raise CRNNError(f"config key {key!r} must be {_FIELD_TYPES[key]}, got {value!r}")
    return tuple(int(v) if integer else float(v) for v in value)


def config_from_mapping(raw: Mapping[str, Any], *, source: str, base_dir: Path | None = None
                        ) -> CRNNConfig:
    """A validated config from parsed YAML or metadata values.

    Args:
        raw: key -> value; every key optional, unknown keys refused.
        source: named in messages (``config 'x.yaml'``, ``model metadata``).
        base_dir: folder a relative ``dict_path`` is resolved against.

    Raises:
        CRNNError: unknown key, wrong type, or a value that fails validation.
    """
    unknown = sorted(set(raw) - set(_FIELD_TYPES))
    if unknown:
        raise CRNNError(
            f"{source}: unknown config key {unknown[0]!r} (known: {', '.join(_FIELD_TYPES)})"
        )
    if "charset" in raw and "dict_path" in raw:
        raise CRNNError(f"{source}: give either 'charset' or 'dict_path', not both")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("image_shape", "mean", "std"):
            kwargs[key] = _triple(key, value, integer=key == "image_shape")
        elif key == "charset":
            if isinstance(value, str):
                kwargs["charset"] = _dedupe(list(value))
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                kwargs["charset"] = _dedupe(value)
            else:
                raise CRNNError(f"config key 'charset' must be {_FIELD_TYPES[key]}, got {value!r}")
        elif key == "dict_path":
            if not isinstance(value, str):
                raise CRNNError(
                    f"config key 'dict_path' must be {_FIELD_TYPES[key]}, got {value!r}")
            path = Path(value)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            kwargs["charset"] = read_dict_file(path)
        elif key == "pad_value":
            if not _is_number(value):
                raise CRNNError(
                    f"config key 'pad_value' must be {_FIELD_TYPES[key]}, got {value!r}")
            kwargs[key] = float(value)
        elif key == "width_policy":
            if not isinstance(value, str):
                raise CRNNError(f"config key {key!r} must be {_FIELD_TYPES[key]}, got {value!r}")
            kwargs[key] = value
        else:  # keep_ratio, bgr_to_rgb
            if not isinstance(value, bool):
                raise CRNNError(f"config key {key!r} must be {_FIELD_TYPES[key]}, got {value!r}")
            kwargs[key] = value
    return CRNNConfig(**kwargs)


def load_config(path: str | Path | None = None) -> CRNNConfig:
    """Load a YAML config; ``None`` gives the built-in defaults (those of ``configs/crnn.yaml``).

    A relative ``dict_path`` is resolved against the YAML file's folder. Missing keys take
    their defaults; unknown keys and wrong types raise.

    Raises:
        CRNNError: the file is missing, not YAML, not a mapping, or fails validation.
    """
    if path is None:
        return CRNNConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise CRNNError(f"cannot read config {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise CRNNError(f"config {str(path)!r} is not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CRNNError(f"config {str(path)!r} is not valid YAML{where}") from None
    except RecursionError:
        raise CRNNError(f"config {str(path)!r} is nested too deeply to be a config") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise CRNNError(f"config {str(path)!r} must be a mapping of keys to values")
    return config_from_mapping(raw, source=f"config {str(path)!r}", base_dir=path.parent)
