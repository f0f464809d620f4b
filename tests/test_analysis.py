"""Latent-space analysis (vaekit.analysis) on a small VAE trained on the bundled digits."""

from __future__ import annotations

import copy
import itertools
import math
import sys

import numpy as np
import pytest
import torch
from conftest import read_scatter_html, tiny_config
from PIL import Image

import vaekit
from vaekit.analysis import (
    analogy,
    apply_vector,
    as_boolean,
    attribute_vector,
    clustering_accuracy,
    compare_clusterings,
    confusion_figure,
    dataset_attribute,
    decoded_figure,
    decoded_output,
    encode_dataset,
    interpolate,
    interpolate_codes,
    label_vector,
    latent_grid,
    load_embedding,
    matched_confusion,
    project,
    read_attribute_file,
    scatter_figure,
    scatter_html,
    score_clustering,
    slerp,
    traverse,
)
from vaekit.commands.outputs import save_embedding
from vaekit.errors import ConfigError, DataError
from vaekit.training.writer import write_output


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # The test machine is shared: OpenMP pools of scikit-learn slow down badly when the cores are busy.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def model(digits):
    """A 4-D VAE trained long enough on digits that its latent space separates some classes (~5 s)."""
    torch.manual_seed(0)
    config = tiny_config(epochs=25, lr=3e-3, batch_size=64, threads=1)
    config.model.network.hidden = [128]
    return vaekit.fit(config, data=digits).model


@pytest.fixture(scope="module")
def train_embedding(model, digits):
    split = digits.split("train")
    return encode_dataset(model, split.x, split.y)


# --- embed --------------------------------------------------------------------------------------------------


def test_encode_dataset_shapes_kl_and_round_trip(model, digits, tmp_path):
    split = digits.split("test")
    emb = encode_dataset(model, split.x, split.y, n_samples=3, batch_size=100)
    n, d = len(split), model.latent_dim
    assert emb.mean.shape == emb.var.shape == (n, d) and emb.samples.shape == (3, n, d)
    assert (emb.var > 0).all() and np.array_equal(emb.labels, split.y.numpy())
    qz = model.encode(split.x)
    assert np.allclose(emb.mean, qz.mean.detach().numpy(), atol=1e-6)
    # KL(N(mu, s^2) || N(0, 1)) per dimension, averaged over the data, from the stored means and variances
    kl = (0.5 * (emb.mean**2 + emb.var - 1 - np.log(emb.var))).mean(0)
    assert np.allclose(emb.kl_per_dim, kl, rtol=1e-4, atol=1e-5)
    path = save_embedding(emb, tmp_path / "z.npz")
    back = load_embedding(path)
    for key in ("mean", "var", "labels", "samples", "kl_per_dim", "index"):
        assert np.array_equal(getattr(back, key), getattr(emb, key)), key
    with pytest.raises(DataError, match="npz"):
        save_embedding(emb, tmp_path / "z.txt")


def test_kl_per_dim_of_a_mixture_prior_is_reported_as_evaluate_reports_it(model, digits):
    from vaekit.evaluate import posterior_diagnostics
    from vaekit.priors import MixtureOfGaussiansPrior

    mixture = copy.deepcopy(model)
    mixture.prior = MixtureOfGaussiansPrior(model.latent_dim, components=4)  # no closed-form KL per dimension
    x = digits.split("valid").x
    state = torch.get_rng_state()
    emb = encode_dataset(mixture, x, batch_size=100)
    assert torch.equal(torch.get_rng_state(), state)  # the Monte Carlo draws come from a generator of their own
    assert emb.kl_per_dim.shape == (model.latent_dim,) and np.isfinite(emb.kl_per_dim).all()
    diagnostics = posterior_diagnostics(mixture, x, batch_size=100)
    np.testing.assert_allclose(emb.kl_per_dim, diagnostics.kl_per_dim, rtol=1e-5, atol=1e-6)


