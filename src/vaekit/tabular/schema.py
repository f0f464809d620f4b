"""The schema of a mixed table: each column's type, inferred from its cells or given by the user, with what it
needs to turn cells into features and back (labels, scaling, number format).

Inference, column by column (missing cells aside; `vaekit.apps.tables.NA_VALUES` are the missing markers):
    numbers, 2 distinct values           binary
    numbers, non-negative integers       count
    other numbers                        real
    text, 2 distinct values              binary
    text, at most MAX_LEVELS values      categorical (a different text in every one of more than ID_ROWS rows is
                                         refused: an id or free text, which the user keeps with type "text")
The user's types (`parse_types`: "age=count,colour=categorical,size=ordinal:low<medium<high,id=text") override
it; "ordinal" without levels orders the column's values as numbers (or as text); "text" keeps a column as it is,
not modelled and never filled. Every refusal is one line naming the column.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .columns import COLUMN_TYPES, column_type

NA_VALUES = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "<na>", "?", "-"})
TEXT = "text"  # kept as it is, not modelled
MAX_LEVELS = 100  # most labels of a categorical or ordinal column
ID_ROWS = 20  # a text column with a different value in every row, over more rows than this, is refused
MAX_DECIMALS = 6
# Labels read as the "no" of a binary column, listed first whatever their spelling order.
NEGATIVE = ("0", "no", "n", "false", "f", "neg", "negative", "absent", "off")


def is_missing(cell: str) -> bool:
    """True for an empty cell or a missing marker (NA, NaN, ?, ...; case and spaces ignored)."""
    return cell.strip().lower() in NA_VALUES


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value


@dataclass(frozen=True)
class Column:
    """One column: its name, position, type (a registered column type or "text") and what its type needs:
    `labels` in level order (discrete types), `center` / `scale` (the mean and standard deviation of the values
    (real), of their logarithms (positive) or of log(1 + k) (count)), `decimals` an imputed number is written with, and how many cells are `missing`."""

    name: str
    index: int
    type: str
    labels: tuple[str, ...] = ()
    center: float = 0.0
    scale: float = 1.0
    decimals: int = 0
    missing: int = 0
    inferred: bool = True

    @property
    def modelled(self) -> bool:
        return self.type != TEXT

    @property
    def spec(self) -> str:
        """The likelihood's name for it: "real", "categorical:4"."""
        return f"{self.type}:{len(self.labels)}" if column_type(self.type).discrete else self.type

    @property
    def kind(self):
        """The column's registered type, with its feature scaling."""
        return column_type(self.type, self.center, self.scale)

    @property
    def width(self) -> int:
        return self.kind.width(len(self.labels))


