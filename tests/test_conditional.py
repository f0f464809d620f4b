"""Conditional VAE: samples respect the label (measured by a classifier), style transfer, sample-quality metrics,
and one-line CLI errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaekit
from vaekit.apps.style import analogy_grid, analogy_output, samples_per_class, transfer_style
from vaekit.cli import main
from vaekit.commands.outputs import save_classifier
from vaekit.errors import ConfigError
from vaekit.metrics.sample_quality import (CLASSIFIER_FILE, classify, frechet_distance, histogram_kl, load_classifier,
                                           run_classifier, sample_quality, sample_quality_report, train_classifier)

from conftest import tiny_config


@pytest.fixture(autouse=True)
def _one_thread():
    # These networks are tiny: on a busy 2-core machine one thread is several times faster than two.
    torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread_for_module_fixtures():
    # Module-scoped fixtures are set up before the function-scoped one above.
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory, digits):
    """A conditional VAE trained for 30 epochs on digits (a few seconds)."""
    run_dir = tmp_path_factory.mktemp("cond") / "cvae"
    config = tiny_config(epochs=30)
    config.model.conditional = True
    config.model.network.hidden = [128]
    vaekit.fit(config, run_dir, data=digits)
    return run_dir


@pytest.fixture(scope="module")
def classifier(digits):
    return train_classifier(digits, epochs=30, progress=False)


def test_classifier_recognises_real_digits_and_round_trips(classifier, digits, tmp_path):
    assert classifier.info["test_accuracy"] > 0.9
    path = save_classifier(classifier, tmp_path / "clf.safetensors")
    loaded = load_classifier(path.with_suffix(".json"))
    x = digits.split("test").x[:50]
    torch.testing.assert_close(loaded(x), classifier.eval()(x))


def test_conditional_samples_respect_the_label(cvae_run, digits, classifier):
    model = vaekit.load(cvae_run)
    quality = sample_quality(model, digits, classifier, n=1000, seed=0)
    # Chance is 10%; a CVAE whose decoder ignored the label would score about that.
    assert quality.conditional_accuracy > 0.7
    assert quality.kl_to_data < 0.2
    torch.manual_seed(1)
    hits = [(classify(classifier, model.sample(100, c))[1] == c).mean() for c in (1, 7)]
    assert min(hits) > 0.6


def test_samples_per_class_share_z_and_follow_the_label(cvae_run, classifier):
    model = vaekit.load(cvae_run)
    images = samples_per_class(model, 20, seed=3)  # (K, M, 1, 8, 8)
    assert images.shape == (10, 20, 1, 8, 8)
    predicted = classify(classifier, images.flatten(0, 1))[1].reshape(10, 20)
    assert (predicted == np.arange(10)[:, None]).mean() > 0.7
    torch.testing.assert_close(samples_per_class(model, 20, seed=3), images)  # seeded
    state = torch.get_rng_state()
    samples_per_class(model, 2, seed=4, mean=False)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left alone


def test_style_transfer_keeps_z_and_changes_the_label(cvae_run, digits, classifier):
    model = vaekit.load(cvae_run)
    test = digits.split("test")
    x, y = test.x[:40], test.y[:40]
    target = (y + 3) % 10
    result = transfer_style(model, x, y, target)
    torch.testing.assert_close(result.z, model.encode(x, y).mean)  # the style is the source's own z
    torch.testing.assert_close(result.images, model.decode(result.z, target).mean)
    predicted = classify(classifier, result.images)[1]
    assert (predicted == target.numpy()).mean() > 0.7  # content follows the new label ...
    assert (predicted == y.numpy()).mean() < 0.3  # ... not the source's
    grid = analogy_grid(model, x[:4], y[:4], [2, 5])
    assert grid.images.shape == (4, 2, 1, 8, 8)
    torch.testing.assert_close(grid.images[1, 1], transfer_style(model, x[1:2], y[1:2], 5).images[0])
    import matplotlib.pyplot

    figure = analogy_output(grid, ".PNG", digits.class_names)  # drawn, not written: the caller writes it
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["style", "2", "5"]
    matplotlib.pyplot.close(figure)
    assert np.array_equal(analogy_output(grid, ".npy"), grid.images.numpy())
    with pytest.raises(ConfigError, match="use .png or .npy"):
        analogy_output(grid, ".csv")


def test_style_transfer_on_an_unconditional_model_is_a_clear_error(trained_run, digits):
    model = vaekit.load(trained_run)
    with pytest.raises(ConfigError, match="conditional"):
        transfer_style(model, digits.split("test").x[:2], torch.tensor([0, 1]), 3)


def test_frechet_distance_is_zero_on_itself_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 6))
    assert frechet_distance(a, a) < 1e-6
    shifts = [frechet_distance(a, a + s) for s in (0.5, 1.0, 2.0)]
    # A shift by s in every one of 6 dimensions adds 6 s^2 to the distance.
    np.testing.assert_allclose(shifts, [6 * 0.25, 6 * 1.0, 6 * 4.0], rtol=1e-6)
    assert frechet_distance(a, 2 * a) > 1.0  # and grows with a change of scale


def test_histogram_kl():
    assert histogram_kl([10, 20, 30], [0.1 / 0.6, 0.2 / 0.6, 0.3 / 0.6]) == pytest.approx(0.0, abs=1e-12)
    assert histogram_kl([1, 0, 0], [1 / 3, 1 / 3, 1 / 3]) == pytest.approx(np.log(3))
    assert histogram_kl([0.5, 0.5], [0.9, 0.1]) > 0


def test_quality_report_uses_the_cached_classifier(cvae_run, digits):
    run = vaekit.load_run(cvae_run)
    cached = (cvae_run / CLASSIFIER_FILE).is_file()  # the quality command may have cached it already
    classifier, trained = run_classifier(run, digits, progress=False)
    assert trained == (not cached) and (cvae_run / CLASSIFIER_FILE).is_file() == cached  # computing writes nothing
    if trained:  # as the quality command caches it
        save_classifier(classifier, cvae_run / CLASSIFIER_FILE)
    assert (cvae_run / "classifier.safetensors").is_file() and (cvae_run / "classifier.json").is_file()
    stamp = (cvae_run / "classifier.safetensors").stat().st_mtime_ns
    assert run_classifier(run, digits, progress=False)[1] is False  # read, not trained again
    first = sample_quality_report(run, digits, n=300, progress=False)
    second = sample_quality_report(run, digits, n=300, progress=False)
    assert (cvae_run / "classifier.safetensors").stat().st_mtime_ns == stamp  # loaded, not retrained
    assert first.to_dict() == second.to_dict()  # seeded
    assert 0 < first.conditional_accuracy <= 1 and first.frechet_distance >= 0


def test_cli_sample_style_and_quality(cvae_run, tmp_path, capsys):
    run = str(cvae_run)
    assert main(["sample", run, "--label", "7", "-n", "8", "--out", str(tmp_path / "s7.png")]) == 0
    assert main(["sample", run, "--per-class", "3", "--out", str(tmp_path / "rows.npy")]) == 0
    assert np.load(tmp_path / "rows.npy").shape == (30, 64)
    assert main(["style", run, "--style", "0,1", "--content", "idx:5,3", "--out", str(tmp_path / "st.npy")]) == 0
    assert np.load(tmp_path / "st.npy").shape == (2, 2, 1, 8, 8)
    assert main(["style", run, "--grid", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert main(["quality", run, "-n", "200", "--out", str(tmp_path / "q.json")]) == 0
    assert "conditional accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["sample", "{c}", "--label", "10"], "outside the trained classes 0..9"),
    (["sample", "{c}", "--label", "-1"], "outside the trained classes"),
    (["sample", "{u}", "--label", "3"], "needs a conditional model"),
    (["style", "{c}", "--content", "11"], "outside the trained classes"),
    (["style", "{c}", "--content", "seven"], "is not a label"),
    (["style", "{c}", "--style", "100000", "--content", "1"], "outside the split"),
    (["style", "{c}"], "either --content"),
    (["style", "{u}", "--content", "1"], "needs a conditional model"),
])
def test_bad_input_gives_one_line_errors(argv, message, cvae_run, trained_run, tmp_path, capsys):
    argv = [a.format(c=cvae_run, u=trained_run) for a in argv] + ["--out", str(tmp_path / "out.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_conditional_model_sampled_without_a_label_raises(cvae_run):
    with pytest.raises(ConfigError, match="give a class label"):
        vaekit.load(cvae_run).sample(4)


def test_latent_analysis_of_a_conditional_model_needs_a_label(cvae_run, digits):
    from vaekit.analysis import analogy, interpolate, latent_grid, traverse

    model = vaekit.load(cvae_run)
    x = digits.split("test").x[:3]
    calls = {
        "traverse": lambda label: traverse(model, [0], steps=3, label=label),
        "latent_grid": lambda label: latent_grid(model, 2, [0, 1], label=label),
        "interpolate": lambda label: interpolate(model, x[0], x[1], steps=3, label=label),
        "analogy": lambda label: analogy(model, x[0], x[1], x[2], label=label),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError, match="give a class label"):  # the model's own check
            call(None)
        assert call(3) is not None, name
    path = interpolate(model, x[0], x[1], steps=3, y_a=1, y_b=2)  # decoded in class y_a by default
    torch.testing.assert_close(path.images[0], model.decode(path.z[:1], torch.tensor([1])).mean[0])