def test_read_example_from_image_and_npy(tmp_path):
    from vaekit.analysis import read_example

    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    Image.fromarray(pixels).save(tmp_path / "x.png")
    x = read_example(tmp_path / "x.png", (1, 8, 8))
    assert x.shape == (1, 8, 8) and torch.allclose(x[0], torch.from_numpy(pixels / 255.0).float())
    np.save(tmp_path / "x.npy", np.ones(64, dtype=np.float32))
    assert read_example(tmp_path / "x.npy", (1, 8, 8)).shape == (1, 8, 8)
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match="12x10 pixels but the model expects 8x8: resize"):
        read_example(tmp_path / "big.png", (1, 8, 8))


# --- project and plot ---------------------------------------------------------------------------------------


def test_project_methods_and_shapes(train_embedding):
    z = train_embedding.mean[:150]
    pca = project(z, 2, "pca")
    assert pca.coords.shape == (150, 2) and pca.method == "pca" and pca.explained_variance[0] > 0
    assert np.isclose(np.abs(np.corrcoef(pca.coords[:, 0], z @ np.linalg.svd(z - z.mean(0))[2][0])[0, 1]), 1,
                      atol=1e-3)
    direct = project(z[:, :3], 3, "auto")  # a 3-D latent space is plotted as it is
    assert direct.method == "none" and np.array_equal(direct.coords, z[:, :3])
    tsne = project(z, 2, "tsne", seed=0)
    assert tsne.coords.shape == (150, 2) and np.isfinite(tsne.coords).all()
    assert tsne.coords.std(0).min() > 0
    one_d = project(z[:, :1], 2)
    assert np.array_equal(one_d.coords[:, 0], z[:, 0]) and one_d.axis_names == ("z0", "example")


def test_project_bad_input_names_the_fix(train_embedding, monkeypatch):
    with pytest.raises(ConfigError, match="3D plot needs at least 3 latent dimensions.*--dims 2"):
        project(train_embedding.mean[:, :1], 3)
    with pytest.raises(ConfigError, match="unknown projection method"):
        project(train_embedding.mean, 2, "isomap")
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(ConfigError, match="pip install umap-learn") as error:
        project(train_embedding.mean[:50], 2, "umap")
    assert "\n" not in str(error.value)


def test_scatter_png_and_html_hold_the_data(train_embedding, digits, tmp_path):
    emb = train_embedding.subset(np.arange(0, 300, 2))
    coords = project(emb.mean, 2, "pca").coords
    fig = scatter_figure(coords, emb.labels, digits.class_names, ("PC1", "PC2"), "test")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(digits.class_names)
    assert not (tmp_path / "z.png").exists()  # drawing writes nothing
    png = write_output(fig, tmp_path / "z.png")
    with Image.open(png) as image:
        assert image.size[0] > 500 and image.size[1] > 400
    page = write_output(scatter_html(coords, emb.labels, emb.index, digits.class_names, ("PC1", "PC2"),
                                     "test <plot>"), tmp_path / "z.html")
    data = read_scatter_html(page)
    text = page.read_text()
    assert np.allclose(np.array(data["coords"]).T, coords, atol=1e-4)
    assert data["label"] == emb.labels.tolist() and data["index"] == emb.index.tolist()
    assert data["classes"] == list(digits.class_names) and data["dims"] == 2
    assert "<canvas" in text and "test &lt;plot&gt;" in text
    assert "http://" not in text and "https://" not in text and "src=" not in text  # nothing loaded from outside
    coords3 = project(emb.mean, 3, "pca").coords
    data3 = read_scatter_html(write_output(scatter_html(coords3, None, None, None, ("a", "b", "c")),
                                           tmp_path / "z3.html"))
    assert data3["dims"] == 3 and len(data3["coords"]) == 3 and set(data3["label"]) == {-1}


# --- traversal ----------------------------------------------------------------------------------------------


def test_traversal_changes_only_the_chosen_dimension(model, digits, train_embedding):
    x = digits.split("test").x[:1]
    base = model.encode(x).mean[0].detach()
    result = traverse(model, [2, 0], base, span=2.0, steps=5, embedding=train_embedding)
    assert result.images.shape == (2, 5, *model.event_shape)
    assert result.z.shape == (2, 5, model.latent_dim)
    kl = train_embedding.kl_per_dim
    assert list(result.dims) == sorted([2, 0], key=lambda d: -kl[d])  # most informative first
    for r, d in enumerate(result.dims):
        changed = (result.z[r] != base).any(0)  # (D,): which coordinates moved along row r
        assert changed.tolist() == [i == d for i in range(model.latent_dim)]
        assert torch.allclose(result.z[r, :, d], base[d] + torch.linspace(-2, 2, 5), atol=1e-5)
    assert not torch.allclose(result.images[0, 0], result.images[0, -1])  # the decoded picture moves


