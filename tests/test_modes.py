"""Mode coverage metrics on hand-made samples, and the 2-D multi-modal data sets they describe."""

from __future__ import annotations

import numpy as np
import pytest

import vaekit
from vaekit.data.toy2d import PINWHEEL, ring_spec, sample_pinwheel, sample_ring
from vaekit.errors import ConfigError
from vaekit.metrics.modes import mode_distances, mode_report


def test_samples_of_the_true_ring_are_near_its_modes_and_cover_all():
    x, labels = sample_ring(8000, np.random.default_rng(1))
    report = mode_report(x, ring_spec())
    # a 2-D standard normal lies within radius 3 with probability 1 - exp(-9/2) = 0.9889
    assert report["near_fraction"] == pytest.approx(1 - np.exp(-4.5), abs=0.005)
    assert report["modes_covered"] == 8 and sum(report["counts"]) == pytest.approx(0.989 * 8000, rel=0.01)
    assert (mode_distances(x, ring_spec()).argmin(1) == labels).all()  # each point nearest its own component


def test_hand_made_samples_score_as_intended():
    spec = ring_spec()
    means = np.asarray(spec["means"])
    at_two_modes = np.repeat(means[:2], 50, axis=0)  # exactly on modes 0 and 1
    report = mode_report(at_two_modes, spec)
    assert report["near_fraction"] == 1.0 and report["modes_covered"] == 2 and report["counts"][:2] == [50, 50]
    centre = np.zeros((100, 2))  # the blurry answer: the mean of all modes, far from every one
    assert mode_report(centre, spec)["near_fraction"] == 0.0 and mode_report(centre, spec)["modes_covered"] == 0
    between = (means[0] + means[1]) / 2  # halfway between two neighbours: 0.77 from each, 7.7 standard deviations
    assert mode_report(np.tile(between, (10, 1)), spec)["near_fraction"] == 0.0
    edge = means[3] + [0.0, 0.299]  # just inside 3 standard deviations, and just outside
    assert mode_report(edge[None], spec)["near_fraction"] == 1.0
    assert mode_report((means[3] + [0.0, 0.301])[None], spec)["near_fraction"] == 0.0
    # 5 samples at mode 1: at least 10% of its fair share (100 / 8 = 12.5) covers it, not 50%
    few = np.concatenate([np.repeat(means[:1], 95, 0), np.repeat(means[1:2], 5, 0)])
    assert mode_report(few, spec)["modes_covered"] == 2
    assert mode_report(few, spec, min_share=0.5)["modes_covered"] == 1


def test_the_pinwheel_inversion_recovers_each_arm_and_its_spread():
    x, labels = sample_pinwheel(6000, np.random.default_rng(2))
    d = mode_distances(x, {"kind": "pinwheel", **PINWHEEL})
    assert (d.argmin(1) == labels).mean() > 0.99
    assert mode_report(x, {"kind": "pinwheel", **PINWHEEL})["near_fraction"] == pytest.approx(0.989, abs=0.006)
    assert mode_report(np.zeros((10, 2)), {"kind": "pinwheel", **PINWHEEL})["near_fraction"] == 0.0


def test_bad_samples_and_specs_are_refused():
    with pytest.raises(ConfigError, match=r"shape \(N, 2\)"):
        mode_report(np.zeros((4, 3)), ring_spec())
    with pytest.raises(ConfigError, match="NaN"):
        mode_report(np.full((2, 2), np.nan), ring_spec())
    with pytest.raises(ConfigError, match="unknown mode description"):
        mode_report(np.zeros((2, 2)), {"kind": "blobs"})


@pytest.mark.parametrize("name, modes", [("ring8", 8), ("pinwheel", 5)])
def test_the_data_sets_load_with_their_modes(name, modes):
    bundle = vaekit.load_data(name)
    assert bundle.event_shape == (2,) and bundle.value_kind == "real" and bundle.num_classes == modes
    assert sum(len(s) for s in bundle.splits.values()) == 10_000
    report = mode_report(bundle.split("train").x.numpy(), bundle.meta["modes"])
    assert report["modes_covered"] == modes and report["near_fraction"] > 0.98


def test_a_run_on_2d_data_draws_its_samples_beside_the_data(tmp_path):
    config = vaekit.build_run_config(None, ["data.name=ring8", "train.epochs=1", "train.progress=false",
                                            "model.latent_dim=2"])
    result = vaekit.fit(config, tmp_path / "run", figures=True)
    names = [p.name for p in result.figures]
    assert "samples_2d.png" in names and (tmp_path / "run" / "samples_2d.png").stat().st_size > 10_000
