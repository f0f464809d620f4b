"""CSV tables with missing values, for `vaekit impute DATA.csv`: read numbers and gaps, write the same table back
with the gaps filled and everything else exactly as it was.

A column is numeric when at least half of its non-missing cells are numbers; a cell in a numeric column that
is neither a number nor a missing marker is an error (it is usually a typo, and silently dropping it would
hide it). Other columns (text, categories, ids) are carried through untouched, missing cells included.
Missing markers: an empty cell and the usual NA spellings (`NA_VALUES`), compared case-insensitively.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.common import csv_rows
from ..errors import DataError

NA_VALUES = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "<na>", "?", "-"})


@dataclass(frozen=True)
class Table:
    """A CSV file: header (or None), the cells as text, which columns are numeric, and their values
    (N, P) float64 with NaN at the missing cells (P = number of numeric columns)."""

    header: list[str] | None
    cells: list[list[str]]
    delimiter: str
    numeric: list[int]
    values: np.ndarray

    def column_name(self, j: int) -> str:
        return repr(self.header[j].strip()) if self.header else f"{j + 1}"


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _is_na(cell: str) -> bool:
    return cell.strip().lower() in NA_VALUES


def read_table(path: str | Path, header: bool | None = None) -> Table:
    """Reads a CSV/TSV file; `header` None guesses it (a first row with text over numeric columns)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read as text ({error})") from None
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else max(",;\t", key=first_line.count)
    # Blank lines are skipped; a line of separators only (",,") is a row whose cells are all missing.
    rows = [r for r in csv_rows(io.StringIO(text), delimiter, path) if r and not (len(r) == 1 and not r[0].strip())]
    if not rows:
        raise DataError(f"{path}: the file is empty")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path}: row {i + 1} has {len(row)} cells, the first row has {width}")
    if header is None:
        body = rows[1:] or rows
        numeric_cols = [j for j in range(width) if _mostly_numbers([r[j] for r in body])]
        first = rows[0]
        header = any(_number(first[j]) is None and not _is_na(first[j]) for j in numeric_cols) or (
            not numeric_cols and len(rows) > 1)
    names = list(rows[0]) if header else None  # kept as written, spaces included
    cells = rows[1:] if header else rows
    if not cells:
        raise DataError(f"{path}: no data rows below the header")
    empty = [j for j in range(width) if all(_is_na(r[j]) for r in cells)]
    if empty:
        name = repr(names[empty[0]].strip()) if names else f"{empty[0] + 1}"
        raise DataError(f"{path}: column {name} has no value in any row; drop it (nothing can be learned about it)")
    numeric = [j for j in range(width) if _mostly_numbers([r[j] for r in cells])]
    if not numeric:
        raise DataError(f"{path}: no numeric column to impute")
    values = np.full((len(cells), len(numeric)), np.nan)
    for k, j in enumerate(numeric):
        for i, row in enumerate(cells):
            cell = row[j].strip()
            if _is_na(cell):
                continue
            value = _number(cell)
            name = repr(names[j].strip()) if names else f"{j + 1}"
            line = i + 1 + (1 if header else 0)
            if value is None:
                raise DataError(f"{path}: row {line}, column {name} holds {cell!r} in a numeric column; fix it or "
                                "leave the cell empty (or NA) to mark it missing")
            if not np.isfinite(value):
                raise DataError(f"{path}: row {line}, column {name} holds the non-finite value {cell!r}")
            values[i, k] = value
    return Table(header=names, cells=cells, delimiter=delimiter, numeric=numeric, values=values)


def _mostly_numbers(column: list[str]) -> bool:
    present = [c.strip() for c in column if not _is_na(c)]
    return bool(present) and sum(_number(c) is not None for c in present) * 2 >= len(present)


def format_number(value: float) -> str:
    """An imputed value as text: up to 6 significant digits, no exponent for everyday magnitudes."""
    text = f"{value:.6g}"
    return text if "e" not in text or abs(value) < 1e-4 or abs(value) >= 1e15 else f"{value:.6f}".rstrip("0").rstrip(".")


def filled_table(table: Table, filled: np.ndarray) -> Table:
    """The table with the missing cells of its numeric columns replaced by `filled` (N, P); every other
    cell is kept as the original text."""
    if filled.shape != table.values.shape:
        raise DataError(f"filled values have shape {filled.shape}, the table's numeric part is {table.values.shape}")
    cells = [list(row) for row in table.cells]
    missing = np.isnan(table.values)
    for i, k in zip(*np.nonzero(missing)):
        cells[i][table.numeric[k]] = format_number(float(filled[i, k]))
    return Table(table.header, cells, table.delimiter, table.numeric, np.where(missing, filled, table.values))


def write_table(table: Table, path: str | Path) -> Path:
    """Writes the table as CSV (same delimiter, header and column order) through a temporary file."""
    from ..io import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=table.delimiter, lineterminator="\n")
    if table.header is not None:
        writer.writerow(table.header)
    writer.writerows(table.cells)
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


__all__ = ["Table", "read_table", "filled_table", "write_table", "format_number", "NA_VALUES"]
