"""`vaekit latent ...` end to end on a tiny trained run: files written and readable, bad input -> one line."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

import vaekit
from vaekit.analysis import load_embedding
from vaekit.cli import main

from conftest import read_scatter_html, tiny_config

FAST = ["--threads", "1"]  # the test machine is shared: one thread avoids OpenMP oversubscription


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["latent", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_png(path, min_side: int = 150) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert min(image.size) >= min_side


def test_defaults_write_into_the_run_folder(writable_run, digits, capsys):
    code, out, _ = run_cli(capsys, "embed", str(writable_run))
    assert code == 0 and "wrote" in out
    emb = load_embedding(writable_run / "latent" / "latents.npz")
    test = digits.split("test")
    assert emb.mean.shape == (len(test), 4) and np.array_equal(emb.labels, test.y.numpy())
    for action, name in (("plot", "plot_pca_2d.png"), ("traverse", "traversal.png"),
                         ("interpolate", "interpolation.png")):
        code, out, err = run_cli(capsys, action, str(writable_run), *FAST)
        assert code == 0, err
        assert_png(writable_run / "latent" / name)


def test_plot_html_3d_and_subsampling(trained_run, tmp_path, capsys):
    out = tmp_path / "z.html"
    code, text, err = run_cli(capsys, "plot", str(trained_run), "--dims", "3", "--max-points", "100",
                              "--out", str(out), *FAST)
    assert code == 0, err
    data = read_scatter_html(out)
    assert data["dims"] == 3 and len(data["index"]) == 100 and len(set(data["index"])) == 100
    assert len(data["coords"][2]) == 100 and min(data["label"]) >= 0
    code, _, err = run_cli(capsys, "plot", str(trained_run), "--method", "tsne", "--max-points", "120",
                           "--out", str(tmp_path / "t.png"), *FAST)
    assert code == 0, err
    assert_png(tmp_path / "t.png")


def test_cluster_writes_scores_and_confusion(trained_run, tmp_path, capsys):
    out = tmp_path / "c.json"
    code, text, err = run_cli(capsys, "cluster", str(trained_run), "--k", "10", "--methods", "kmeans",
                              "--out", str(out), *FAST)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert [r["features"].split(" (")[0] for r in report["results"]] == ["latent means", "raw inputs",
                                                                          "PCA of inputs"]
    assert all(0 <= r["accuracy"] <= 1 and 0 <= r["nmi"] <= 1 for r in report["results"])
    assert "latent means" in text and "NMI" in text
    latent, *baselines = report["results"]
    best = max(baselines, key=lambda r: r["nmi"])
    verdict = "better than" if latent["nmi"] > best["nmi"] else "worse than" if latent["nmi"] < best["nmi"] else "as well"
    assert f"kmeans: the latent means cluster {verdict} {best['features']}" in text
    assert_png(tmp_path / "c_kmeans.png")


def test_arithmetic_vector_and_analogy(trained_run, tmp_path, capsys):
    out = tmp_path / "a.png"
    code, _, err = run_cli(capsys, "arithmetic", str(trained_run), "--target", "1", "--source", "0",
                           "--strength", "0,1,2", "--out", str(out), *FAST)
    assert code == 0, err
    assert_png(out)
    numbers = json.loads((tmp_path / "a.json").read_text())
    assert len(numbers["vector"]) == 4 and numbers["strengths"] == [0.0, 1.0, 2.0] and numbers["n_target"] > 0
    code, _, err = run_cli(capsys, "arithmetic", str(trained_run), "--attribute", "ink", "--apply", "0,1",
                           "--out", str(tmp_path / "ink.npy"), *FAST)
    assert code == 0, err
    assert np.load(tmp_path / "ink.npy").shape == (2, 6, 1, 8, 8)  # data + 5 strengths per example
    code, _, err = run_cli(capsys, "arithmetic", str(trained_run), "--analogy", "0,1,2",
                           "--out", str(tmp_path / "an.png"), *FAST)
    assert code == 0, err
    assert_png(tmp_path / "an.png", min_side=100)


def test_interpolate_from_files_and_grid(trained_run, digits, tmp_path, capsys):
    x = digits.split("test").x
    png = tmp_path / "a.png"
    Image.fromarray((x[3, 0].numpy() * 255).round().astype(np.uint8)).save(png)
    np.save(tmp_path / "b.npy", x[4].numpy())
    code, _, err = run_cli(capsys, "interpolate", str(trained_run), "--a", str(png), "--b", str(tmp_path / "b.npy"),
                           "--method", "slerp", "--steps", "5", "--out", str(tmp_path / "i.npy"), *FAST)
    assert code == 0, err
    strip = np.load(tmp_path / "i.npy")
    assert strip.shape == (1, 7, 1, 8, 8)  # one method: a | 5 decoded steps | b
    assert np.allclose(strip[0, 0], np.round(x[3].numpy() * 255) / 255, atol=1e-6)
    code, _, err = run_cli(capsys, "interpolate", str(trained_run), "--grid", "--grid-dims", "0,2",
                           "--grid-size", "6", "--out", str(tmp_path / "g.png"), *FAST)
    assert code == 0, err
    assert_png(tmp_path / "g.png")


@pytest.fixture(scope="module")
def one_d_run(tmp_path_factory, digits):
    run_dir = tmp_path_factory.mktemp("runs") / "one_d"
    config = tiny_config(epochs=1)
    config.model.latent_dim = 1
    vaekit.fit(config, run_dir, data=digits)
    return run_dir


@pytest.mark.parametrize("argv, message", [
    (["traverse", "{run}", "--dims", "0,9"], "latent dimension 9 is out of range"),
    (["interpolate", "{run}", "--a", "5000"], "index 5000 is out of range"),
    (["arithmetic", "{run}", "--attribute", "Smiling"], "no attribute column 'Smiling'"),
    (["arithmetic", "{run}", "--target", "42"], "label 42 is out of range"),
    (["plot", "{one_d}", "--dims", "3"], "3D plot needs at least 3 latent dimensions"),
    (["plot", "{run}", "--method", "umap"], "pip install umap-learn"),
    (["cluster", "{run}", "--methods", "dbscan"], "unknown clustering method 'dbscan'"),
    (["plot", "{run}", "--out", "{tmp}/z.svg"], "use a file ending in .png or .html"),
])
def test_bad_input_is_one_line(trained_run, one_d_run, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setitem(sys.modules, "umap", None)  # umap-learn "not installed"
    argv = [a.format(run=trained_run, one_d=one_d_run, tmp=tmp_path) for a in argv]
    code, out, err = run_cli(capsys, *argv, *FAST)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_out_is_never_overwritten_without_force(trained_run, tmp_path, capsys):
    out = tmp_path / "z.npz"
    out.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "embed", str(trained_run), "--out", str(out))
    assert code == 2 and "--force" in err and out.read_bytes() == b"precious"
    code, _, err = run_cli(capsys, "embed", str(trained_run), "--out", str(out), "--force", "--samples", "2")
    assert code == 0, err
    assert load_embedding(out).samples.shape[0] == 2


def test_clustering_verdicts_say_when_the_latent_code_is_worse_than_a_baseline():
    from types import SimpleNamespace as NS

    from vaekit.commands.latent import clustering_verdicts

    def result(features, method, nmi):
        return NS(features=features, method=method, scores=NS(nmi=nmi))

    results = [result("latent means", "kmeans", 0.5), result("raw inputs", "kmeans", 0.7),
               result("PCA of inputs (8 dims)", "kmeans", 0.6), result("latent means", "gmm", 0.8),
               result("raw inputs", "gmm", 0.4)]
    assert clustering_verdicts(results) == [
        "  kmeans: the latent means cluster worse than raw inputs (NMI 0.500 against 0.700)",
        "  gmm: the latent means cluster better than raw inputs (NMI 0.800 against 0.400)"]
    assert clustering_verdicts(results[:1]) == []  # no baseline: nothing to say


def test_arithmetic_notes_examples_outside_the_source_group(trained_run, tmp_path, capsys):
    import vaekit

    labels = vaekit.load_data("digits").split("test").y
    inside = int(np.flatnonzero(labels.numpy() == 0)[0])
    outside = int(np.flatnonzero(labels.numpy() != 0)[0])
    code, _, err = run_cli(capsys, "arithmetic", str(trained_run), "--target", "1", "--source", "0", "--apply",
                           f"{inside},{outside}", "--out", str(tmp_path / "a.png"), *FAST)
    assert code == 0, err
    assert f"note: #{outside} is not in the source group" in err and f"#{inside}," not in err
