"""A self-contained HTML page of an evaluation, for finding what the model gets wrong.

:func:`write_html_report` writes ``DIR/index.html`` (inline CSS, an inline SVG chart, no
scripts) and copies the misread crops beside it into ``DIR/crops/``: a summary, accuracy by
word length, the top character confusions, then every misread, worst first
(:func:`worst_first`), with its crop, the truth and the reading (differing characters
highlighted), its confidence or error, and its path.
"""

from __future__ import annotations

import html
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

import cv2
from rapidfuzz.distance import Levenshtein

from crnn_onnx.atomic import atomic_folder
from crnn_onnx.errors import CRNNError
from crnn_onnx.evaluation.evaluate import EvalReport, Misread
from crnn_onnx.inference.image_headers import header_size
from crnn_onnx.inference.images import MAX_FILE_BYTES, decode_image
from crnn_onnx.results import printable

__all__ = ["worst_first", "write_html_report"]

#: Formats every browser shows: copied as they are; other images are converted to PNG.
_WEB_FORMATS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".gif", ".webp", ".bmp"})
#: What the report folder may hold for it to be replaced without asking.
_REPORT_ENTRIES = frozenset({"index.html", "crops"})
_CROP_HEIGHT, _CROP_MAX_WIDTH = 48, 360

_CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f5f7fa;--accent:#2563eb;
--bad:#c62828;--badbg:#fde8e8;--good:#1b7f4a;--goodbg:#e3f6ea}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 10px}
.sub{color:var(--muted);margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:10px 16px;
min-width:130px}
.card b{display:block;font-size:22px;font-variant-numeric:tabular-nums}
.card span{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.row{display:flex;flex-wrap:wrap;gap:40px;align-items:flex-start}
table{border-collapse:collapse}
th{text-align:left;font-weight:600;color:var(--muted);font-size:12px;
text-transform:uppercase;letter-spacing:.04em;border-bottom:2px solid var(--line);
padding:6px 10px;position:sticky;top:0;background:#fff}
td{padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:middle}
table.misreads{width:100%}
tr.misread:nth-child(even){background:#fafbfc}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.text{font:16px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre}
.path{color:var(--muted);font-size:12px;word-break:break-all;min-width:200px;max-width:360px}
.crop img{display:block;background:#fff;border:1px solid var(--line)}
.crop img.px{image-rendering:pixelated}
.noimg{display:inline-block;width:120px;height:48px;line-height:46px;text-align:center;
color:var(--muted);font-size:12px;border:1px dashed #cbd2d9;border-radius:4px;background:var(--bg)}
mark{border-radius:2px;padding:0 1px}
.truth mark{background:var(--goodbg);color:var(--good);font-weight:600}
.reading mark{background:var(--badbg);color:var(--bad);font-weight:600}
.reading mark.gap{display:inline-block;width:2px;height:1.1em;margin:0 1px;padding:0;
vertical-align:-3px;background:var(--bad)}
.empty{color:var(--muted);font-style:italic;font-family:inherit;font-size:13px}
.error{color:var(--bad);font-size:13px}
.confidence{font-variant-numeric:tabular-nums}
.chart text{font-size:12px;fill:var(--fg);font-variant-numeric:tabular-nums}
.chart .bg{fill:var(--bg)}.chart .bar{fill:var(--accent)}.chart .dim{fill:var(--muted)}
"""


def worst_first(misreads: Iterable[Misread]) -> list[Misread]:
    """Misreads ordered worst first.

    Sorted by the normalised edit distance ``distance / max(1, len(truth))``, highest first;
    among equals, unreadable images first, then the more confident reading first (a
    confident wrong answer is worse than a hesitant one; an unknown confidence comes last).
    The sort is stable: equal misreads keep their input order.
    """
    def key(m: Misread) -> tuple[float, bool, float]:
        confidence = -1.0 if m.confidence is None else m.confidence
        return (-m.distance / max(1, len(m.truth)), m.predicted is not None, -confidence)

    return sorted(misreads, key=key)


def write_html_report(out_dir: str | Path, report: EvalReport, *,
                      title: str = "crnn-onnx eval", model: str | None = None,
                      labels: str | None = None,
                      images: Mapping[str, bytes] | None = None) -> Path:
    """Write the evaluation as ``out_dir/index.html``, with the misread crops in ``crops/``.

    The folder appears complete or not at all, and replaces an earlier report there.

    Args:
        out_dir: the report folder; created, or replaced when it holds a report already.
        report: what :func:`~crnn_onnx.evaluation.evaluate.score` returned.
        title: the page's title.
        model: the model's name, shown in the summary.
        labels: the labelled set's name, shown in the summary.
        images: encoded images by misread path, for sets whose images are not files (an
            LMDB dataset); other misreads are read from their path.

    Returns:
        The path of ``index.html``.

    Raises:
        CRNNError: ``out_dir`` is a file or a folder that holds something other than a
            report, or writing fails; the message names ``out_dir``.
    """
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CRNNError(f"cannot write report folder {out_dir}: {err.strerror or err}"
                        ) from None
    ordered = worst_first(report.misreads)
    with atomic_folder(out_dir, replace=True) as staging:
        (staging / "crops").mkdir()
        rows = [_row(i, m, _copy_crop(m, staging / "crops", i, images or {}))
                for i, m in enumerate(ordered, start=1)]
        page = _page(report, title, model, labels, rows)
        (staging / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise CRNNError(f"cannot write report folder {out_dir}: it is a file")
    try:
        entries = {entry.name for entry in out_dir.iterdir()}
    except OSError as err:
        raise CRNNError(f"cannot read report folder {out_dir}: {err.strerror or err}") from None
    if entries - _REPORT_ENTRIES:
        raise CRNNError(f"out_dir {out_dir} holds other files than a report; give a new "
                        "or empty folder (an existing report there is replaced)")


def _e(value: object) -> str:
    return html.escape(printable(str(value)), quote=True)


def _read_source(misread: Misread, images: Mapping[str, bytes]) -> tuple[bytes, str] | None:
    """The crop's bytes and file extension, or ``None`` when there is none to show."""
    if misread.path in images:
        return images[misread.path], ""
    try:
        info = os.stat(misread.path)
        if not stat.S_ISREG(info.st_mode) or not 0 < info.st_size <= MAX_FILE_BYTES:
            return None  # a pipe would block, a device never ends
        return Path(misread.path).read_bytes(), Path(misread.path).suffix.lower()
    except (OSError, ValueError):  # ValueError: a path with a NUL byte
        return None


def _copy_crop(misread: Misread, folder: Path, index: int, images: Mapping[str, bytes]
               ) -> tuple[str, int, int] | None:
    """Copy (or convert to PNG) one crop; its relative URL and pixel size, or ``None``."""
    if misread.error is not None:
        return None
    source = _read_source(misread, images)
    if source is None:
        return None
    data, suffix = source
    size = header_size(data)
    if suffix not in _WEB_FORMATS or size is None:
        try:
            pixels = decode_image(data)
        except CRNNError:
            return None
        ok, encoded = cv2.imencode(".png", pixels)
        if not ok:
            return None
        data, suffix, size = encoded.tobytes(), ".png", (pixels.shape[1], pixels.shape[0])
    name = f"{index:06d}{suffix}"
    (folder / name).write_bytes(data)  # an OSError here is a write failure: not caught
    return f"crops/{name}", int(size[0]), int(size[1])


def _marked(text: str, positions: set[int], gaps: frozenset[int] = frozenset()) -> str:
    """``text`` escaped, the characters at ``positions`` marked and a gap marker (an empty
    element, so the text reads unchanged) before each index in ``gaps``."""
    gap = '<mark class="gap" title="missing character"></mark>'
    return "".join((gap if i in gaps else "") + (f"<mark>{_e(ch)}</mark>" if i in positions
                                                else _e(ch))
                   for i, ch in enumerate(text)) + (gap if len(text) in gaps else "")


def _crop_cell(crop: tuple[str, int, int] | None, misread: Misread) -> str:
    if crop is None:
        what = "unreadable" if misread.error is not None else "no image"
        return f'<span class="noimg">{what}</span>'
    src, width, height = crop
    scale = _CROP_HEIGHT / max(1, height) if height < _CROP_HEIGHT else 1.0
    scale = min(scale, _CROP_MAX_WIDTH / max(1, width), 64 / max(1, height))
    shown_w, shown_h = max(1, round(width * scale)), max(1, round(height * scale))
    pixelated = ' class="px"' if scale > 1 else ""
    return (f'<img src="{src}" width="{shown_w}" height="{shown_h}" loading="lazy" '
            f'decoding="async" alt="{_e(misread.truth)}"{pixelated}>')


def _row(index: int, m: Misread, crop: tuple[str, int, int] | None) -> str:
    if m.predicted is None:
        truth = _e(m.truth)
        reading = '<span class="empty">unreadable</span>'
        detail = f'<span class="error">{_e(m.error or "could not be read")}</span>'
    else:
        ops = Levenshtein.editops(m.truth, m.predicted)
        truth = _marked(m.truth, {op.src_pos for op in ops if op.tag != "insert"})
        reading = _marked(m.predicted, {op.dest_pos for op in ops if op.tag != "delete"},
                          frozenset(op.dest_pos for op in ops if op.tag == "delete"))
        if not m.predicted:
            reading = '<span class="empty">(empty)</span>'
        detail = "–" if m.confidence is None else f"{m.confidence:.3f}"
    truth = truth or '<span class="empty">(empty)</span>'
    return (f'<tr class="misread"><td class="num">{index}</td>'
            f'<td class="crop">{_crop_cell(crop, m)}</td>'
            f'<td class="text truth">{truth}</td><td class="text reading">{reading}</td>'
            f'<td class="num edits">{m.distance}/{max(1, len(m.truth))}</td>'
            f'<td class="{"confidence" if m.predicted is not None else "detail"}">'
            f'{detail}</td><td class="path">{_e(m.path)}</td></tr>')


def _length_chart(by_length: Mapping[int, tuple[int, float]]) -> str:
    """Accuracy by word length as horizontal bars, each labelled with length, accuracy, count."""
    if not by_length:
        return '<p class="sub">No images.</p>'
    row, bar_x, bar_w = 22, 64, 300
    height = row * len(by_length) + 8
    parts = [f'<svg class="chart" width="{bar_x + bar_w + 130}" height="{height}" '
             f'role="img" aria-label="word accuracy by length">']
    for i, (length, (count, accuracy)) in enumerate(sorted(by_length.items())):
        y = 4 + i * row
        parts.append(
            f'<text x="{bar_x - 8}" y="{y + 14}" text-anchor="end">{length} char'
            f'{"s" if length != 1 else ""}</text>'
            f'<rect class="bg" x="{bar_x}" y="{y + 2}" width="{bar_w}" height="{row - 6}" rx="3"/>'
            f'<rect class="bar" x="{bar_x}" y="{y + 2}" width="{accuracy * bar_w:.1f}" '
            f'height="{row - 6}" rx="3"/>'
            f'<text x="{bar_x + bar_w + 8}" y="{y + 14}">{accuracy:.0%} '
            f'<tspan class="dim">of {count}</tspan></text>')
    return "".join(parts) + "</svg>"


def _confusions(confusions: list[tuple[str, str, int]]) -> str:
    if not confusions:
        return '<p class="sub">No character errors.</p>'
    rows = "".join(f'<tr><td class="text">{_e(t or "∅")}</td><td>→</td>'
                   f'<td class="text">{_e(p or "∅")}</td><td class="num">{c}</td></tr>'
                   for t, p, c in confusions)
    return ('<table class="confusions"><thead><tr><th>truth</th><th></th><th>read</th>'
            f'<th class="num">count</th></tr></thead><tbody>{rows}</tbody></table>')


def _page(report: EvalReport, title: str, model: str | None, labels: str | None,
          rows: list[str]) -> str:
    cards = [("word accuracy", f"{report.word_accuracy:.2%}"), ("CER", f"{report.cer:.2%}"),
             ("images", str(report.total)), ("correct", str(report.correct)),
             ("misread", str(len(report.misreads))), ("unreadable", str(report.failed))]
    summary = "".join(f'<div class="card" id="{name.replace(" ", "-")}"><b>{value}</b>'
                      f"<span>{name}</span></div>" for name, value in cards)
    names = " · ".join(f"{what} <b>{_e(value)}</b>"
                       for what, value in (("model", model), ("labels", labels)) if value)
    if rows:
        misreads = ('<table class="misreads"><thead><tr><th class="num">#</th><th>image</th>'
                    '<th>truth</th><th>read</th><th class="num">edits</th>'
                    '<th>confidence / error</th><th>path</th></tr></thead>'
                    f'<tbody>{"".join(rows)}</tbody></table>')
    else:
        misreads = '<p class="sub">No misreads: every image was read exactly.</p>'
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="crnn-onnx"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n"
        f'<h1>{_e(title)}</h1><p class="sub">{names}</p>'
        f'<div class="cards">{summary}</div>\n<div class="row"><section>'
        f"<h2>Accuracy by word length</h2>{_length_chart(report.by_length)}</section>"
        f"<section><h2>Top character confusions</h2>{_confusions(report.confusions)}"
        f"</section></div>\n<h2>Misreads, worst first ({len(rows)})</h2>\n{misreads}\n"
        "</body></html>\n"
    )
