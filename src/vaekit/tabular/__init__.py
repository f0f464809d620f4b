"""Tables with mixed column types (numbers, counts, categories, yes/no, ordered levels): column types, their
inference, the "mixed" likelihood, and the imputer and anomaly detector built on them (HI-VAE).

Imported lazily: `vaekit.likelihoods` imports `vaekit.tabular.likelihood` to register "mixed", before the
training code that the imputer needs exists."""

from __future__ import annotations

from importlib import import_module

_PUBLIC = {"TableImputer": "imputer", "TableAnomalyDetector": "anomaly", "COLUMN_TYPES": "columns",
           "ColumnType": "columns", "Column": "schema", "Schema": "schema", "infer_schema": "schema",
           "parse_types": "schema"}


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_PUBLIC)
