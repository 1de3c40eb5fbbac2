"""crnn_onnx.evaluation.report: the HTML page shows every misread, worst first, safely."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from crnn_onnx.errors import CRNNError
from crnn_onnx.evaluation.evaluate import EvalReport, score
from crnn_onnx.evaluation.report import worst_first, write_html_report

HOSTILE = '<b>&"x</b>'
#: Lower-case letters plus what HTML treats specially; scored exactly (as written), so that a
#: hostile truth reaches the page.
CHARSET = list("abcdefghijklmnopqrstuvwxyz<>&\"/")
VOID = {"img", "meta", "br", "link", "input", "hr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag and (cls is None or cls in child.attrs.get("class", "")
                                         .split()):
                    found.append(child)
                found.extend(child.find_all(tag, cls))
        return found


class TreeBuilder(HTMLParser):
    """The page as a tree of :class:`Node`, built with the standard library's parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(index: Path) -> Node:
    builder = TreeBuilder()
    builder.feed(index.read_text(encoding="utf-8"))
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


def cells(row: Node) -> dict[str, Node]:
    """A misread row's cells by their (last) class: truth, reading, confidence ..."""
    return {td.attrs["class"].split()[-1]: td for td in row.find_all("td")}


def write_crop(path: Path, width: int = 60, height: int = 20) -> Path:
    """A small word-like crop, written with cv2 (through imencode, so any file name works)."""
    image = np.full((height, width, 3), 235, np.uint8)
    cv2.putText(image, "ab", (4, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1)
    ok, data = cv2.imencode(path.suffix or ".png", image)
    assert ok
    path.write_bytes(data.tobytes())
    return path


@pytest.fixture
def evaluation(tmp_path: Path) -> EvalReport:
    """Eight images: two right, six misread in ways that exercise the worst-first order."""
    images = tmp_path / "images"
    images.mkdir()
    cases = [  # truth, reading, confidence
        ("cat", "cat", 0.99),
        ("dog", "dig", 0.90),      # 1/3
        ("house", "hose", 0.50),   # 1/5
        ("tree", "tree", 0.97),
        ("bird", None, None),      # unreadable: 4/4
        ("sun", "son", 0.95),      # 1/3, more confident than dog
        ("ox", "", 0.30),          # 2/2, read (as nothing)
        (HOSTILE, '<b>&x</b>', 0.80),  # 1/10
    ]
    paths = [str(write_crop(images / f"{i}.png")) for i in range(len(cases))]
    hostile = write_crop(images / '<b>&"x.png')
    paths[-1] = str(hostile)
    return score([c[0] for c in cases], [c[1] for c in cases], CHARSET, paths,
                 confidences=[c[2] for c in cases],
                 errors=[None, None, None, None, "cannot decode image (empty file)", None, None,
                         None], exact=True)


def test_every_misread_is_shown_worst_first_with_its_crop(evaluation: EvalReport,
                                                          tmp_path: Path) -> None:
    index = write_html_report(tmp_path / "report", evaluation)
    assert index == tmp_path / "report" / "index.html"
    rows = parse(index).find_all("tr", "misread")
    shown = [(cells(r)["truth"].text(), cells(r)["reading"].text()) for r in rows]
    # Unreadable first among the 1.0s, then 'sun' before 'dog' (same 1/3, more confident).
    assert shown == [("bird", "unreadable"), ("ox", "(empty)"), ("sun", "son"), ("dog", "dig"),
                     ("house", "hose"), (HOSTILE, "<b>&x</b>")]
    for row, misread in zip(rows, worst_first(evaluation.misreads), strict=True):
        assert cells(row)["path"].text() == misread.path
        if misread.error is not None:
            continue
        (img,) = row.find_all("img")
        assert img.attrs["loading"] == "lazy"
        copied = index.parent / img.attrs["src"]
        assert copied.parent.name == "crops"
        assert copied.read_bytes() == Path(misread.path).read_bytes()
    # The differing characters are highlighted, on both sides.
    marked = [m.text() for m in cells(rows[2])["truth"].find_all("mark")]
    assert marked == ["u"] and [m.text() for m in cells(rows[2])["reading"].find_all("mark")
                                ] == ["o"]


def test_summary_chart_and_confusions_are_shown(evaluation: EvalReport, tmp_path: Path) -> None:
    page = parse(write_html_report(tmp_path / "r", evaluation, model="crnn.onnx",
                                   labels="val.tsv"))
    cards = {div.attrs["id"]: div.find_all("b")[0].text() for div in page.find_all("div", "card")}
    assert cards == {"word-accuracy": "25.00%", "CER": f"{evaluation.cer:.2%}", "images": "8",
                     "correct": "2", "misread": "6", "unreadable": "1"}
    text = page.text()
    assert "model crnn.onnx" in text and "labels val.tsv" in text
    (chart,) = page.find_all("svg")
    bars = chart.text()
    for length, (count, accuracy) in evaluation.by_length.items():
        assert f"{length} char" in bars and f"{accuracy:.0%} of {count}" in bars
    (table,) = page.find_all("table", "confusions")
    pairs = [tuple(td.text() for td in tr.find_all("td")) for tr in table.find_all("tr")[1:]]
    assert ("x", "→", "∅", "1") in pairs  # 'ox' read as nothing: deletions shown as ∅
    assert len(pairs) == len(evaluation.confusions)


def test_hostile_names_and_text_are_escaped(evaluation: EvalReport, tmp_path: Path) -> None:
    index = write_html_report(tmp_path / "r", evaluation, title=HOSTILE, model=HOSTILE,
                              labels=HOSTILE)
    raw = index.read_text(encoding="utf-8")
    assert HOSTILE not in raw and '<b>&"x.png' not in raw
    page = parse(index)
    assert page.find_all("title")[0].text() == HOSTILE == page.find_all("h1")[0].text()
    row = page.find_all("tr", "misread")[-1]
    assert cells(row)["truth"].text() == HOSTILE
    assert cells(row)["path"].text().endswith('<b>&"x.png')
    assert not row.find_all("b")


def test_a_file_name_that_is_not_utf8_is_shown_and_copied(tmp_path: Path) -> None:
    crop = write_crop(tmp_path / os.fsdecode(b"caf\xe9.png"))
    report = score(["cafe"], ["cafo"], CHARSET, [str(crop)], confidences=[0.5])
    page = parse(write_html_report(tmp_path / "r", report))
    (row,) = page.find_all("tr", "misread")
    assert cells(row)["path"].text().endswith("caf\\xe9.png")
    assert (tmp_path / "r" / row.find_all("img")[0].attrs["src"]).read_bytes() == \
        crop.read_bytes()


def test_unreadable_and_missing_images_get_a_placeholder(evaluation: EvalReport,
                                                         tmp_path: Path) -> None:
    gone = score(["word"], ["ward"], CHARSET, [str(tmp_path / "deleted.png")])
    for report, error in ((evaluation, "cannot decode image (empty file)"), (gone, None)):
        out = tmp_path / f"r{len(report.misreads)}"
        row = parse(write_html_report(out, report)).find_all("tr", "misread")[0]
        assert not row.find_all("img") and row.find_all("span", "noimg")
        if error is not None:
            assert cells(row)["detail"].text() == error
    assert sorted(os.listdir(tmp_path / "r1" / "crops")) == []


def test_crops_keep_a_web_extension_and_others_become_png(tmp_path: Path) -> None:
    jpeg, ppm = write_crop(tmp_path / "a.jpg"), write_crop(tmp_path / "b.ppm")
    lmdb = tmp_path / "set.lmdb" / "image-000000001"  # an entry that is no file
    data = cv2.imencode(".png", np.zeros((8, 30, 3), np.uint8))[1].tobytes()
    report = score(["aa", "bb", "cc"], ["a", "b", "c"], CHARSET,
                   [str(jpeg), str(ppm), str(lmdb)])
    out = tmp_path / "r"
    write_html_report(out, report, images={str(lmdb): data})
    assert sorted(p.suffix for p in (out / "crops").iterdir()) == [".jpg", ".png", ".png"]
    assert data in {p.read_bytes() for p in (out / "crops").iterdir()}


def test_rerunning_replaces_the_report_folder(evaluation: EvalReport, tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_html_report(out, evaluation)
    assert len(os.listdir(out / "crops")) == 5
    again = score(["word"], ["ward"], CHARSET, [str(write_crop(tmp_path / "w.png"))])
    page = parse(write_html_report(out, again))
    assert [cells(r)["truth"].text() for r in page.find_all("tr", "misread")] == ["word"]
    assert os.listdir(out / "crops") == ["000001.png"]
    assert sorted(os.listdir(tmp_path)) == ["images", "report", "w.png"]  # no staging left


def test_no_misreads_says_so(tmp_path: Path) -> None:
    page = parse(write_html_report(tmp_path / "r", score(["ab"], ["ab"], CHARSET)))
    assert not page.find_all("tr", "misread") and "No misreads" in page.text()


def test_a_folder_with_other_files_is_never_replaced(evaluation: EvalReport,
                                                     tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CRNNError) as err:
        write_html_report(tmp_path / "mine", evaluation)
    assert str(err.value).startswith(f"out_dir {tmp_path / 'mine'} holds other files")
    assert "\n" not in str(err.value)
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]


def test_a_write_failure_is_one_line_naming_the_folder(evaluation: EvalReport,
                                                       tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CRNNError) as err:
        write_html_report(tmp_path / "file" / "report", evaluation)
    assert str(err.value).startswith(f"cannot write report folder {tmp_path / 'file' / 'report'}")
    assert "\n" not in str(err.value)