@dataclass(frozen=True)
class Schema:
    """Every column of a table, in order."""

    columns: tuple[Column, ...]
    names_given: bool = True  # the table has a header (else columns are named by position)

    @property
    def modelled(self) -> list[Column]:
        return [c for c in self.columns if c.modelled]

    @property
    def n_features(self) -> int:
        return sum(c.width for c in self.modelled)

    @property
    def likelihood_options(self) -> dict[str, list]:
        """The options of the likelihood "mixed" for these columns."""
        return {"columns": [c.spec for c in self.modelled], "centers": [c.center for c in self.modelled],
                "scales": [c.scale for c in self.modelled]}

    def to_dict(self) -> dict:
        return {"names_given": self.names_given, "columns": [dataclasses.asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict) -> "Schema":
        columns = tuple(Column(**{**c, "labels": tuple(c["labels"])}) for c in data["columns"])
        for c in columns:
            if c.modelled:
                column_type(c.type)  # a ConfigError for an unknown type
        return cls(columns=columns, names_given=bool(data["names_given"]))

    def describe(self) -> str:
        """The inference table: one line per column with its type, what it holds and its missing cells."""
        rows = [("column", "type", "", "holds", "missing")]
        for c in self.columns:
            rows.append((c.name, c.type, "" if c.inferred else "(given)", _holds(c), str(c.missing)))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)

    # --- cells <-> features -----------------------------------------------------------------------------------

    def check_cells(self, rows: Sequence[Sequence[str]], source: str = "X", first_line: int = 1) -> None:
        """A one-line DataError for new rows this schema cannot read: another number of columns, a label the
        column has not seen, a cell that is not a valid value of its column's type."""
        if rows and len(rows[0]) != len(self.columns):
            raise DataError(f"{source} has {len(rows[0])} columns, the model was fitted on {len(self.columns)}")
        for c in self.modelled:
            for i, row in enumerate(rows):
                cell = row[c.index].strip()
                if is_missing(cell):
                    continue
                where = f"{source}: line {i + first_line}, column {c.name!r}"
                if c.labels:
                    if cell not in c.labels:
                        raise DataError(f"{where} holds {cell!r}, which was not seen in this column when fitting "
                                        f"(labels: {', '.join(c.labels[:6])}{', ...' if len(c.labels) > 6 else ''})")
                    continue
                value = _number(cell)
                if value is None or not math.isfinite(value) or (c.type == "positive" and value <= 0) or (
                        c.type == "count" and (value < 0 or value != round(value))):
                    raise DataError(f"{where} holds {cell!r}, not a valid {c.type} value")

    def encode(self, cells: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features (N, F) float32 with 0 at missing cells, feature mask (N, F) float32, cell mask (N, C) bool
        of the modelled columns: True = observed)."""
        n = len(cells)
        blocks, masks = [], []
        for c in self.modelled:
            raw = [row[c.index] for row in cells]
            observed = np.array([not is_missing(v) for v in raw])
            values = np.zeros(n)
            for i in np.flatnonzero(observed):
                values[i] = _value_of(c, raw[i].strip())
            kind = c.kind
            features = np.zeros((n, c.width))
            if observed.any():
                features[observed] = kind.encode(values[observed], len(c.labels))
            blocks.append(features)
            masks.append(observed)
        cell_mask = np.stack(masks, axis=1)
        feature_mask = np.concatenate([np.repeat(m[:, None], c.width, 1) for m, c in zip(masks, self.modelled)], 1)
        return (np.concatenate(blocks, 1).astype(np.float32), feature_mask.astype(np.float32), cell_mask)

    def decode(self, features: np.ndarray, sigmas: np.ndarray | None = None) -> list[list[str]]:
        """Cell texts (N, C modelled) of features (N, F): a label, or a number in the column's format.

        `sigmas` (F,), the model's learned standard deviations in feature units, say that the features are
        conditional means: a positive column is then read as the log-normal's mean, exp(mu + s^2 / 2) in its
        own units, rather than its median exp(mu) (the mean is what minimises the squared error)."""
        out, start = [], 0
        for c in self.modelled:
            block = np.asarray(features[:, start : start + c.width], dtype=np.float64)
            if sigmas is not None and c.type == "positive":
                block = block + float(sigmas[start]) ** 2 * c.scale / 2  # log-mean shift, in standardised units
            start += c.width
            value = c.kind.decode(block, len(c.labels))
            out.append([_text_of(c, v) for v in value])
        return [list(row) for row in zip(*out)]


def _holds(c: Column) -> str:
    if c.type == TEXT:
        return "kept as it is"
    if c.labels:
        shown = ", ".join(c.labels[:6]) + (", ..." if len(c.labels) > 6 else "")
        return f"{len(c.labels)} labels: {shown}" if c.type != "ordinal" else f"{len(c.labels)} levels: " + \
            " < ".join(c.labels[:6]) + (" < ..." if len(c.labels) > 6 else "")
    return {"real": "numbers", "positive": "numbers > 0", "count": "whole numbers >= 0"}.get(c.type, c.type)


def _value_of(c: Column, cell: str) -> float:
    """An observed cell's value for its column type to encode: the number, or its label's level."""
    return float(c.labels.index(cell)) if c.labels else float(cell)


def _text_of(c: Column, value: float) -> str:
    if c.labels:
        return c.labels[int(value)]
    if c.type == "count":
        value = round(value)  # a whole number, written as the column writes its numbers ("3" or "3.0")
    return f"{value:.{c.decimals}f}"


def has_header(rows: Sequence[Sequence[str]]) -> bool:
    """Whether the first row names the columns: it has text over a column of numbers, or no column below it
    holds numbers and there are rows below it."""
    body = rows[1:] or rows
    numeric = [j for j in range(len(rows[0])) if _mostly_numbers([r[j] for r in body])]
    return any(_number(rows[0][j].strip()) is None and not is_missing(rows[0][j]) for j in numeric) or (
        not numeric and len(rows) > 1)


def _mostly_numbers(cells: list[str]) -> bool:
    present = [c.strip() for c in cells if not is_missing(c)]
    return bool(present) and sum(_number(c) is not None for c in present) * 2 >= len(present)


def types_of(types: dict | str | None) -> dict[str, str]:
    """The user's types as {column name or 1-based position: type}, from a dict or a "name=type,..." string."""
    return parse_types(types) if isinstance(types, str) else {str(k): v for k, v in (types or {}).items()}


