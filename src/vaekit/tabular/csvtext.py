"""CSV text with the position of every cell, so that a filled table is the input with only its missing cells
replaced: quoting, number formats, spaces, line endings, a byte-order mark and untouched columns stay exactly
as they were.

The reading rules are those of Python's `csv` reader with its defaults (a cell that starts with a quote runs to
the matching quote, "" inside it is one quote, line breaks inside quotes belong to the cell; rows end at \\n,
\\r\\n or \\r). Blank lines are skipped, as `vaekit.apps.tables` skips them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

QUOTE = '"'
# The longest cell read, as Python's csv module allows by default: a longer one is a malformed file (a stray quote).
MAX_CELL = 131_072


@dataclass(frozen=True)
class CsvText:
    """A CSV file's text, its delimiter, and its rows: each cell as (text value, start, end) in `text`."""

    text: str
    delimiter: str
    rows: list[list[tuple[str, int, int]]]
    bom: bool = False

    def values(self) -> list[list[str]]:
        """The cells' values, row by row."""
        return [[value for value, _, _ in row] for row in self.rows]


def _sniff_delimiter(path: Path, text: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    first_line = text.split("\n", 1)[0]
    return max(",;\t", key=first_line.count)


def parse_csv(text: str, delimiter: str, source: str | Path = "CSV") -> list[list[tuple[str, int, int]]]:
    """The rows of `text`, each cell as (value, start, end) with text[start:end] its raw form (quotes included)."""
    rows: list[list[tuple[str, int, int]]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in "\r\n":  # a blank line
            i += 2 if text.startswith("\r\n", i) else 1
            continue
        row: list[tuple[str, int, int]] = []
        while True:  # one cell per pass
            start, parts = i, []
            if i < n and text[i] == QUOTE:
                i += 1
                while True:
                    close = text.find(QUOTE, i)
                    if close < 0:
                        raise DataError(f"{source}: not a readable CSV file (a quoted cell from character {start} "
                                        "has no closing quote)")
                    parts.append(text[i:close])
                    if text.startswith(QUOTE * 2, close):
                        parts.append(QUOTE)
                        i = close + 2
                        continue
                    i = close + 1
                    break
            while i < n and text[i] != delimiter and text[i] not in "\r\n":  # unquoted text (or after the quote)
                if text[i] == "\0":
                    raise DataError(f"{source}: not a readable CSV file (a NUL byte at character {i})")
                parts.append(text[i])
                i += 1
            if i - start > MAX_CELL:
                raise DataError(f"{source}: not a readable CSV file (a cell from character {start} is over "
                                f"{MAX_CELL:,} characters; a stray quote?)")
            row.append(("".join(parts), start, i))
            if i < n and text[i] == delimiter:
                i += 1
                continue
            break
        if i < n:  # the line break ends the row
            i += 2 if text.startswith("\r\n", i) else 1
        if not (len(row) == 1 and not row[0][0].strip() and row[0][2] - row[0][1] == len(row[0][0])):
            rows.append(row)  # a line of spaces only is skipped like a blank one
    return rows


def read_csv_text(path: str | Path) -> CsvText:
    """A CSV/TSV file as `CsvText` (UTF-8, an optional byte-order mark kept aside); one-line DataErrors."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read as UTF-8 text ({error})") from None
    bom = text.startswith("\ufeff")
    text = text[1:] if bom else text
    delimiter = _sniff_delimiter(path, text)
    return CsvText(text=text, delimiter=delimiter, rows=parse_csv(text, delimiter, path), bom=bom)


def quote_cell(value: str, delimiter: str) -> str:
    """A new cell's text: quoted when it holds the delimiter, a quote or a line break."""
    if any(ch in value for ch in (delimiter, QUOTE, "\r", "\n")):
        return QUOTE + value.replace(QUOTE, QUOTE * 2) + QUOTE
    return value


def replaced(csv: CsvText, new_cells: dict[tuple[int, int], str]) -> str:
    """The file's text (byte-order mark included) with the cells at (row, column) replaced by new values."""
    pieces, at = [], 0
    for (r, c) in sorted(new_cells, key=lambda rc: csv.rows[rc[0]][rc[1]][1]):
        _, start, end = csv.rows[r][c]
        pieces += [csv.text[at:start], quote_cell(new_cells[(r, c)], csv.delimiter)]
        at = end
    pieces.append(csv.text[at:])
    return ("\ufeff" if csv.bom else "") + "".join(pieces)


def write_replaced(csv: CsvText, new_cells: dict[tuple[int, int], str], path: str | Path) -> Path:
    """Writes `replaced(csv, new_cells)` to `path` through a temporary file (whole or absent)."""
    from ..core.atomic import atomic_write_text

    atomic_write_text(path, replaced(csv, new_cells))
    return Path(path)


__all__ = ["CsvText", "parse_csv", "read_csv_text", "replaced", "write_replaced", "quote_cell"]
