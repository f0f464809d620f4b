"""The HTML of a run report: sections, tables, embedded PNG images and the page around them.

Everything the page shows is inside the one file: images are `data:image/png;base64,...` URIs, the style sheet
is inline, and the page needs no script (links only jump within the page). Every string that comes from a run
(config values, class names, sentences, eval.json keys) goes through `html.escape` here, so the section builders
hand over plain text and never markup of their own unless they made it with these helpers.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Numbers in tables: enough digits to compare runs, few enough to read.
SIGNIFICANT = 5
# Figures are read on a screen: 100 dpi keeps the page small and the text sharp enough.
DPI = 100


@dataclass(frozen=True)
class Section:
    """One part of the report: an anchor `key` (unique on the page), a `title` and its `body` (HTML made with the
    helpers of this module)."""

    key: str
    title: str
    body: str


def png_uri(png: bytes) -> str:
    """PNG bytes as a data URI that an <img> shows without fetching anything."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig) -> bytes:
    """A matplotlib figure rendered to PNG bytes in memory (cropped to what is drawn), then closed."""
    from ..figures.plots import _pyplot

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        _pyplot().close(fig)
    return buffer.getvalue()


def image(png: bytes, alt: str, caption: str | None = None) -> str:
    """A <figure> holding the PNG, with its `alt` text and an optional caption (both plain text)."""
    tag = f'<img src="{png_uri(png)}" alt="{html.escape(alt)}">'
    note = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{tag}{note}</figure>"


def figure_image(fig, alt: str, caption: str | None = None) -> str:
    """`image` of a matplotlib figure (which is closed)."""
    return image(figure_png(fig), alt, caption)


def fmt(value: Any) -> str:
    """A value as table text: floats to SIGNIFICANT digits, short lists of numbers inline, None as a dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{SIGNIFICANT}g}" if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, (list, tuple)):
        if len(value) > 64:
            return f"{len(value)} values: " + " ".join(fmt(v) for v in value[:8]) + " \u2026"
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def key_value_table(rows: Sequence[tuple[str, Any]], caption: str | None = None, css: str = "kv") -> str:
    """A two-column table of (name, value) rows; values are formatted with `fmt` and escaped."""
    head = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = "".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(fmt(value))}</td></tr>" for name, value in rows)
    return f'<table class="{css}">{head}<tbody>{body}</tbody></table>'


def data_table(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None,
               row_classes: Sequence[str] | None = None) -> str:
    """A table with a header row; cells are formatted with `fmt` and escaped (`row_classes`: a CSS class per row)."""
    head = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    top = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    classes = row_classes or [""] * len(rows)
    body = "".join(f'<tr class="{html.escape(c)}">' + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row)
                   + "</tr>" for row, c in zip(rows, classes))
    return f'<div class="scroll"><table class="data">{head}<thead><tr>{top}</tr></thead><tbody>{body}</tbody>' \
           f"</table></div>"


def text_block(text: str, caption: str | None = None) -> str:
    """Plain text (sentences, a list of lines) shown as it is, escaped."""
    head = f"<h3>{html.escape(caption)}</h3>" if caption else ""
    return f'{head}<pre class="text">{html.escape(text)}</pre>'


def paragraph(text: str, css: str = "note") -> str:
    """A paragraph of plain text."""
    return f'<p class="{css}">{html.escape(text)}</p>'


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole self-contained page: a header, a table of contents and the sections in order."""
    toc = "".join(f'<li><a href="#{html.escape(s.key)}">{html.escape(s.title)}</a></li>' for s in sections)
    parts = "".join(f'<section id="{html.escape(s.key)}"><h2>{html.escape(s.title)}</h2>{s.body}</section>'
                    for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<header><h1>{html.escape(title)}</h1><p class=\"sub\">{html.escape(subtitle)}</p>"
            f'<nav><ul>{toc}</ul></nav></header><main>{parts}</main></body></html>\n')


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#fff;border-bottom:1px solid #ddd;padding:16px 28px 8px}
h1{font-size:22px;margin:0 0 4px} p.sub{margin:0 0 8px;color:#555;font-size:14px}
nav ul{list-style:none;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:14px}
nav a{color:#1f5fa8;text-decoration:none} nav a:hover{text-decoration:underline}
main{padding:8px 28px 32px;max-width:1400px}
section{background:#fff;border:1px solid #e2e4e8;border-radius:6px;margin:16px 0;padding:12px 20px 16px}
h2{font-size:18px;margin:4px 0 12px} h3{font-size:15px;margin:14px 0 6px}
figure{display:inline-block;margin:4px 24px 12px 0;vertical-align:top}
figure img{max-width:100%;height:auto;display:block;border:1px solid #eee}
figcaption{font-size:13px;color:#555;margin-top:4px;max-width:640px}
.row{display:flex;flex-wrap:wrap;gap:12px 28px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px}
table caption{text-align:left;white-space:nowrap;font-weight:600;padding:4px 0;font-size:14px}
table.kv th{text-align:left;font-weight:500;color:#444;padding:2px 14px 2px 0;vertical-align:top;white-space:nowrap}
table.kv td{padding:2px 0;font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-word;max-width:560px}
table.data th,table.data td{border:1px solid #e2e4e8;padding:3px 8px;text-align:right;
font-family:ui-monospace,Menlo,Consolas,monospace}
table.data th{background:#f0f2f5} table.data tr.data td{background:#fafbfc} table.data tr.recon td{color:#1f5fa8}
.scroll{overflow-x:auto;max-width:100%;margin-bottom:10px}
pre.text{background:#f8f9fb;border:1px solid #e2e4e8;border-radius:4px;padding:10px 14px;white-space:pre-wrap;
font-size:13px;line-height:1.45;max-width:1000px}
p.note{color:#555;font-size:13px;margin:6px 0} p.warn{color:#8a4b00;font-size:13px;margin:6px 0}
"""
