"""The procedural shapes data set: sizes, determinism, and the round trip row <-> factors <-> rendered image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaekit
from vaekit.data import DATASETS
from vaekit.data.shapes import FACTOR_NAMES, SPECS, ShapesSpec, rasterise, render, shapes_index
from vaekit.errors import DataError

SMALL = SPECS["shapes-16"]


@pytest.fixture(scope="module")
def small() -> vaekit.DataBundle:
    return vaekit.load_data("shapes-16")


def test_registered_with_sizes_and_help() -> None:
    assert {"shapes", "shapes-32", "shapes-16"} <= set(DATASETS.names())
    assert SPECS["shapes"].sizes == (3, 6, 10, 16, 16) and SPECS["shapes"].resolution == 64
    for name, spec in SPECS.items():
        assert str(spec.sizes) in DATASETS.help(name)
        assert spec.n_images == int(np.prod(spec.sizes))


def test_bundle_shapes_values_and_meta(small) -> None:
    spec = small.meta["shapes_spec"]
    assert spec == SMALL and small.event_shape == (1, 16, 16) and small.value_kind == "binary"
    assert small.meta["factor_names"] == FACTOR_NAMES and small.meta["factor_sizes"] == SMALL.sizes
    assert sum(len(s) for s in small.splits.values()) == SMALL.n_images
    rows = []
    for name, split in small.splits.items():
        factors = small.meta["factors"][name]
        assert factors.dtype == torch.int64 and factors.shape == (len(split), 5)
        assert torch.equal(split.y, factors[:, 0])  # labels are the shape
        assert set(torch.unique(split.x).tolist()) <= {0.0, 1.0}
        assert bool((split.x.flatten(1).sum(1) > 0).all()), "every image shows its shape"
        rows.append(SMALL.index(factors.numpy()))
    # The splits partition the grid: every combination exactly once.
    assert np.array_equal(np.sort(np.concatenate(rows)), np.arange(SMALL.n_images))


def test_generation_is_deterministic_and_split_by_seed(small) -> None:
    again, other = vaekit.load_data("shapes-16"), vaekit.load_data("shapes-16", seed=1)
    for name in small.splits:
        assert torch.equal(small.split(name).x, again.split(name).x)
        assert torch.equal(small.meta["factors"][name], again.meta["factors"][name])
    assert not torch.equal(small.meta["factors"]["test"], other.meta["factors"]["test"])
    # The images themselves do not depend on the split seed.
    all_factors = SMALL.all_factors()
    assert np.array_equal(SMALL.render(all_factors), ShapesSpec(16, 3, 6, 8, 8).render(all_factors))


def test_index_factor_round_trip() -> None:
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, s, 200) for s in SMALL.sizes], axis=1)
    rows = shapes_index(factors, SMALL)
    assert np.array_equal(SMALL.factors(rows), factors)
    assert np.array_equal(SMALL.index(SMALL.all_factors()), np.arange(SMALL.n_images))
    assert np.array_equal(shapes_index(np.array([[2, 5, 9, 15, 15]])), [SPECS["shapes"].n_images - 1])


def test_rendered_images_equal_the_data_rows(small) -> None:
    for name, split in small.splits.items():
        assert torch.equal(small.meta["render"](small.meta["factors"][name].numpy()), split.x)
    # Row i of the enumeration renders to the image whose factors unravel from i.
    rows = np.array([0, 1, 17, SMALL.n_images - 1])
    assert torch.equal(render(SMALL.factors(rows), SMALL), render(SMALL.all_factors()[rows], SMALL))


def test_pasted_templates_equal_direct_rasterisation() -> None:
    spec = SPECS["shapes-32"]
    offsets = np.arange(spec.resolution, dtype=np.float64)
    for f in ([0, 3, 1, 0, 11], [1, 0, 5, 6, 2], [2, 2, 7, 11, 0]):
        cx, cy = spec.positions(spec.n_x)[f[3]], spec.positions(spec.n_y)[f[4]]
        direct = rasterise(f[0], spec.scales()[f[1]], spec.angles()[f[2]], offsets[None, :] - cx, offsets[:, None] - cy)
        assert np.array_equal(spec.render(np.array([f]))[0, 0], direct)


def test_factors_act_as_described() -> None:
    spec = SPECS["shapes-32"]  # 8 rotations: two steps = 90 degrees
    base = np.array([[2, 3, 0, 5, 5]])

    def image(**change) -> np.ndarray:
        f = base.copy()
        for k, v in change.items():
            f[0, FACTOR_NAMES.index(k)] = v
        return spec.render(f)[0, 0]

    dx = spec.positions(spec.n_x)[6] - spec.positions(spec.n_x)[5]
    assert np.array_equal(np.roll(image(), dx, axis=1), image(pos_x=6))  # pos_x moves columns
    dy = spec.positions(spec.n_y)[7] - spec.positions(spec.n_y)[5]
    assert np.array_equal(np.roll(image(), dy, axis=0), image(pos_y=7))  # pos_y moves rows
    assert image(scale=3).sum() > image(scale=0).sum()
    assert not np.array_equal(image(rotation=2), image())  # the heart has no symmetry
    assert np.array_equal(image(shape=0, rotation=2), image(shape=0))  # a square turned by 90 degrees
    heart = image()
    rows = np.nonzero(heart.any(1))[0]
    middle = (rows.min() + rows.max() + 1) // 2
    assert heart[rows.min() : middle].sum() > heart[middle : rows.max() + 1].sum()  # upright: lobes on top


def test_bad_factors_and_specs_are_data_errors() -> None:
    with pytest.raises(DataError, match="out of range"):
        SMALL.render(np.array([[3, 0, 0, 0, 0]]))
    with pytest.raises(DataError, match=r"shape \(N, 5\)"):
        SMALL.index(np.zeros((2, 4), dtype=int))
    with pytest.raises(DataError, match="distinct positions"):
        ShapesSpec(16, 3, 6, 12, 8)
    with pytest.raises(DataError, match="does not apply"):
        vaekit.load_data("shapes-16", binarize="threshold")
