"""The explorer's API (`vaekit serve`): every endpoint, and bad requests answered with a 4xx and a message."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("starlette", reason="vaekit serve needs the serve extra (starlette)")
from conftest import tiny_config  # noqa: E402
from PIL import Image  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import vaekit  # noqa: E402
from vaekit.serve import Explorer, create_app  # noqa: E402
from vaekit.serve.explorer import CACHE_FOLDER  # noqa: E402


def _train(path: Path, **model) -> Path:
    config = tiny_config(epochs=3)
    for key, value in model.items():
        setattr(config.model, key, value)
    vaekit.fit(config, path)
    return path


@pytest.fixture(scope="module")
def image_run(trained_run, tmp_path_factory) -> Path:
    """A copy of the shared tiny run: the explorer caches its projections in the run folder."""
    return Path(shutil.copytree(trained_run, tmp_path_factory.mktemp("serve") / "digits"))


@pytest.fixture(scope="module")
def client(image_run) -> TestClient:
    return TestClient(create_app(Explorer(image_run, max_points=300)))


@pytest.fixture(scope="module")
def conditional_client(tmp_path_factory) -> TestClient:
    run = _train(tmp_path_factory.mktemp("serve") / "conditional", conditional=True)
    return TestClient(create_app(Explorer(run, max_points=200)))


@pytest.fixture(scope="module")
def text_client(tmp_path_factory) -> TestClient:
    config = vaekit.build_run_config(None, ["data.name=toy-sentences", "data.max_len=12", "train.epochs=2",
                                            "train.progress=false", "model.latent_dim=4", "model.network=rnn",
                                            "model.network.hidden=32", "model.network.embed_dim=16",
                                            "model.likelihood=sentence", "model.likelihood.hidden=32",
                                            "model.likelihood.embed_dim=16"])
    run = tmp_path_factory.mktemp("serve") / "text"
    vaekit.fit(config, run)
    return TestClient(create_app(Explorer(run, max_points=100)))


def _png(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def _refused(response, status: int = 400, match: str = "") -> str:
    assert response.status_code == status, (response.status_code, response.text)
    message = response.json()["error"]
    assert message and "\n" not in message and re.search(match, message), message
    return message


# --- the page and what it shows first ---------------------------------------------------------------------------


def test_the_page_and_its_scripts_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "vaekit explorer" in page.text and "/static/app.js" in page.text
    assert "function start" in client.get("/static/app.js").text
    plotly = client.get("/static/plotly.min.js")
    assert plotly.status_code == 200 and "plotly" in plotly.text[:2000].lower()  # the plotly package's own file
    assert client.get("/static/nothing.js").status_code == 404


def test_info_lists_the_dimensions_by_kl_with_collapsed_ones_marked(client):
    info = client.get("/api/info").json()
    assert info["latent_dim"] == 4 and info["points"] == 300 and info["text"] is False
    assert info["classes"] == [str(i) for i in range(10)] and info["labels"] is True
    kls = [d["kl"] for d in info["dims"]]
    assert sorted(d["dim"] for d in info["dims"]) == [0, 1, 2, 3] and kls == sorted(kls, reverse=True)
    # collapsed: not an active unit over the explorer's points, Cov_x(E_q[z_d]) <= 0.01, as `vaekit eval` counts
    codes = np.array([client.get(f"/api/point/{i}").json()["z"] for i in range(info["points"])])
    active = codes.var(0, ddof=1) > 0.01
    assert all(d["collapsed"] == (not active[d["dim"]]) for d in info["dims"])


def test_projections_are_computed_once_and_cached_in_the_run_folder(image_run, client, monkeypatch):
    first = client.get("/api/projection", params={"method": "pca"}).json()
    assert len(first["x"]) == len(first["y"]) == len(first["labels"]) == 300
    assert first["axes"][0].startswith("PC1")
    cached = list((image_run / CACHE_FOLDER).glob("*-pca.json"))
    assert len(cached) == 1
    # a new explorer of the same run reads the file instead of projecting again
    import vaekit.analysis.projection as projection

    monkeypatch.setattr(projection, "project", lambda *a, **k: pytest.fail("projected again"))
    again = TestClient(create_app(Explorer(image_run, max_points=300))).get("/api/projection?method=pca").json()
    assert again["x"] == first["x"]


def test_tsne_projection_and_a_bad_method(client):
    tsne = client.get("/api/projection?method=tsne").json()
    assert tsne["method"] == "tsne" and len(tsne["x"]) == 300
    _refused(client.get("/api/projection?method=magic"), match="method must be one of pca, tsne, umap")


# --- points, images, decoding -----------------------------------------------------------------------------------


def test_a_point_its_input_and_its_reconstruction(client):
    point = client.get("/api/point/5").json()
    assert point["point"] == 5 and len(point["z"]) == 4 and isinstance(point["label"], int)
    shown, recon = _png(client.get("/api/image/input/5.png")), _png(client.get("/api/image/reconstruction/5.png"))
    assert shown.shape == recon.shape and shown.shape[0] >= 112  # 8 x 8 digits, enlarged
    assert not np.array_equal(shown, _png(client.get("/api/image/input/6.png")))


@pytest.mark.parametrize("path, status", [
    ("/api/point/300", 404), ("/api/point/-1", 404), ("/api/point/abc", 404), ("/api/point/1.5", 404),
    ("/api/image/input/999.png", 404), ("/api/image/input/5.jpg", 404), ("/api/image/other/5.png", 404),
])
def test_unknown_points_and_images_are_404_with_a_message(client, path, status):
    _refused(client.get(path), status)


def test_decoding_a_code_changes_with_the_code(client):
    zero = _png(client.post("/api/decode", json={"z": [0, 0, 0, 0]}))
    moved = _png(client.post("/api/decode", json={"z": [2.5, -2, 1, 0]}))
    assert zero.shape == moved.shape and not np.array_equal(zero, moved)
    assert np.array_equal(zero, _png(client.post("/api/decode", json={"z": [0, 0, 0, 0]})))  # deterministic


@pytest.mark.parametrize("body, match", [
    ({"z": [0, 0, 0]}, "list of 4 numbers"), ({"z": "0000"}, "list of 4 numbers"), ({}, "missing field 'z'"),
    ({"z": [0, 0, 0, "x"]}, "must be a number"), ({"z": [0, 0, 0, 1e9]}, "between -100 and 100"),
    ({"z": [0, 0, 0, True]}, "must be a number"), ({"z": [0, 0, 0, 0], "colour": 1}, "unknown field 'colour'"),
    ({"z": [0, 0, 0, 0], "label": 3}, "not conditional"),
])
def test_bad_decode_requests_are_400(client, body, match):
    _refused(client.post("/api/decode", json=body), 400, match)


def test_bodies_that_are_not_json_objects_are_refused(client):
    _refused(client.post("/api/decode", content=b"{not json"), 400, "must be JSON")
    _refused(client.post("/api/decode", content=b"[1, 2]"), 400, "JSON object")
    _refused(client.post("/api/decode", content=b'{"z": [NaN, 0, 0, 0]}'), 400, "finite")
    _refused(client.post("/api/decode", content=b'{"z": [' + b"0," * 40_000 + b"0]}"), 413, "at most")
    assert client.get("/api/decode").status_code == 405
    deep = b'{"z": ' + b"[" * 1000 + b"]" * 1000 + b"}"  # 2 KB, deeper than the JSON parser recurses
    _refused(client.post("/api/decode", content=deep), 400, "nests too deeply")


def test_deep_bodies_are_refused_whatever_the_recursion_limit(client):
    # torch.compile raises the interpreter's recursion limit for the rest of the process; the depth check must not
    # depend on it (the parser would then read 1,000 levels and the error would be about z instead)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)
    try:
        deep = b'{"z": ' + b"[" * 1000 + b"]" * 1000 + b"}"
        _refused(client.post("/api/decode", content=deep), 400, "more than 32 levels")
        _refused(client.post("/api/decode", content=b'{"z": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}'), 400, "list")
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("path, body, match", [
    ("/api/sample", {"n": "5"}, "n must be a whole number .a JSON number, not a string"),
    ("/api/sample", {"n": 4, "seed": "1"}, "seed must be a whole number"),
    ("/api/traverse", {"dim": 0, "z": [0, 0, 0, 0], "span": "2"}, "span must be a number"),
    ("/api/interpolate", {"a": "0", "b": 1}, "point must be a whole number"),
])
def test_fields_of_the_wrong_json_type_are_refused_not_converted(client, path, body, match):
    _refused(client.post(path, json=body), 404 if "point" in match else 400, match)


def test_a_label_for_sentences_is_refused_like_a_label_for_an_unconditional_image_run(client, text_client):
    _refused(client.post("/api/sample", json={"n": 2, "label": 1}), 400, "not conditional")
    _refused(text_client.post("/api/sample", json={"n": 2, "label": 1}), 400, "takes no label")


# --- strips -------------------------------------------------------------------------------------------------


def test_traversal_interpolation_samples_and_arithmetic_are_strips(client):
    one = _png(client.post("/api/decode", json={"z": [0, 0, 0, 0]}))
    traversal = _png(client.post("/api/traverse", json={"dim": 1, "z": [0, 0, 0, 0], "steps": 5, "span": 2}))
    assert traversal.shape[0] == one.shape[0] and traversal.shape[1] > 4 * one.shape[1]
    lerp = _png(client.post("/api/interpolate", json={"a": 0, "b": 7, "steps": 6}))
    slerp = _png(client.post("/api/interpolate", json={"a": 0, "b": 7, "steps": 6, "method": "slerp"}))
    assert lerp.shape == slerp.shape and lerp.shape[1] > 5 * one.shape[1]
    samples = _png(client.post("/api/sample", json={"n": 3, "seed": 4}))
    assert np.array_equal(samples, _png(client.post("/api/sample", json={"n": 3, "seed": 4})))  # seeded
    assert not np.array_equal(samples, _png(client.post("/api/sample", json={"n": 3, "seed": 5})))
    shifted = _png(client.post("/api/arithmetic", json={"point": 3, "target": 1, "strength": 2, "steps": 4}))
    assert shifted.shape[1] > 3 * one.shape[1]


@pytest.mark.parametrize("path, body, match", [
    ("/api/traverse", {"dim": 4, "z": [0, 0, 0, 0]}, "dim must be between 0 and 3"),
    ("/api/traverse", {"dim": 0, "z": [0, 0, 0, 0], "steps": 1000}, "steps must be between 2 and 32"),
    ("/api/traverse", {"dim": 0, "z": [0, 0, 0, 0], "span": -1}, "span must be"),
    ("/api/traverse", {"dim": 0.5, "z": [0, 0, 0, 0]}, "whole number"),
    ("/api/interpolate", {"a": 0, "b": 300}, "point must be between"),
    ("/api/interpolate", {"a": 0, "b": 1, "method": "cubic"}, "method must be one of linear, slerp"),
    ("/api/sample", {"n": 0}, "n must be between 1 and 64"),
    ("/api/sample", {"n": 2, "seed": -3}, "seed must be"),
    ("/api/arithmetic", {"point": 0, "target": 10}, "target must be between 0 and 9"),
    ("/api/arithmetic", {"point": 0, "target": 1, "strength": float("inf")}, "finite"),
    ("/api/text", {"text": "hello"}, "not a text run"),
])
def test_bad_strip_requests_are_4xx(client, path, body, match):
    status = 404 if "point must" in match else 400
    _refused(client.post(path, content=json.dumps(body).encode()), status, match)


def test_several_tabs_at_once(client):
    # The page's requests from several tabs arrive together; every one is answered.
    results = []

    def tab(k: int) -> None:
        for i in range(5):
            results.append(client.post("/api/decode", json={"z": [k / 4, i / 5, 0, 0]}).status_code)

    threads = [threading.Thread(target=tab, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 20


def test_a_conditional_run_decodes_by_class(conditional_client):
    info = conditional_client.get("/api/info").json()
    assert info["conditional"] is True
    three = _png(conditional_client.post("/api/decode", json={"z": [0, 0, 0, 0], "label": 3}))
    seven = _png(conditional_client.post("/api/decode", json={"z": [0, 0, 0, 0], "label": 7}))
    assert not np.array_equal(three, seven)
    _refused(conditional_client.post("/api/decode", json={"z": [0, 0, 0, 0], "label": 10}), 400, "label must be")
    by_class = _png(conditional_client.post("/api/sample", json={"n": 4, "label": 2}))
    assert by_class.shape[0] == three.shape[0]


def test_a_tabular_run_shows_each_example_as_a_row_of_cells(tmp_path):
    np.save(tmp_path / "table.npy", np.random.default_rng(0).normal(size=(300, 12)).astype(np.float32))
    config = vaekit.build_run_config(None, [f"data.name={tmp_path / 'table.npy'}", "train.epochs=2",
                                            "train.progress=false", "model.latent_dim=3"])
    vaekit.fit(config, tmp_path / "run")
    client = TestClient(create_app(Explorer(tmp_path / "run")))
    row = _png(client.get("/api/image/input/0.png"))
    assert row.shape[0] == 40 and row.shape[1] >= 224
    assert _png(client.post("/api/decode", json={"z": [0, 0, 0]})).shape == row.shape
    _refused(client.post("/api/arithmetic", json={"point": 0, "target": 0}), 400, "no labels")


# --- text runs ----------------------------------------------------------------------------------------------


def test_a_text_run_explores_sentences(text_client):
    info = text_client.get("/api/info").json()
    assert info["text"] is True
    projection = text_client.get("/api/projection?method=pca").json()
    assert len(projection["text"]) == len(projection["x"]) and all(isinstance(s, str) for s in projection["text"])
    point = text_client.get("/api/point/0").json()
    assert point["text"] and isinstance(point["reconstruction"], str)
    decoded = text_client.post("/api/decode", json={"z": [0, 0, 0, 0]}).json()
    assert isinstance(decoded["text"], str)
    out = text_client.post("/api/text", json={"text": point["text"], "n_samples": 3, "n_nearest": 4}).json()
    assert len(out["nearest"]) == 4 and len(out["samples"]) == 3 and len(out["z"]) == 4
    between = text_client.post("/api/text/interpolate", json={"a": point["text"], "b": "the cat sat", "steps": 4})
    assert len(between.json()["sentences"]) == 4
    traversal = text_client.post("/api/traverse", json={"dim": 0, "z": [0, 0, 0, 0], "steps": 3}).json()
    assert len(traversal["sentences"]) == 3
    _refused(text_client.get("/api/image/input/0.png"), 400, "text run")
    _refused(text_client.post("/api/text", json={"text": "   "}), 400, "non-empty")
    _refused(text_client.post("/api/text", json={"text": "x" * 3000}), 400, "at most 2000")
    _refused(text_client.post("/api/text", json={"text": 5}), 400, "non-empty text")


def test_typed_input_and_pictures_are_refused_by_runs_that_lack_them(client, text_client):
    _refused(client.post("/api/text/interpolate", json={"a": "a cat", "b": "a dog"}), 400, "^this run is not a text run$")
    _refused(client.post("/api/text", json={"text": "hello", "n_samples": -1}), 400, "not a text run")
    # the kind of run is refused before the point is looked up
    _refused(text_client.get("/api/image/reconstruction/9999.png"), 400, "decodes to sentences, not images")
    samples = text_client.post("/api/sample", json={"n": 2, "seed": 1}).json()["sentences"]
    assert samples == text_client.post("/api/sample", json={"n": 2, "seed": 1}).json()["sentences"]


def test_the_explorer_asks_the_modality_instead_of_testing_for_text():
    import ast

    import vaekit.serve.explorer as explorer

    tree = ast.parse(Path(explorer.__file__).read_text())
    modules = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} | \
        {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | \
        {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert "modality_of" in names and not [m for m in modules if m.startswith("text") or ".text" in m]
    # text appears only as the page's field ("text") and in file I/O (read_text, atomic_write_text)
    branching = [n for n in names if "sentence" in n.lower() or "is_text" in n or
                 ("text" in n.lower() and n not in ("text", "read_text", "atomic_write_text"))]
    assert not branching, branching


# --- the command -----------------------------------------------------------------------------------------------


def test_vaekit_serve_announces_its_address_answers_and_stops_on_ctrl_c(image_run):
    import urllib.error
    import urllib.request

    process = subprocess.Popen([sys.executable, "-m", "vaekit", "serve", str(image_run), "--max-points", "100"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + process.stderr.read()
        url = match.group(0)
        for _ in range(50):  # the socket listens before the line is printed; the app may take a moment
            try:
                with urllib.request.urlopen(url + "api/info", timeout=5) as response:
                    info = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        assert info["points"] == 100
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
    assert code == 0, process.stderr.read()


@pytest.mark.parametrize("args, match", [
    (["serve", "no/such/run"], "is not a run folder"),
    (["serve", "RUN", "--port", "70000"], "--port"),
    (["serve", "RUN", "--max-points", "0"], "--max-points"),
    (["serve", "RUN", "--host", "203.0.113.9"], "cannot listen on 203.0.113.9"),
    (["serve", "RUN", "--host", ""], "the host is empty"),  # never every interface by accident
    (["serve", "RUN", "--split", "bogus", "--port", "0"], "no 'bogus' split"),  # never another split instead
])
def test_bad_serve_arguments_are_one_line_errors(image_run, args, match):
    args = [str(image_run) if a == "RUN" else a for a in args]
    out = subprocess.run([sys.executable, "-m", "vaekit", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and match in out.stderr, out.stderr
