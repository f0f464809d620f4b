"""Decoded outputs as PNG bytes for the browser: one example, or a strip of several side by side.

Images (C, H, W) in [0, 1] are clamped, scaled to 8 bits and enlarged by a whole factor (nearest neighbour) so
that an 8 x 8 digit is not a speck; a tabular example (D,) is drawn as a one-row grey strip, each value min-max
scaled over the strip.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch

# Enlarge small images to at least this many pixels on their longer side (whole factors only).
MIN_SIDE = 112
GAP = 2  # pixels between the images of a strip
TABLE_HEIGHT = 40  # pixels of a tabular example's row of cells


def _as_array(x: torch.Tensor, event_shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 of one example of `event_shape`."""
    x = x.detach().float().cpu().reshape(event_shape)
    if len(event_shape) == 3:
        image = x.clamp(0, 1).permute(1, 2, 0).numpy()  # (H, W, C)
        image = image[..., 0] if image.shape[2] == 1 else image[..., :3]
    else:  # tabular: one row of grey cells
        flat = x.reshape(1, -1).numpy()
        lo, hi = float(flat.min()), float(flat.max())
        image = (flat - lo) / (hi - lo) if hi > lo else np.full_like(flat, 0.5)
    return np.round(255 * image).astype(np.uint8)


def _enlarge(image: np.ndarray) -> np.ndarray:
    factor = max(1, math.ceil(MIN_SIDE / max(image.shape[:2])))
    if image.shape[0] == 1:  # a tabular strip: cells TABLE_HEIGHT tall, together at least 2 * MIN_SIDE wide
        width = max(4, math.ceil(2 * MIN_SIDE / image.shape[1]))
        return np.repeat(np.repeat(image, TABLE_HEIGHT, 0), width, 1)
    return np.repeat(np.repeat(image, factor, 0), factor, 1)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def to_png(x: torch.Tensor, event_shape: tuple[int, ...]) -> bytes:
    """One example (*event) as PNG bytes."""
    return _png(_enlarge(_as_array(x, event_shape)))


def strip_png(xs: torch.Tensor, event_shape: tuple[int, ...]) -> bytes:
    """Examples (N, *event) side by side, as PNG bytes."""
    tiles = [_enlarge(_as_array(x, event_shape)) for x in xs]
    height = max(t.shape[0] for t in tiles)
    colour = tiles[0].ndim == 3
    width = sum(t.shape[1] for t in tiles) + GAP * (len(tiles) - 1)
    canvas = np.full((height, width, 3) if colour else (height, width), 200, dtype=np.uint8)
    left = 0
    for tile in tiles:
        canvas[: tile.shape[0], left : left + tile.shape[1]] = tile
        left += tile.shape[1] + GAP
    return _png(canvas)
