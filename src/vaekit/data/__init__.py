"""Data sets as in-memory tensors: registered names (`digits`, `mnist`, ...) and the user's own files.

`load_data(spec)` is the entry point; importing this package registers every loader in `DATASETS`.
"""

from __future__ import annotations

from .base import DATASETS, DataBundle, Split, ValueKind
from .common import data_root
from .loading import load_data, validate_bundle

# Imported for their side effect: each module registers its loaders in DATASETS.
from . import builtin, files, mnist, shapes, toy2d  # noqa: E402,F401  isort: skip
from ..text import data as _text_data  # noqa: E402,F401  isort: skip  (the text data sets: ptb, toy-sentences)

__all__ = ["Split", "DataBundle", "ValueKind", "DATASETS", "load_data", "data_root", "validate_bundle"]