def test_traversal_marks_collapsed_dimensions_and_rejects_bad_dims(model, train_embedding):
    from dataclasses import replace

    # dimensions 0 and 2 collapsed: their posterior means do not vary over the data (the rows are ranked by KL)
    mean = train_embedding.mean.copy()
    mean[:, [0, 2]] = 0.5
    fake = replace(train_embedding, mean=mean, kl_per_dim=np.array([0.0, 2.0, 0.001, 1.0], dtype=np.float32))
    result = traverse(model, embedding=fake)
    assert result.dims == (1, 3, 2, 0)
    assert result.collapsed.tolist() == [False, False, True, True]
    assert "collapsed" in result.row_labels()[2] and "collapsed" not in result.row_labels()[0]
    with pytest.raises(ConfigError, match="latent dimension 7 is out of range.*0..3"):
        traverse(model, [0, 7])


# --- interpolation ------------------------------------------------------------------------------------------


def test_slerp_and_linear_endpoints_equal_the_encodings(model, digits):
    x = digits.split("test").x
    mu = model.encode(x[:2]).mean.detach()
    for method in ("linear", "slerp"):
        path = interpolate(model, x[0], x[1], steps=7, method=method)
        assert path.images.shape == (7, *model.event_shape) and path.z.shape == (7, model.latent_dim)
        assert torch.allclose(path.z[0], mu[0], atol=1e-5) and torch.allclose(path.z[-1], mu[1], atol=1e-5)
    linear = interpolate(model, x[0], x[1], steps=7, method="linear")
    assert torch.allclose(linear.z[3], (mu[0] + mu[1]) / 2, atol=1e-5)


def test_slerp_keeps_to_the_sphere():
    a, b = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 3.0])
    path = slerp(a, b, torch.linspace(0, 1, 9))
    assert torch.allclose(path.norm(dim=1), torch.full((9,), 3.0), atol=1e-5)
    assert torch.allclose(path[4], torch.tensor([3 / math.sqrt(2), 0.0, 3 / math.sqrt(2)]), atol=1e-5)
    same = slerp(a, a, torch.linspace(0, 1, 3))  # parallel codes: no great circle, the linear path
    assert torch.allclose(same, a.expand(3, 3))


def test_latent_grid(model):
    with pytest.raises(ConfigError, match="--grid-dims"):
        latent_grid(model, 4)  # a 4-D model: which two dimensions?
    grid = latent_grid(model, 4, dims=(1, 3))
    assert grid.images.shape == (4, 4, *model.event_shape)
    assert grid.values[0][0] < grid.values[0][-1] and grid.values[1][0] > grid.values[1][-1]  # top row highest


def test_interpolate_codes_checks_its_inputs(model):
    with pytest.raises(ConfigError, match="unknown interpolation"):
        interpolate_codes(model, torch.zeros(4), torch.ones(4), method="cubic")
    with pytest.raises(ConfigError, match="4 values"):
        interpolate_codes(model, torch.zeros(3), torch.ones(3))


# --- clustering ---------------------------------------------------------------------------------------------


def test_clustering_scores_match_scikit_learn_and_brute_force():
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    relabelled = np.array([2, 2, 2, 0, 0, 0, 1, 1, 1, 1])  # the same partition under other names
    perfect = score_clustering(y, relabelled)
    assert perfect.ari == pytest.approx(1.0) and perfect.nmi == pytest.approx(1.0) and perfect.accuracy == 1.0
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    y_pred[:120] = (y_true[:120] + 1) % 4  # partly a permuted copy
    scores = score_clustering(y_true, y_pred)
    assert scores.ari == pytest.approx(adjusted_rand_score(y_true, y_pred))
    assert scores.nmi == pytest.approx(normalized_mutual_info_score(y_true, y_pred))
    best = max(np.mean(np.array(p)[y_pred] == y_true) for p in itertools.permutations(range(4)))
    assert scores.accuracy == pytest.approx(best)
    matrix, clusters = matched_confusion(y_true, y_pred)
    assert matrix.sum() == 200 and np.trace(matrix) == round(best * 200) and sorted(clusters) == [0, 1, 2, 3]
    assert clustering_accuracy(np.array([0, 0, 1]), np.array([0, 1, 2])) == pytest.approx(2 / 3)  # k > labels


