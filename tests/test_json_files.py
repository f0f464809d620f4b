"""Every JSON file vaekit reads gives a one-line error for any bytes: config files, a run's config.json, an
anomaly run's detector.json and standardizer.json, a text run's vocab.json."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_text_config

import vaekit
from vaekit.cli import main

HOSTILE = {
    "a list": b"[1, 2]",
    "a string": b'"x"',
    "null": b"null",
    "not JSON": b"{not json",
    "empty": b"",
    "binary": b"\xff\xfe\x00\x01",
    "deep arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "wrong types": b'{"model": [1], "data": 3, "train": "x", "params": 1, "words": {}, "mean": "a"}',
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("json-runs")
    assert main(["train", "--data", "digits", "--epochs", "1", "--no-progress", "--set", "model.network.hidden=[16]",
                 "--out", str(root / "digits")]) == 0
    table = root / "table.csv"
    np.savetxt(table, np.random.default_rng(0).normal(size=(60, 3)), delimiter=",", header="a,b,c", comments="")
    assert main(["anomaly", "fit", str(table), "--out", str(root / "anomaly"), "--epochs", "2"]) == 0
    config = tiny_text_config()
    vaekit.fit(config, root / "text")
    return {"digits": root / "digits", "anomaly": root / "anomaly", "text": root / "text", "table": table}


CASES = [("digits", "config.json", ["sample", "RUN", "--out", "OUT/s.png"]),
         ("anomaly", "detector.json", ["anomaly", "score", "RUN", "TABLE", "--out", "OUT/s.csv"]),
         ("anomaly", "standardizer.json", ["anomaly", "score", "RUN", "TABLE", "--out", "OUT/s.csv"]),
         ("text", "vocab.json", ["sample", "RUN", "--out", "OUT/s.txt"])]


@pytest.mark.parametrize("content", list(HOSTILE))
@pytest.mark.parametrize("run_name, file, command", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_damaged_json_file_of_a_run_is_one_line_naming_it(runs, tmp_path, capsys, run_name, file, command,
                                                            content):
    run = Path(shutil.copytree(runs[run_name], tmp_path / "run"))
    (run / file).write_bytes(HOSTILE[content])
    out = tmp_path / "out"
    out.mkdir()
    argv = [str(run) if a == "RUN" else str(runs["table"]) if a == "TABLE" else a.replace("OUT", str(out))
            for a in command]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and file in err, err
    assert not any(out.iterdir())  # nothing written


@pytest.mark.parametrize("content", list(HOSTILE))
def test_a_damaged_json_config_file_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "config.json"
    path.write_bytes(HOSTILE[content])
    code = main(["train", "--config", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    if code == 0:  # "{}"-like content that is a valid (empty) config cannot occur here: every case is hostile
        pytest.fail(f"accepted {content}")
    assert code == 2 and len(err.splitlines()) == 1 and "config.json" in err, err
    assert not (tmp_path / "run").exists()
