"""Shared fixtures: a tiny trained run on the bundled digits, and the location of the shared data sets."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import settings

import vaekit

REPO = Path(__file__).resolve().parents[1]

# In CI the property tests draw the same examples every run (a seed per test), so that a submission is judged on
# what was tried here; locally they explore new examples each run.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def shared_data_root() -> Path | None:
    """$VAEKIT_DATA, or ../shared/data beside the repository, when it exists."""
    for candidate in (os.environ.get("VAEKIT_DATA"), REPO.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    # Tiny test models gain nothing from a second thread, and lose much when the cores are shared.
    torch.set_num_threads(1)


def tiny_config(**train) -> vaekit.RunConfig:
    """A config that trains in about a second on digits."""
    config = vaekit.RunConfig()
    config.model.network.hidden = [64]
    # Bernoulli rather than the digits' own default (gaussian-learned): the thresholds of the tests were set for it.
    config.model.likelihood = "bernoulli"
    config.model.latent_dim = 4
    config.train.epochs = train.pop("epochs", 3)
    config.train.progress = False
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def tiny_text_config() -> vaekit.RunConfig:
    """A sentence VAE on the toy corpus that trains in a second or two (one epoch, 16 hidden units)."""
    return vaekit.build_run_config(None, ["data.name=toy-sentences", "data.max_len=12", "train.epochs=1",
                                          "train.progress=false", "model.latent_dim=4", "model.network=rnn",
                                          "model.network.hidden=16", "model.network.embed_dim=8",
                                          "model.likelihood=sentence", "model.likelihood.hidden=16",
                                          "model.likelihood.embed_dim=8"])


@pytest.fixture(scope="session")
def digits() -> vaekit.DataBundle:
    return vaekit.load_data("digits")


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder`: its size and modification time (what any write would change)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, digits) -> Path:
    """A run folder trained for a few epochs on digits, the one tiny run of the suite. Tests only read it; a
    test that writes into a run folder takes `writable_run` instead. Checked unchanged at the end of the session,
    since a test that wrote into it would change what every later test sees."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    vaekit.fit(tiny_config(epochs=3), run_dir, data=digits)
    before = _listing(run_dir)
    yield run_dir
    assert _listing(run_dir) == before, "a test wrote into the shared trained_run: give it writable_run instead"


@pytest.fixture
def writable_run(trained_run, tmp_path) -> Path:
    """A copy of `trained_run` of the test's own, to write into."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def read_scatter_html(path) -> dict:
    """The JSON payload embedded in a page of `vaekit.analysis.scatter_html` written to `path`."""
    from vaekit.analysis.html import DATA_ELEMENT_ID

    text = Path(path).read_text()
    start = text.index(f'id="{DATA_ELEMENT_ID}"')
    start = text.index(">", start) + 1
    end = text.index("</script>", start)
    return json.loads(text[start:end].replace("<\\/", "</"))


@pytest.fixture(scope="session")
def binary_digits_model(digits):
    """A Bernoulli VAE trained on digits thresholded at 0.5, and its binary test images (for the codecs)."""
    train, test = ((digits.split(s).x > 0.5).float() for s in ("train", "test"))
    config = vaekit.build_run_config(None, ["train.epochs=100", "train.batch_size=64", "train.progress=false",
                                            "model.likelihood=bernoulli", "model.latent_dim=8",
                                            "model.network.hidden=[128]", "objective.warmup_epochs=10"])
    model = vaekit.fit(config, data=vaekit.DataBundle.from_arrays(train, valid=(test,))).model
    return model, test