def parse_types(spec: str | None) -> dict[str, str]:
    """ "name=type,name=type" (or a dict) as {name: type}; ordinal levels go after a colon, separated by "<"."""
    if not spec:
        return {}
    out: dict[str, str] = {}
    for part in spec.split(","):
        name, eq, kind = part.partition("=")
        name, kind = name.strip(), kind.strip()
        if not eq or not name or not kind:
            raise ConfigError(f"--types: {part.strip()!r} is not NAME=TYPE (e.g. age=count,colour=categorical)")
        base = kind.partition(":")[0]
        if base != TEXT and base not in COLUMN_TYPES:
            raise ConfigError(f"--types: unknown type {base!r} for {name!r}; choose one of: "
                              f"{', '.join([*COLUMN_TYPES, TEXT])}")
        if ":" in kind and base != "ordinal":
            raise ConfigError(f"--types: only ordinal columns take levels ({name}={kind})")
        if name in out:
            raise ConfigError(f"--types names column {name!r} twice")
        out[name] = kind
    return out


@dataclass
class _Observed:
    """A column's observed cells (stripped) and their row numbers."""

    cells: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)


def infer_schema(header: Sequence[str] | None, cells: Sequence[Sequence[str]], types: dict[str, str] | None = None,
                 source: str = "the table", first_line: int = 1) -> Schema:
    """Each column's type (inferred, or from `types`: {name or 1-based position: type}) with its labels, scaling
    and format; a one-line DataError / ConfigError for an unusable column or a type that does not fit its cells.
    `first_line` is the line number of the first data row (for messages)."""
    width = len(cells[0]) if cells else len(header or [])
    names = [h.strip() for h in header] if header is not None else [str(j + 1) for j in range(width)]
    given = _match_types(types or {}, names, header is not None, source)
    columns = []
    for j in range(width):
        seen = _Observed()
        for i, row in enumerate(cells):
            if not is_missing(row[j]):
                seen.cells.append(row[j].strip())
                seen.rows.append(i + first_line)
        label = f"{source}: column {names[j]!r}"
        kind = given.get(j)
        if not seen.cells and kind != TEXT:
            raise DataError(f"{label} has no value in any row; drop it, or keep it as it is with --types "
                            f"{names[j]}=text")
        column = _typed_column(label, kind, seen) if kind else _inferred_column(label, names[j], seen)
        columns.append(dataclasses.replace(column, name=names[j], index=j, missing=len(cells) - len(seen.cells),
                                           inferred=kind is None))
    if not any(c.modelled for c in columns):
        raise DataError(f"{source}: no column to model (every column is text)")
    return Schema(columns=tuple(columns), names_given=header is not None)


def _match_types(types: dict[str, str], names: list[str], named: bool, source: str) -> dict[int, str]:
    out = {}
    for key, kind in types.items():
        if key in names:
            if names.count(key) > 1:
                raise ConfigError(f"--types: {source} has {names.count(key)} columns named {key!r}; give its "
                                  "position (1-based) instead")
            out[names.index(key)] = kind
        elif key.isdigit() and 1 <= int(key) <= len(names):
            out[int(key) - 1] = kind
        else:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise ConfigError(f"--types: {source} has no column {key!r} (columns: {shown}"
                              f"{'' if named else '; by position, 1-based'})")
    return out


def _numbers(label: str, seen: _Observed, what: str) -> np.ndarray:
    values = np.empty(len(seen.cells))
    for k, cell in enumerate(seen.cells):
        value = _number(cell)
        if value is None:
            raise DataError(f"{label}, line {seen.rows[k]}: {cell!r} is not a number, in a {what} column; fix "
                            "the cell, leave it empty (or NA) to mark it missing, or type the column with --types")
        if not math.isfinite(value):
            raise DataError(f"{label}, line {seen.rows[k]}: the non-finite value {cell!r}")
        values[k] = value
    return values


def _decimals(cells: list[str]) -> int:
    most = 0
    for cell in cells:
        mantissa = cell.lower().split("e")[0]
        if "." in mantissa:
            most = max(most, len(mantissa.split(".")[1]))
    return min(most, MAX_DECIMALS)


