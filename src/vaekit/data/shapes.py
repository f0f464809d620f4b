"""Procedural 2-D shapes with known generative factors, in the spirit of dSprites (Matthey et al. 2017).

Every image is a white shape on black, binary, (1, R, R), fully described by five factors (indices):

    shape     0 square, 1 ellipse (axes 2:1), 2 heart
    scale     linspace(0.5, 1, n) times the largest size (bounding radius 0.2 R pixels)
    rotation  2 pi k / n, k = 0..n-1, counter-clockwise; as in dSprites the square repeats every pi/2 and the
              ellipse every pi, so for them some rotation values give the same image
    pos_x     column of the shape's centre: n integer columns spread evenly over where the shape fits
    pos_y     row of the shape's centre (0 = top), likewise

The data set holds every combination once, in C order of the factor indices (row = `index(factors)`, as in
dSprites), so any combination can also be rendered on demand (`render`), which the beta-VAE and FactorVAE scores
need. Rendering is deterministic numpy: each (shape, scale, rotation) is rasterised once on a supersampled grid
(pixel = 1 when at least half of its 4x4 sub-pixel points are inside), then pasted at integer pixel positions.

Registered sizes (the full 64x64 dSprites grid, 737,280 images, would need 12 GB as float32):
    shapes      64x64, factor sizes (3, 6, 10, 16, 16) = 46,080 images  (755 MB as float32)
    shapes-32   32x32, factor sizes (3, 4, 8, 12, 12)  = 13,824 images  (57 MB)
    shapes-16   16x16, factor sizes (3, 3, 6, 8, 8)    =  3,456 images  (tests and smoke runs)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from .base import DATASETS, DataBundle, Split
from .common import DEFAULT_TEST_FRACTION, DEFAULT_VALID_FRACTION, split_tensors

SHAPE_NAMES = ("square", "ellipse", "heart")
FACTOR_NAMES = ("shape", "scale", "rotation", "pos_x", "pos_y")
SIZE_FRACTION = 0.2  # bounding radius of the largest shape, as a fraction of the image size
MIN_SCALE = 0.5
SUPERSAMPLE = 4  # sub-pixel points per axis


@dataclass(frozen=True)
class ShapesSpec:
    """Image size and number of values of each factor; `sizes` = (3, n_scales, n_rotations, n_x, n_y)."""

    resolution: int = 64
    n_scales: int = 6
    n_rotations: int = 10
    n_x: int = 16
    n_y: int = 16

    def __post_init__(self) -> None:
        if self.resolution < 8:
            raise DataError(f"shapes: resolution must be at least 8 pixels, got {self.resolution}")
        if min(self.n_scales, self.n_rotations, self.n_x, self.n_y) < 1:
            raise DataError("shapes: every factor needs at least one value")
        free = self.resolution - 2 * self.margin
        if max(self.n_x, self.n_y) > free:
            raise DataError(f"shapes: at most {free} distinct positions fit in {self.resolution} pixels, "
                            f"got n_x={self.n_x}, n_y={self.n_y}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of values of each factor, in the order of FACTOR_NAMES."""
        return (len(SHAPE_NAMES), self.n_scales, self.n_rotations, self.n_x, self.n_y)

    @property
    def n_images(self) -> int:
        return math.prod(self.sizes)

    @property
    def margin(self) -> int:
        """Half the side of a template: a pixel further than ceil(radius) from the centre pixel has all its
        sub-pixel points outside the bounding circle, so no shape reaches beyond it."""
        return math.ceil(SIZE_FRACTION * self.resolution)

    def scales(self) -> np.ndarray:
        """Bounding radius in pixels of each scale value, (n_scales,)."""
        return SIZE_FRACTION * self.resolution * np.linspace(MIN_SCALE, 1.0, self.n_scales)

    def angles(self) -> np.ndarray:
        """Rotation in radians of each rotation value, (n_rotations,)."""
        return 2 * np.pi * np.arange(self.n_rotations) / self.n_rotations

    def positions(self, n: int) -> np.ndarray:
        """n integer centre positions spread evenly over [margin, resolution - 1 - margin]."""
        return np.round(np.linspace(self.margin, self.resolution - 1 - self.margin, n)).astype(np.int64)

    def index(self, factors: np.ndarray) -> np.ndarray:
        """Row of each factor combination in the full data set: (N, 5) indices -> (N,)."""
        factors = check_factors(factors, self.sizes)
        return np.ravel_multi_index(tuple(factors.T), self.sizes)

    def factors(self, index: np.ndarray) -> np.ndarray:
        """Inverse of `index`: rows (N,) -> (N, 5) int64 factor indices."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= self.n_images):
            raise DataError(f"shapes: row indices must lie in [0, {self.n_images}), got {index.min()}..{index.max()}")
        return np.stack(np.unravel_index(index, self.sizes), axis=1).astype(np.int64)

    def all_factors(self) -> np.ndarray:
        """Every combination in data-set order, (n_images, 5)."""
        return self.factors(np.arange(self.n_images))

    def render(self, factors: np.ndarray) -> np.ndarray:
        """Binary images (N, 1, R, R) uint8 of the factor combinations (N, 5)."""
        factors = check_factors(factors, self.sizes)
        stamps = _templates(self)  # (3, n_scales, n_rotations, T, T)
        t = stamps.shape[-1]
        xs, ys = self.positions(self.n_x), self.positions(self.n_y)
        n = factors.shape[0]
        out = np.zeros((n, self.resolution, self.resolution), dtype=np.uint8)
        # Paste each template with its centre pixel at (row ys[f_y], column xs[f_x]) by fancy indexing:
        # rows (N, T, 1), cols (N, 1, T) broadcast to (N, T, T).
        offsets = np.arange(t) - t // 2
        rows = (ys[factors[:, 4]][:, None] + offsets[None, :])[:, :, None]
        cols = (xs[factors[:, 3]][:, None] + offsets[None, :])[:, None, :]
        out[np.arange(n)[:, None, None], rows, cols] = stamps[factors[:, 0], factors[:, 1], factors[:, 2]]
        return out[:, None]


def check_factors(factors: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    """(N, K) integer factor indices within `sizes`, as int64; a DataError otherwise."""
    factors = np.asarray(factors)
    if factors.ndim == 1:
        factors = factors[None]
    if factors.ndim != 2 or factors.shape[1] != len(sizes):
        raise DataError(f"factor indices must have shape (N, {len(sizes)}), got {factors.shape}")
    if not np.issubdtype(factors.dtype, np.integer):
        raise DataError(f"factor indices must be integers, got {factors.dtype}")
    factors = factors.astype(np.int64)
    if factors.size and ((factors < 0).any() or (factors >= np.asarray(sizes)).any()):
        raise DataError(f"factor indices out of range for factor sizes {tuple(sizes)}")
    return factors


def inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Point-in-shape test in the shape's own frame (bounding radius 1, v pointing up)."""
    if shape == 0:  # square with half side 1/sqrt(2): corners on the unit circle
        return np.maximum(np.abs(u), np.abs(v)) <= 1 / math.sqrt(2)
    if shape == 1:  # ellipse with semi-axes 1 and 1/2
        return u**2 + (2 * v) ** 2 <= 1
    if shape == 2:
        # Heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0; it spans x in [-1.14, 1.14], y in [-1, 1.24]. Shifted by
        # 0.12 to centre it vertically and shrunk by 1.34 so that it fits in the unit circle.
        x, y = 1.34 * u, 1.34 * v + 0.12
        return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0
    raise DataError(f"unknown shape index {shape}; shapes are {', '.join(SHAPE_NAMES)}")


