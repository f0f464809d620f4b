"""Nested dicts as dotted keys: {"train": {"lr": 0.001}} -> [("train.lr", 0.001)], the form a config's keys take
in `--set` overrides, in trackers' hyperparameters and in the run report's tables."""

from __future__ import annotations

from typing import Any


def dotted_items(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A nested dict (such as `config.to_dict(run_config)`) as (dotted key, leaf value) rows, in the dict's order;
    an empty dict is a leaf."""
    if isinstance(value, dict) and value:
        rows: list[tuple[str, Any]] = []
        for key, inner in value.items():
            rows += dotted_items(inner, f"{prefix}{key}.")
        return rows
    return [(prefix.rstrip("."), value)]


__all__ = ["dotted_items"]
