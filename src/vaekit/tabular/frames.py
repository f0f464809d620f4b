"""Tables from Python as cell texts and back: a pandas DataFrame, a NumPy structured array, or a 2-D array / list
of rows. The mixed-table tools (`TableImputer`, `TableAnomalyDetector`) read every table as cells, as a CSV file
is read, so that inference and messages are the same for both; filled cells go back into a copy of the caller's
table with the column's own kind of value (a number in a numeric column, the original label object otherwise)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class Cells:
    """A table as texts: column names (None: unnamed), rows of cell texts ("" = missing), and the kind of input."""

    header: list[str] | None
    rows: list[list[str]]
    kind: str  # "frame", "structured" or "array"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return ""
    except ImportError:
        pass
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def as_cells(X: Any, what: str = "X") -> Cells:
    """The cells of a DataFrame, a structured array or a 2-D array / list of rows; one-line DataErrors."""
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # a pandas DataFrame
        header = [str(c) for c in X.columns]
        rows = [[_text(v) for v in row] for row in X.itertuples(index=False, name=None)]
        kind = "frame"
    elif isinstance(X, np.ndarray) and X.dtype.names:
        header = list(X.dtype.names)
        rows = [[_text(v) for v in row] for row in X.tolist()]
        kind = "structured"
    else:
        try:
            array = np.asarray(X, dtype=object)
        except (TypeError, ValueError) as error:
            raise DataError(f"{what} is not a table ({error})") from None
        if array.ndim != 2:
            raise DataError(f"{what} must be 2-D (rows, columns), a DataFrame or a structured array; got shape "
                            f"{array.shape}")
        header, rows, kind = None, [[_text(v) for v in row] for row in array.tolist()], "array"
    if not rows or not rows[0]:
        raise DataError(f"{what} is empty")
    return Cells(header=header, rows=rows, kind=kind)


def _like(column_values: list[Any], text: str, numeric: bool) -> Any:
    """A filled cell as a value of its column: a float for numbers, else an existing value that reads as `text`."""
    if numeric:
        return float(text)
    for value in column_values:
        if _text(value) == text:
            return value
    return text


def filled_copy(X: Any, cells: Cells, new_cells: dict[tuple[int, int], str], numeric: set[int]) -> Any:
    """A copy of X with the cells at (row, column) set to the new texts, as values of each column."""
    if cells.kind == "frame":
        out = X.copy()
        for j in sorted({j for _, j in new_cells}):
            column = out.columns[j]
            values = list(X.iloc[:, j])
            if j in numeric and out[column].dtype.kind not in "fc":
                out[column] = out[column].astype("float64")
            for (i, jj), text in new_cells.items():
                if jj == j:
                    out.iat[i, j] = _like(values, text, j in numeric)
        return out
    if cells.kind == "structured":
        out = X.copy()
        names = X.dtype.names
        for (i, j), text in new_cells.items():
            out[names[j]][i] = _like(list(X[names[j]]), text, j in numeric)
        return out
    out = np.array(X, dtype=object, copy=True)
    for (i, j), text in new_cells.items():
        out[i, j] = _like(list(out[:, j]), text, j in numeric)
    return out


__all__ = ["Cells", "as_cells", "filled_copy"]