def rasterise(shape: int, radius: float, angle: float, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Binary pixels of a shape with bounding radius `radius` (pixels) rotated by `angle`, at pixel offsets.

    `dx` (columns) and `dy` (rows, pointing down) are the offsets of pixel centres from the shape's centre, of any
    (broadcast) shape; each pixel is SUPERSAMPLE^2 points and is on when at least half of them are inside.
    """
    sub = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5  # sub-pixel offsets, e.g. +-0.125, +-0.375
    px = np.asarray(dx, dtype=np.float64)[..., None, None] + sub[None, :]  # (..., 1, S)
    py = np.asarray(dy, dtype=np.float64)[..., None, None] + sub[:, None]  # (..., S, 1)
    # Into the shape frame: rotate by -angle, flip rows so v points up, divide by the radius.
    c, s = math.cos(angle), math.sin(angle)
    u = (c * px - s * py) / radius
    v = (-s * px - c * py) / radius
    coverage = inside(shape, u, v).mean(axis=(-2, -1))
    return (coverage >= 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _templates(spec: ShapesSpec) -> np.ndarray:
    """Every (shape, scale, rotation) rasterised around its centre pixel: (3, n_scales, n_rotations, T, T) uint8."""
    t = 2 * spec.margin + 1
    offsets = np.arange(t, dtype=np.float64) - spec.margin
    dy, dx = offsets[:, None], offsets[None, :]
    stamps = np.zeros((len(SHAPE_NAMES), spec.n_scales, spec.n_rotations, t, t), dtype=np.uint8)
    for k in range(len(SHAPE_NAMES)):
        for i, radius in enumerate(spec.scales()):
            for j, angle in enumerate(spec.angles()):
                stamps[k, i, j] = rasterise(k, radius, angle, dx, dy)
    stamps.setflags(write=False)
    return stamps


def shapes_index(factor_indices: np.ndarray, spec: ShapesSpec = ShapesSpec()) -> np.ndarray:
    """Row in the full data set of each factor combination (N, 5) -> (N,)."""
    return spec.index(factor_indices)


def render(factor_indices: np.ndarray, spec: ShapesSpec = ShapesSpec()) -> torch.Tensor:
    """Images (N, 1, R, R) float32 in {0, 1} of the factor combinations (N, 5), identical to the data set's rows."""
    return torch.from_numpy(spec.render(factor_indices)).to(torch.float32)


def load_shapes(
    spec: ShapesSpec = ShapesSpec(),
    *,
    name: str = "shapes",
    seed: int = 0,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> DataBundle:
    """Every factor combination of `spec`, split train/valid/test by a seeded permutation.

    Labels y are the shape (3 classes). `meta` holds what the disentanglement metrics need:
        factor_names, factor_sizes   names and number of values of the 5 factors
        factors                      {split: (N_split, 5) int64 tensor}, aligned with the split's rows
        render                       factor indices (N, 5) -> images (N, 1, R, R), for any combination
        shapes_spec                  the ShapesSpec
    """
    all_factors = torch.from_numpy(spec.all_factors())  # (N, 5), row i = factors of image i
    # Split the row numbers with the shared seeded permutation, then render each split's rows directly (cheaper
    # than rendering everything and gathering 0.75 GB of float images).
    row_splits = split_tensors(torch.arange(spec.n_images), None, valid_fraction, test_fraction, seed)
    factors, splits = {}, {}
    for split_name, rows in row_splits.items():
        f = all_factors[rows.x]  # (N_split, 5)
        factors[split_name] = f
        x = torch.from_numpy(spec.render(f.numpy())).to(torch.float32)  # (N_split, 1, R, R)
        splits[split_name] = Split(x, f[:, 0].clone())
    return DataBundle(
        name=name,
        splits=splits,
        event_shape=(1, spec.resolution, spec.resolution),
        value_kind="binary",
        num_classes=len(SHAPE_NAMES),
        class_names=SHAPE_NAMES,
        meta={
            "source": "vaekit.data.shapes (procedural, dSprites-like)",
            "split_seed": seed,
            "factor_names": FACTOR_NAMES,
            "factor_sizes": spec.sizes,
            "factors": factors,
            "render": functools.partial(render, spec=spec),
            "shapes_spec": spec,
        },
    )


SPECS = {
    "shapes": ShapesSpec(64, 6, 10, 16, 16),
    "shapes-32": ShapesSpec(32, 4, 8, 12, 12),
    "shapes-16": ShapesSpec(16, 3, 6, 8, 8),
}


def _register(name: str, spec: ShapesSpec) -> None:
    def loader(*, seed: int = 0, valid_fraction: float = DEFAULT_VALID_FRACTION,
               test_fraction: float = DEFAULT_TEST_FRACTION) -> DataBundle:
        return load_shapes(spec, name=name, seed=seed, valid_fraction=valid_fraction, test_fraction=test_fraction)

    loader.__doc__ = (f"Procedural dSprites-like shapes with factor labels, {spec.resolution}x{spec.resolution} "
                      f"binary, factor sizes {spec.sizes} = {spec.n_images:,} images")
    DATASETS.register(name)(loader)


for _name, _spec in SPECS.items():
    _register(_name, _spec)
