"""Decoding options through the CLI, on the shipped model and its demo crops: allowlists,
beam search, lexicons, and their usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crnn_onnx.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
runner = CliRunner()


def _texts(*args: str | Path) -> dict[str, str | None]:
    result = runner.invoke(app, ["predict", *map(str, args), "-f", "jsonl", "-q"])
    assert result.exit_code == 0, result.output
    return {Path(r["path"]).name: r["text"] for r in map(json.loads, result.stdout.splitlines())}


def test_a_digit_allowlist_reads_only_digits_from_letters_and_the_digits_of_a_number() -> None:
    greedy = _texts(SAMPLES)
    digits = _texts(SAMPLES, "--allowlist", "0123456789")
    assert greedy["1981.png"] == digits["1981.png"] == "1981"
    for name, text in digits.items():
        assert text is not None and set(text) <= set("0123456789"), (name, text)
    assert digits["amends.png"] != greedy["amends.png"]


def test_a_blocklist_keeps_its_characters_out() -> None:
    blocked = _texts(SAMPLES / "amends.png", "--blocklist", "e")
    assert "e" not in blocked["amends.png"]


def test_beam_search_reads_the_samples_as_greedy_does() -> None:
    assert _texts(SAMPLES, "--decoder", "beam", "--beam-width", "5") == _texts(SAMPLES)


def test_every_reading_is_a_lexicon_word(tmp_path: Path) -> None:
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("Amends\nlonghair\nzwingli\n1980\ncatalina\ningredient\n",
                       encoding="utf-8")
    read = _texts(SAMPLES, "--lexicon", lexicon)
    assert set(read.values()) <= {"amends", "longhair", "zwingli", "1980", "catalina",
                                  "ingredient"}
    assert read["amends.png"] == "amends" and read["1981.png"] == "1980"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--allowlist", "ABC"], "--allowlist holds characters the model cannot read: 'A'"),
        (["--decoder", "greedy", "--lexicon", "LEXICON"], "a lexicon needs --decoder beam"),
        (["--precision", "bf16"], "--precision bf16 needs --engine openvino"),
    ],
)
def test_arguments_that_do_not_fit_are_usage_errors(args: list[str], message: str,
                                                    tmp_path: Path) -> None:
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("word\n", encoding="utf-8")
    args = [str(lexicon) if a == "LEXICON" else a for a in args]
    result = runner.invoke(app, ["predict", str(SAMPLES / "1981.png"), *args])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}")


def test_eval_takes_the_decoding_options(tmp_path: Path) -> None:
    labels = tmp_path / "labels.tsv"
    labels.write_text("".join(f"{p}\t{p.stem}\n" for p in sorted(SAMPLES.glob("*.png"))),
                      encoding="utf-8")
    result = runner.invoke(app, ["eval", str(labels), "--allowlist", "0123456789",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["correct"] == 1  # only 1981 is all digits
