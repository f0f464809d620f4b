"""What a run shows: seeded sample grids that leave the caller's random state alone, and the output-folder rule."""

from __future__ import annotations

import pytest
import torch

import vaekit
from vaekit.commands.common import refuse_nonempty
from vaekit.core.rng import seeded
from vaekit.errors import VaekitError
from vaekit.figures.report import draw_samples


def test_seeded_restores_the_global_rng():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with seeded(7):
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), state)
    with seeded(7):
        assert torch.equal(torch.rand(3), inside)  # the same seed gives the same draws


def test_draw_samples_is_seeded_and_leaves_the_global_rng_unchanged(trained_run):
    model = vaekit.load(trained_run)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = draw_samples(model, 6, seed=3, mean=False)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)  # another global state: the same samples
    assert torch.equal(draw_samples(model, 6, seed=3, mean=False), first)
    assert not torch.equal(draw_samples(model, 6, seed=4, mean=False), first)


def test_refuse_nonempty_allows_only_missing_or_empty_folders(tmp_path):
    refuse_nonempty(tmp_path / "missing")
    refuse_nonempty(tmp_path)  # empty
    (tmp_path / "file.txt").write_text("mine")
    with pytest.raises(VaekitError, match="already exists and is not empty; choose another --out"):
        refuse_nonempty(tmp_path)
    with pytest.raises(VaekitError, match="or continue it"):
        refuse_nonempty(tmp_path / "file.txt", "choose another --out or continue it with --resume")
