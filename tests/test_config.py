"""CRNNConfig: YAML loading and validation, dict files, the ONNX metadata round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from crnn_onnx.config import (
    BLANK_INDEX,
    DEFAULT_CHARSET,
    CRNNConfig,
    load_config,
    read_dict_file,
)
from crnn_onnx.contract import config_from_metadata, config_to_metadata, has_config
from crnn_onnx.errors import CRNNError

REPO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "crnn.yaml"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_equal_the_shipped_yaml() -> None:
    assert load_config(REPO_CONFIG) == CRNNConfig()
    assert load_config(None) == CRNNConfig()


def test_defaults() -> None:
    cfg = CRNNConfig()
    assert cfg.image_shape == (3, 32, 100)
    assert "".join(cfg.charset) == DEFAULT_CHARSET
    assert cfg.num_classes == 37
    assert BLANK_INDEX == 0


def test_empty_yaml_gives_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path / "empty.yaml", "")) == CRNNConfig()


def test_partial_yaml_keeps_other_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path / "c.yaml", "image_shape: [3, 32, 160]\n"))
    assert cfg.width == 160
    assert cfg.charset == CRNNConfig().charset


def test_dict_path_relative_to_yaml_and_duplicates_skipped(tmp_path: Path) -> None:
    (tmp_path / "dicts").mkdir()
    _write(tmp_path / "dicts" / "chars.txt", "a\nb\na\n\nc\nb\n")
    yaml_path = _write(tmp_path / "c.yaml", "dict_path: dicts/chars.txt\n")
    cfg = load_config(yaml_path)
    assert cfg.charset == ("a", "b", "c")  # first occurrence wins, blank lines ignored
    assert cfg.num_classes == 4


def test_dict_path_absolute(tmp_path: Path) -> None:
    chars = _write(tmp_path / "chars.txt", "x\ny\n")
    other = tmp_path / "elsewhere"
    other.mkdir()
    cfg = load_config(_write(other / "c.yaml", f"dict_path: {chars}\n"))
    assert cfg.charset == ("x", "y")


def test_read_dict_file_keeps_multichar_entries(tmp_path: Path) -> None:
    assert read_dict_file(_write(tmp_path / "d.txt", "ab\nc\nab\n")) == ("ab", "c")


def test_missing_dict_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match=r"nope\.txt"):
        load_config(_write(tmp_path / "c.yaml", "dict_path: nope.txt\n"))


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match="'imgH'"):
        load_config(_write(tmp_path / "c.yaml", "imgH: 32\n"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("image_shape: abc", "image_shape"),  # not a list
        ("image_shape: [3, 32]", "image_shape"),  # two entries
        ("image_shape: [3, 32.5, 100]", "image_shape"),  # not integers
        ("mean: [0.5, 0.5]", "mean"),
        ("std: [a, b, c]", "std"),
        ("pad_value: grey", "pad_value"),
        ("keep_ratio: 1", "keep_ratio"),  # YAML booleans only
        ("bgr_to_rgb: 'yes'", "bgr_to_rgb"),
        ("width_policy: widest", "width_policy"),  # not a policy
        ("width_policy: [bucket]", "width_policy"),
        ("charset: 123", "charset"),
        ("dict_path: [a]", "dict_path"),
    ],
)
def test_wrong_types_are_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(CRNNError, match=f"'{key}'"):
        load_config(_write(tmp_path / "c.yaml", text + "\n"))


def test_charset_and_dict_path_together_rejected(tmp_path: Path) -> None:
    _write(tmp_path / "d.txt", "a\n")
    with pytest.raises(CRNNError, match="either 'charset' or 'dict_path'"):
        load_config(_write(tmp_path / "c.yaml", "charset: abc\ndict_path: d.txt\n"))


@pytest.mark.parametrize("height", [48, 64, 16])
def test_height_other_than_32_rejected(tmp_path: Path, height: int) -> None:
    with pytest.raises(CRNNError, match="height must be 32"):
        load_config(_write(tmp_path / "c.yaml", f"image_shape: [3, {height}, 100]\n"))


def test_invalid_values_rejected() -> None:
    with pytest.raises(CRNNError, match="channels"):
        CRNNConfig(image_shape=(1, 32, 100))
    with pytest.raises(CRNNError, match="pad_value"):
        CRNNConfig(pad_value=300.0)
    with pytest.raises(CRNNError, match="std"):
        CRNNConfig(std=(0.2, 0.0, 0.2))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("image_shape: [3, 32", "not valid YAML"),
        ("- a\n- b", "mapping"),
    ],
)
def test_malformed_yaml(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(CRNNError, match=match):
        load_config(_write(tmp_path / "c.yaml", text))


def test_missing_config_file_is_an_error_not_a_default(tmp_path: Path) -> None:
    with pytest.raises(CRNNError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


def test_replace_returns_validated_copy() -> None:
    cfg = CRNNConfig()
    wider = cfg.replace(image_shape=(3, 32, 200))
    assert wider.width == 200 and cfg.width == 100
    with pytest.raises(CRNNError):
        cfg.replace(image_shape=(3, 48, 100))


@pytest.mark.parametrize(
    "cfg",
    [
        CRNNConfig(),
        CRNNConfig(
            image_shape=(3, 32, 256),
            charset=("ä", "ß", "中", "ab", '"', "\\"),  # non-ASCII, multi-char, JSON specials
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.25, 0.125),
            pad_value=0.0,
            keep_ratio=False,
            bgr_to_rgb=False,
            width_policy="bucket",
        ),
    ],
)
def test_metadata_round_trip(cfg: CRNNConfig) -> None:
    metadata = config_to_metadata(cfg)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    assert has_config(metadata)
    assert config_from_metadata(metadata) == cfg


def test_from_metadata_without_metadata_gives_the_hint() -> None:
    assert not has_config({"other": "x"})
    with pytest.raises(CRNNError, match="config="):
        config_from_metadata({"other": "x"})


def test_from_metadata_rejects_malformed_and_foreign_blank() -> None:
    metadata = config_to_metadata(CRNNConfig())
    with pytest.raises(CRNNError, match="malformed"):
        config_from_metadata({**metadata, "crnn_onnx.mean": "[0.5,"})
    with pytest.raises(CRNNError, match="blank index is 36"):
        config_from_metadata({**metadata, "crnn_onnx.blank_index": "36"})