def test_compare_clusterings_rows_and_confusion_figure(train_embedding, digits, tmp_path):
    emb = train_embedding.subset(np.arange(300))
    x = digits.split("train").x[:300].numpy()
    results = compare_clusterings(emb.mean, x, emb.labels, k=10, methods=("kmeans", "gmm"))
    assert [(r.features.split(" (")[0], r.method) for r in results] == [
        ("latent means", "kmeans"), ("latent means", "gmm"), ("raw inputs", "kmeans"), ("raw inputs", "gmm"),
        ("PCA of inputs", "kmeans"), ("PCA of inputs", "gmm")]
    assert [r.dim for r in results] == [4, 4, 64, 64, 4, 4]
    for r in results:
        assert r.assignments.shape == (300,) and 0 <= r.scores.accuracy <= 1
        assert r.scores.nmi == pytest.approx(score_clustering(emb.labels, r.assignments).nmi)
    assert results[0].scores.accuracy > 0.3  # far above chance (0.1) for a model that learned something
    matrix, _ = matched_confusion(emb.labels, results[0].assignments)
    fig = confusion_figure(matrix, list(digits.class_names), "confusion")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(digits.class_names)
    png = write_output(fig, tmp_path / "c.png")
    with Image.open(png) as image:
        assert min(image.size) > 300


# --- latent arithmetic --------------------------------------------------------------------------------------


def test_label_vector_moves_decoded_outputs_towards_the_target_class(model, digits, train_embedding):
    from sklearn.linear_model import LogisticRegression

    train, test = digits.split("train"), digits.split("test")
    classifier = LogisticRegression(max_iter=2000).fit(train.x.flatten(1).numpy(), train.y.numpy())
    for source, target in ((0, 1), (7, 2)):
        vector = label_vector(train_embedding.mean, train_embedding.labels, target, source)
        assert vector.n_target == int((train.y == target).sum()) and vector.n_source == int((train.y == source).sum())
        moved = apply_vector(model, test.x[test.y == source], vector.vector, [0.0, 1.0])
        assert moved.images.shape[1:] == (2, *model.event_shape)
        centre = train.x[train.y == target].mean(0)  # the target class's mean image
        distance = (moved.images - centre).pow(2).flatten(2).sum(-1).mean(0)  # (2,): before, after
        p_target = [classifier.predict_proba(moved.images[:, s].flatten(1).numpy())[:, target].mean()
                    for s in range(2)]
        assert distance[1] < 0.6 * distance[0]
        assert p_target[1] > p_target[0] + 0.2


def test_attribute_vector_is_the_difference_of_group_means():
    z = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    mask = np.array([False, False, True, True])
    vector = attribute_vector(z, mask, name="tall")
    assert np.allclose(vector.vector, [-1.0, 3.0]) and (vector.n_target, vector.n_source) == (2, 2)
    with pytest.raises(ConfigError, match="target group"):
        attribute_vector(z, np.zeros(4, dtype=bool))


def test_analogy_decodes_a_minus_b_plus_c(model, digits):
    x = digits.split("test").x[:3]
    decoded, z = analogy(model, x[0], x[1], x[2])
    mu = model.encode(x).mean.detach()
    assert torch.allclose(z[0], mu[0] - mu[1] + mu[2], atol=1e-5)
    assert decoded.shape == (1, *model.event_shape)