def _scaled(kind: str, values: np.ndarray, cells: list[str], label: str) -> dict[str, Any]:
    if kind == "count" and ((values < 0).any() or (values != np.round(values)).any()):
        bad = values[(values < 0) | (values != np.round(values))][0]
        raise DataError(f"{label} is typed count, and holds {bad:g}: counts are whole numbers >= 0")
    if kind == "positive":
        if (values <= 0).any():
            raise DataError(f"{label} is typed positive, and holds {values[values <= 0][0]:g}: values must be > 0")
        values = np.log(values)
    if kind == "count":
        values = np.log1p(values)
    spread = float(values.std())
    return {"center": float(values.mean()), "scale": spread if spread > 0 else 1.0, "decimals": _decimals(cells)}


def _labels(cells: list[str]) -> tuple[str, ...]:
    """Distinct labels in a fixed order: by value when they are all numbers, else alphabetically."""
    distinct = set(cells)
    if all(_number(c) is not None for c in distinct):
        return tuple(sorted(distinct, key=lambda c: (float(c), c)))
    return tuple(sorted(distinct))


def _binary_labels(cells: list[str], label: str) -> tuple[str, ...]:
    labels = _labels(cells)
    if len(labels) != 2:
        raise DataError(f"{label} is typed binary, and holds {len(labels)} distinct value(s); type it categorical")
    if labels[1].lower() in NEGATIVE and labels[0].lower() not in NEGATIVE:
        labels = labels[::-1]
    return labels


def _typed_column(label: str, kind: str, seen: _Observed) -> Column:
    """The column with the user's type."""
    base, _, order = kind.partition(":")
    if base == TEXT:
        return Column("", 0, TEXT)
    if column_type(base).numeric:
        return Column("", 0, base, **_scaled(base, _numbers(label, seen, base), seen.cells, label))
    if base == "binary":
        return Column("", 0, base, labels=_binary_labels(seen.cells, label))
    labels = tuple(v.strip() for v in order.split("<")) if order else _labels(seen.cells)
    if len(set(labels)) != len(labels) or "" in labels:
        raise ConfigError(f"{label}: the ordinal levels {order!r} must be distinct and non-empty")
    unknown = sorted(set(seen.cells) - set(labels))
    if unknown:
        raise DataError(f"{label} holds {unknown[0]!r}, which is not one of its levels {' < '.join(labels)}")
    if len(labels) > MAX_LEVELS:
        raise DataError(f"{label} has {len(labels)} distinct values; at most {MAX_LEVELS} labels are modelled "
                        "(type it real or count, or keep it as it is with type text)")
    if base == "ordinal" and len(labels) < 2:
        raise DataError(f"{label} is typed ordinal, and has one level only")
    return Column("", 0, base, labels=labels)


def _inferred_column(label: str, name: str, seen: _Observed) -> Column:
    numbers = sum(_number(c) is not None for c in seen.cells)
    distinct = set(seen.cells)
    if numbers * 2 >= len(seen.cells):  # mostly numbers: a number column (a stray word is an error)
        values = _numbers(label, seen, "numeric")
        if len(set(values.tolist())) == 2:
            return Column("", 0, "binary", labels=_binary_labels(seen.cells, label))
        if (values >= 0).all() and (values == np.round(values)).all() and len(set(values.tolist())) > 2:
            return Column("", 0, "count", **_scaled("count", values, seen.cells, label))
        return Column("", 0, "real", **_scaled("real", values, seen.cells, label))
    if len(distinct) == 2:
        return Column("", 0, "binary", labels=_binary_labels(seen.cells, label))
    if len(distinct) == len(seen.cells) and len(seen.cells) > ID_ROWS:
        raise DataError(f"{label} has a different text in every row (an id or free text?); keep it as it is with "
                        f"--types {name}=text, or drop it")
    if len(distinct) > MAX_LEVELS:
        raise DataError(f"{label} has {len(distinct)} distinct texts; at most {MAX_LEVELS} labels are modelled: keep "
                        f"it as it is with --types {name}=text, or drop it")
    return Column("", 0, "categorical", labels=_labels(seen.cells))


__all__ = ["Column", "Schema", "infer_schema", "parse_types", "is_missing", "NA_VALUES", "TEXT", "MAX_LEVELS"]
