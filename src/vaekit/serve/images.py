"""Decoded outputs as PNG bytes for the browser: one example, or a strip of several side by side.

The helpers live in `vaekit.figures.plots` (the modalities draw with them, below this package); they are
re-exported here.
"""

from __future__ import annotations

from ..figures.plots import GAP, MIN_SIDE, TABLE_HEIGHT, strip_png, to_png

__all__ = ["to_png", "strip_png", "MIN_SIDE", "GAP", "TABLE_HEIGHT"]