def test_attribute_columns(tmp_path, digits):
    x = digits.split("test").x
    ink = dataset_attribute(x, "ink")
    assert ink.shape == (len(x),) and 0.4 < ink.mean() <= 0.5
    assert (x[ink].sum((1, 2, 3)).min() >= x[~ink].sum((1, 2, 3)).max())
    with pytest.raises(ConfigError, match="no attribute column 'Smiling'.*--attributes"):
        dataset_attribute(x, "Smiling")
    csv = tmp_path / "attrs.csv"
    csv.write_text("Smiling,Male\n" + "".join(f"{i % 2},{'yes' if i % 3 == 0 else 'no'}\n" for i in range(6)))
    assert read_attribute_file(csv, "Male", 6).tolist() == [i % 3 == 0 for i in range(6)]
    with pytest.raises(DataError, match="no column named 'Young'.*Smiling, Male"):
        read_attribute_file(csv, "Young", 6)
    with pytest.raises(DataError, match="6 values.*10 examples"):
        read_attribute_file(csv, "Smiling", 10)
    assert as_boolean(np.array([-1, 1, 1]), "celeba").tolist() == [False, True, True]
    with pytest.raises(DataError, match="not boolean"):
        as_boolean(np.array([0.5, 1.0]), "x")
    with pytest.raises(ConfigError, match="label 12 is out of range"):
        label_vector(np.zeros((3, 2)), np.array([0, 1, 2]), 12)


def test_decoded_output_is_a_figure_or_an_array_by_suffix(model, tmp_path):
    images = torch.rand(2, 3, *model.event_shape)  # rows x steps, as a traversal decodes them
    fig = decoded_output(images, model.event_shape, ".PNG", 3, "a title", ["r0", "r1"], ["a", "b", "c"])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["r0", "r1"]
    with Image.open(write_output(fig, tmp_path / "g.png")) as image:
        assert image.size[0] > 200
    array = decoded_output(images, model.event_shape, ".npy", 3, "a title")
    assert array.shape == (2, 3, *model.event_shape)  # the leading dimensions are kept
    assert np.allclose(np.load(write_output(array, tmp_path / "g.npy")), images.numpy())
    with pytest.raises(DataError, match=".png"):
        decoded_output(images, model.event_shape, ".gif", 3, "t")
    with pytest.raises(DataError, match="not images"):
        decoded_figure(torch.rand(4, 5), (5,), 2, "a table")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npy", "g.png"]


def test_umap_says_once_that_its_first_use_compiles(monkeypatch, caplog):
    import logging
    import types

    from vaekit.analysis import projection

    class FakeUMAP:  # umap-learn's interface, without its half-minute compile
        def __init__(self, n_components, **options):
            self.n_components = n_components

        def fit_transform(self, z):
            return np.zeros((len(z), self.n_components))

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    monkeypatch.setattr(projection, "_umap_ran", [])
    with caplog.at_level(logging.WARNING, logger="vaekit.analysis.projection"):
        for _ in range(2):
            projection._umap(np.random.default_rng(0).normal(size=(20, 3)), 2, 0, None, 5)
    assert [r.getMessage() for r in caplog.records].count(
        "UMAP: compiling its numerical code on first use in this process (up to half a minute) ...") == 1


def test_active_units_are_counted_one_way_everywhere(trained_run):
    """`latent embed`, traversals and the explorer mark as collapsed exactly what `vaekit eval` does not count
    as an active unit, on the same examples."""
    from vaekit.analysis import encode_dataset
    from vaekit.evaluate import evaluate

    run = vaekit.load_run(trained_run)
    x = vaekit.load_data("digits").split("test").x
    emb = encode_dataset(run.model, x)
    result = evaluate(run.model, x, iw_samples=2)
    assert int(emb.active().sum()) == result.active_units
    assert (emb.collapsed() == ~emb.active()).all()


def test_a_umap_that_cannot_load_is_a_one_line_config_error(monkeypatch):
    """umap-learn 0.5.0 with a newer numba fails while compiling at import (a TypeError): a ConfigError saying
    so, never an internal error (the explorer answered 500)."""
    import builtins

    from vaekit.analysis.projection import require_backend
    from vaekit.errors import ConfigError

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "umap":
            raise TypeError("Invalid store of i64 to i32 in <numba RangeModel>")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "umap", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(ConfigError, match="umap-learn is installed but cannot be loaded here .TypeError"):
        require_backend("umap")
