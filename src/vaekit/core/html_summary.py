"""Short HTML summaries for Jupyter: what a loaded model, a training result or an evaluation shows when it is the
last expression of a notebook cell (`_repr_html_`), instead of a page of module reprs.

One small table: a bold title, then label / value rows; every value is escaped.
"""

from __future__ import annotations

import html
from typing import Any, Iterable

TABLE_STYLE = "border-collapse:collapse;font-size:13px"
CELL_STYLE = "text-align:left;padding:2px 10px 2px 0;border:none"


def shown_value(value: Any) -> str:
    """A value as a short string: floats to 4 significant digits, ints with thousands separators, tuples as 1x8x8."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return " x ".join(str(v) for v in value) if value else "()"
    return str(value)


def html_table(title: str, rows: Iterable[tuple[str, Any]], note: str = "") -> str:
    """A titled two-column table of `rows` (label, value); rows whose value is None are left out."""
    body = "".join(f"<tr><th style=\"{CELL_STYLE}\">{html.escape(label)}</th>"
                   f"<td style=\"{CELL_STYLE}\">{html.escape(shown_value(value))}</td></tr>"
                   for label, value in rows if value is not None)
    foot = f"<div style=\"font-size:12px;color:#666\">{html.escape(note)}</div>" if note else ""
    return (f"<div><b>{html.escape(title)}</b><table style=\"{TABLE_STYLE}\">{body}</table>{foot}</div>")


__all__ = ["html_table", "shown_value"]
