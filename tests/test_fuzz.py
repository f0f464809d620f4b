"""A generated fuzz run over the whole command line and the explorer's HTTP API.

(a) CLI: every command and subcommand of `vaekit.cli.build_parser()` (found by walking the parser, so a new
    command or flag is fuzzed without a change here) starts from a valid small invocation; cases replace one or
    two of its arguments with hostile values (empty, blank, negative, huge, non-finite, unicode digits, 10,000
    characters, missing paths, folders, files of the wrong type, random bytes, empty files, a PNG named .npy, an
    unwritable output location, an existing --out without --force). Each case runs `vaekit.cli.main` in-process
    and must: raise nothing, exit 0, 1, 2 or 130; on a non-zero exit print exactly one line on stderr and leave no
    new or changed file behind; never change a file it did not own (inputs, run folders, an existing --out
    without --force); on exit 0 write non-empty outputs that read back (PNG, .npy/.npz, JSON, CSV).
(b) HTTP: every endpoint and method of `vaekit.serve.create_app` with hostile bodies, paths and query strings:
    never a 5xx, every error a JSON object with an "error" field, every 200 PNG decodes.

The cases are generated from fixed pools and `random.Random(0)`: the same cases every run.
Set VAEKIT_FUZZ_COUNTS=FILE to get the number of cases and their outcomes per command / endpoint as JSON.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_text_config

import vaekit
from vaekit.cli import build_parser, main

COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    target = os.environ.get("VAEKIT_FUZZ_COUNTS")
    if target:
        totals = collections.Counter()
        for group, counter in COUNTS.items():
            totals[group.split(":")[0]] += sum(counter.values())
        report = {"totals": dict(totals), **{k: dict(v) for k, v in sorted(COUNTS.items())}}
        Path(target).write_text(json.dumps(report, indent=2) + "\n")


# --- the commands, from the parser ----------------------------------------------------------------------------

def _commands(parser: argparse.ArgumentParser, words=()) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every leaf command of the parser: its words -> its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {tuple(words): parser}
    found = {}
    for name, child in subs[0].choices.items():
        found.update(_commands(child, (*words, name)))
    return found


COMMANDS = _commands(build_parser())

# Placeholders of the base invocations, replaced by the fixtures' paths.
# QRUN and SRV: copies of RUN of the test's own (`eval --samples` and `quality` cache a classifier in the run
# folder, `serve` its projections).
RUN, TAB, TXT, SRV, QRUN = "<run>", "<table-run>", "<text-run>", "<serve-run>", "<scratch-run>"
IN = "<inputs>/"  # a file of the inputs folder

# Valid, small, fast invocations: positionals first, then options (option -> value; None: a flag).
BASES: dict[tuple[str, ...], list[tuple[str, str | None]]] = {
    ("train",): [("--data", "digits"), ("--epochs", "1"), ("--latent-dim", "2"), ("--batch-size", "128"),
                 ("--set", "model.network.hidden=[8]"), ("--no-progress", None), ("--out", "out")],
    ("eval",): [("run", QRUN), ("--out", "out.json"), ("--iw-samples", "2"), ("--limit", "20")],
    ("sample",): [("run", RUN), ("--out", "out.npy"), ("-n", "2")],
    ("reconstruct",): [("run", RUN), ("--out", "out.png"), ("-n", "2")],
    ("ls",): [],
    ("anomaly", "fit"): [("data", IN + "table.csv"), ("--label-column", "label"), ("--out", "out"),
                         ("--epochs", "1"), ("--latent-dim", "2")],
    ("anomaly", "score"): [("run", TAB), ("data", IN + "table.csv"), ("--label-column", "label"),
                           ("--out", "out.csv")],
    ("anomaly", "eval"): [("run", TAB), ("data", IN + "table.csv"), ("--label-column", "label"),
                          ("--out", "out.json")],
    ("anomaly", "map"): [("run", RUN), ("data", "digits"), ("-n", "2"), ("--out", "out.png")],
    ("anomaly", "surfaces"): [("--out", "out"), ("--n-train", "16"), ("--n-test", "4"), ("--size", "8"),
                              ("--epochs", "1")],
    ("compress",): [("run", RUN), ("input", IN + "images.npy"), ("--out", "out.vkz")],
    ("decompress",): [("run", RUN), ("input", IN + "images.vkz"), ("--out", "out.npy")],
    ("disentangle",): [("run", RUN), ("--out", "out.json"), ("--n", "20"), ("--no-progress", None)],
    ("export",): [("run", RUN), ("--format", "torchscript"), ("--out", "out")],
    ("impute",): [("source", IN + "holes.csv"), ("--out", "out.csv"), ("--epochs", "1"), ("--samples", "2")],
    ("latent", "embed"): [("run", RUN), ("--out", "out.npz"), ("--max-points", "50")],
    ("latent", "plot"): [("run", RUN), ("--out", "out.png"), ("--max-points", "50"), ("--method", "pca")],
    ("latent", "traverse"): [("run", RUN), ("--out", "out.png"), ("--max-points", "50"), ("--steps", "3")],
    ("latent", "interpolate"): [("run", RUN), ("--out", "out.png"), ("--steps", "3")],
    ("latent", "cluster"): [("run", RUN), ("--out", "out.json"), ("--max-points", "50"), ("--k", "3"),
                            ("--methods", "kmeans"), ("--no-baselines", None)],
    ("latent", "arithmetic"): [("run", RUN), ("--out", "out.png"), ("--target", "1"), ("--strength", "0,1")],
    ("quality",): [("run", QRUN), ("--out", "out.json"), ("-n", "20"), ("--threads", "1")],
    ("serve",): [("run", SRV), ("--max-points", "50")],
    ("report",): [("run", RUN), ("--out", "out.html"), ("--max-points", "50")],
    ("style",): [("run", RUN), ("--out", "out.png"), ("--style", "0"), ("--content", "1")],
}
# Second bases over other run kinds (the same parser): image impute, text sampling and reconstruction.
EXTRA_BASES = {
    ("impute", "image"): [("source", RUN), ("--out", "out.png"), ("-n", "2"), ("--samples", "2")],
    ("sample", "text"): [("run", TXT), ("--out", "out.txt"), ("-n", "2"), ("--strategy", "beam"),
                         ("--beam-size", "2")],
    ("reconstruct", "text"): [("run", TXT), ("--out", "out.txt"), ("--text", "a small dog"),
                              ("--strategy", "greedy")],
}

GENERIC = ["", " ", "-1", "0", "1e400", "nan", "inf", "-inf", str(2**63), "１２", "x" * 10_000]
# Files of the inputs folder (made by the `inputs` fixture), the hostile ones.
HOSTILE_FILES = [IN + name for name in (
    "missing.npy", "missing", "a-folder", "folder.npy", "text.npy", "text.npz", "text.png", "text.vkz", "text.json",
    "text.toml", "text.csv", "random.npy", "random.npz", "random.png", "random.vkz", "random.csv", "random.json",
    "random.toml", "empty.npy", "empty.png", "empty.vkz", "empty.csv", "empty.json", "empty.toml", "png.npy",
    "npy.png", "wrong-shape.npy", "words.csv", "nan.csv", "one-row.csv", "list.json", "bad-keys.toml",
    "tiny.png", "images.npy", "images.vkz")]
UNWRITABLE = "/proc/vaekit-fuzz/out.npy"  # no one, root included, can create files there
OUT_VALUES = ["taken.npy", "taken.png", "taken.json", "taken.csv", "a-folder-out", "taken.npy/x.npy",
              UNWRITABLE, "out.unknown", "out", "out.npy", "out.png", "out.json", "out.csv", "out.html", "out.npz"]


def _kind(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "flag"
    if action.choices:
        return "choice"
    if action.type is not None:
        return "number"
    return "text"


def _slots(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def _key(action: argparse.Action) -> str:
    return action.option_strings[-1] if action.option_strings else action.dest


def _pool(action: argparse.Action) -> list[str]:
    kind = _kind(action)
    if _key(action) == "--out":
        return GENERIC + HOSTILE_FILES[:12] + OUT_VALUES
    if kind == "number":
        return GENERIC + ["1.5", "0x10", "1,x"] + HOSTILE_FILES[:2]
    if kind == "choice":
        return GENERIC[:4] + ["GREEDY", "x" * 10_000]
    return GENERIC + HOSTILE_FILES


CORE = ["", " ", "-1", "nan", "１２", "x" * 10_000]  # tried for every argument; the rest of its pool is sampled
SINGLES = 80  # cases of one replaced argument per command (about)
PAIRS = 10  # cases of two


def _cases(words: tuple[str, ...], base: list) -> list[list[tuple[str, str | None]]]:
    """The base; each argument replaced by the core values and a seeded sample of the rest of its pool; flags
    toggled; seeded pairs of replacements."""
    parser = COMMANDS[words]
    slots = [a for a in _slots(parser) if _key(a) != "--verbose"]
    rng = random.Random(" ".join(words))  # fixed per command: the same cases every run
    values = [a for a in slots if _kind(a) != "flag"]
    per_slot = max(3, SINGLES // max(1, len(values)) - len(CORE))
    cases = [list(base)]
    for action in slots:
        key = _key(action)
        if _kind(action) == "flag":
            present = any(k == key for k, _ in base)
            cases.append([(k, v) for k, v in base if k != key] if present else [*base, (key, None)])
            continue
        pool = [v for v in _pool(action) if v not in CORE]
        for value in CORE + rng.sample(pool, min(per_slot, len(pool))):
            cases.append(_replace(base, key, value))
    for _ in range(PAIRS if len(values) >= 2 else 0):
        first, second = rng.sample(values, 2)
        case = _replace(base, _key(first), rng.choice(_pool(first)))
        cases.append(_replace(case, _key(second), rng.choice(_pool(second))))
    return cases


def _replace(base, key: str, value: str) -> list:
    case = [(k, v) for k, v in base]
    for i, (k, _) in enumerate(case):
        if k == key:
            case[i] = (k, value)
            return case
    return [*case, (key, value)]


def _argv(words, case, parser, paths: dict[str, str]) -> list[str]:
    def sub(value: str) -> str:
        for placeholder, path in paths.items():
            if value.startswith(placeholder):
                return path + value[len(placeholder):]
        return value

    positionals = [a.dest for a in _slots(parser) if not a.option_strings]
    argv = list(words)
    for dest in positionals:
        argv += [sub(v) for k, v in case if k == dest]
    for key, value in case:
        if key in positionals:
            continue
        if value is None:
            argv.append(key)
        elif key.startswith("--"):
            argv.append(f"{key}={sub(value)}")
        else:
            argv += [key, sub(value)]
    return argv


# --- fixtures: the runs and the input files -------------------------------------------------------------------

def _table(path: Path, rows: int, holes: bool = False) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4))
    lines = ["a,b,c,d,label"]
    for i, row in enumerate(x):
        cells = [f"{v:.4f}" for v in row]
        if holes and i % 3 == 0:
            cells[i % 4] = ""
        lines.append(",".join(cells + ([str(int(i % 10 == 0))] if not holes else ["0"])))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, trained_run) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-inputs")
    from PIL import Image

    rng = np.random.default_rng(0)
    _table(folder / "table.csv", 80)
    _table(folder / "holes.csv", 40, holes=True)
    (folder / "a-folder").mkdir()
    (folder / "folder.npy").mkdir()
    for ext in ("npy", "npz", "png", "vkz", "json", "toml", "csv"):
        (folder / f"text.{ext}").write_text("just some text, not what the name says\n")
        (folder / f"random.{ext}").write_bytes(rng.bytes(300))
        (folder / f"empty.{ext}").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG")
    (folder / "png.npy").write_bytes(buffer.getvalue())
    (folder / "tiny.png").write_bytes(buffer.getvalue())
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 3)))
    (folder / "npy.png").write_bytes(buffer.getvalue())
    np.save(folder / "wrong-shape.npy", np.ones((3, 5), np.float32))
    (folder / "words.csv").write_text("a,b\nx,y\nz,w\n")
    (folder / "nan.csv").write_text("a,b\nnan,inf\n-inf,1e400\n")
    (folder / "one-row.csv").write_text("a,b\n1,2\n")
    (folder / "list.json").write_text("[1, 2, 3]\n")
    (folder / "bad-keys.toml").write_text("[train]\nepochs = 'many'\nbogus = 1\n")
    images = (vaekit.load_data("digits").split("test").x[:3] > 0.5).float().reshape(3, -1).numpy()
    np.save(folder / "images.npy", images)
    code = main(["compress", str(trained_run), str(folder / "images.npy"), "--out", str(folder / "images.vkz")])
    assert code == 0
    return folder


@pytest.fixture(scope="module")
def table_run(inputs, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fuzz-runs") / "table"
    assert main(["anomaly", "fit", str(inputs / "table.csv"), "--label-column", "label", "--out", str(run),
                 "--epochs", "2", "--latent-dim", "2"]) == 0
    return run


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    config = tiny_text_config()
    run = tmp_path_factory.mktemp("fuzz-runs") / "text"
    vaekit.fit(config, run)
    return run


@pytest.fixture
def no_server(monkeypatch):
    """`vaekit serve` builds its explorer and returns at once instead of serving."""
    uvicorn = pytest.importorskip("uvicorn")
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)


# --- checks ---------------------------------------------------------------------------------------------------

def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _readable(path: Path) -> str | None:
    """Why the output file at `path` is not a good one (None: it is)."""
    if path.stat().st_size == 0:
        return "empty file"
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as image:
                image.load()
        elif suffix == ".npy":
            np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                [archive[k] for k in archive.files]
        elif suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".csv" and len(path.read_text().splitlines()) < 2:
            return "CSV without rows"
    except Exception as error:  # noqa: BLE001 (any failure to read back is the finding)
        return f"unreadable: {type(error).__name__}: {error}"
    return None


PROGRESS = re.compile(r"^(epoch \d+/\d+ |[\w .-]+:\s+\d+%\|)")  # progress bars and per-epoch lines


def _error_lines(err: str) -> list[str]:
    """The lines of stderr that are not progress (a bar redrawn with carriage returns, or an epoch line)."""
    lines = (line.split("\r")[-1].strip() for line in err.splitlines())
    return [line for line in lines if line and not PROGRESS.match(line)]


# Training keeps a run folder stopped during training (what --resume continues from): a diverged first epoch
# leaves its config and log behind, documented in docs/reliability.md.
KEEPS_RUN_FOLDER = re.compile(r"during epoch \d+")

PRE_EXISTING = {"taken.npy": b"\x93NUMPY not really", "taken.png": b"not a png", "taken.json": b'{"mine": 1}',
                "taken.csv": b"mine\n1\n"}


def _run_cases(label: str, words, cases, paths: dict[str, str], inputs: Path, runs: list[Path], workdir: Path,
               capsys, monkeypatch) -> list[str]:
    """Runs each case in a fresh working folder; returns what went wrong. `inputs` and `runs` are read only: files
    there never change (a new file in `inputs` is an --out there, kept only by a case that exits 0)."""
    parser = COMMANDS[words]
    failures = []
    inputs_before, names = _digest(inputs), set(os.listdir(inputs))
    runs_before = {p: _listing(p) for p in runs}
    for number, case in enumerate(cases):
        argv = _argv(words, case, parser, paths)
        shown = [a if len(a) < 60 else a[:20] + f"...({len(a)} chars)" for a in argv]
        cwd = workdir / f"case{number}"
        cwd.mkdir()
        for name, data in PRE_EXISTING.items():
            (cwd / name).write_bytes(data)
        (cwd / "a-folder-out").mkdir()
        before = _digest(cwd)
        monkeypatch.chdir(cwd)
        try:
            code = main(argv)
        except BaseException as error:  # noqa: BLE001 (a traceback is the finding)
            code = None
            failures.append(f"{shown}: raised {type(error).__name__}: {str(error)[:200]}")
            COUNTS[label]["traceback"] += 1
        _, err = capsys.readouterr()
        if code is None:
            pass
        elif code not in (0, 1, 2, 130):
            failures.append(f"{shown}: exit status {code}")
            COUNTS[label]["bad exit status"] += 1
        elif code != 0:
            after = _digest(cwd)
            lines = _error_lines(err)
            if words == ("train",) and lines and KEEPS_RUN_FOLDER.search(lines[0]):
                after = {k: v for k, v in after.items() if k in before}
            if len(lines) != 1 or "Traceback" in err:
                failures.append(f"{shown}: exit {code} with stderr {err[-300:]!r}")
                COUNTS[label]["bad error message"] += 1
            elif after != before:
                changed = sorted(set(after.items()) ^ set(before.items()))
                failures.append(f"{shown}: exit {code} ({lines[0][:150]}) but files changed: {changed[:5]}")
                COUNTS[label]["files left behind"] += 1
            else:
                COUNTS[label]["clean one-line error"] += 1
        else:
            after = _digest(cwd)
            changed = [name for name, digest in after.items() if before.get(name) != digest]
            problems = [f"{name}: {why}" for name in changed if (why := _readable(cwd / name))]
            problems += [f"{name} overwritten without --force" for name in PRE_EXISTING
                         if name in changed and "--force" not in argv]
            if not changed and words[0] not in ("ls", "serve") and not any(a.startswith("--out=/") for a in argv):
                problems.append("exit 0 without an output file")
            if problems:
                failures.append(f"{shown}: exit 0 but {problems[:3]}")
                COUNTS[label]["wrong output"] += 1
            else:
                COUNTS[label]["correct result"] += 1
        shutil.rmtree(cwd, ignore_errors=True)
        now = _digest(inputs)
        for name in sorted(set(now) - set(inputs_before)):  # an --out into the inputs folder (a new name)
            why = "left behind by a failed case" if code != 0 else _readable(inputs / name)
            if why:
                failures.append(f"{shown}: {name}: {why}")
            (inputs / name).unlink()
        for name in sorted(set(inputs_before) - set(now)) + [n for n in now if n in inputs_before
                                                              and now[n] != inputs_before[n]]:
            failures.append(f"{shown}: changed or removed the input {name}")
        for name in set(os.listdir(inputs)) - names:  # new folders too
            shutil.rmtree(inputs / name) if (inputs / name).is_dir() else (inputs / name).unlink()
        inputs_before = _digest(inputs)
        for path in runs:
            if _listing(path) != runs_before[path]:
                failures.append(f"{shown}: changed {path}")
                runs_before[path] = _listing(path)
    return failures


ALL_BASES = {**{(w, ""): b for w, b in BASES.items()}, **{(w[:-1], w[-1]): b for w, b in EXTRA_BASES.items()}}


def test_every_command_has_a_base():
    assert sorted(BASES) == sorted(COMMANDS), "a new command: give it a small valid invocation in BASES"


@pytest.mark.parametrize("entry", sorted(ALL_BASES), ids=[" ".join(w) + (f" ({v})" if v else "")
                                                            for w, v in sorted(ALL_BASES)])
def test_cli_fuzz(entry, trained_run, inputs, table_run, text_run, tmp_path, capsys, monkeypatch, no_server):
    words, variant = entry
    label = "cli: " + " ".join(words) + (f" ({variant})" if variant else "")
    serve_run = Path(shutil.copytree(trained_run, tmp_path / "serve-run"))
    quality_run = Path(shutil.copytree(trained_run, tmp_path / "quality-run"))
    paths = {RUN: str(trained_run), TAB: str(table_run), TXT: str(text_run), SRV: str(serve_run),
             QRUN: str(quality_run), IN: str(inputs) + "/"}
    cases = _cases(words, ALL_BASES[entry])
    workdir = tmp_path / "work"
    workdir.mkdir()
    runs = [trained_run, table_run, text_run]
    failures = _run_cases(label, words, cases, paths, inputs, runs, workdir, capsys, monkeypatch)
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:20])


# --- (b) the explorer's HTTP API ------------------------------------------------------------------------------

# Valid bodies of every POST endpoint (Z: a latent code of the run's size), and hostile values of any field.
Z = "<z>"
POSTS = {
    "/api/decode": {"z": Z, "label": None},
    "/api/traverse": {"dim": 0, "z": Z, "steps": 3, "span": 2.0},
    "/api/interpolate": {"a": 0, "b": 1, "steps": 3, "method": "slerp"},
    "/api/sample": {"n": 2, "seed": 0},
    "/api/arithmetic": {"point": 0, "target": 1, "strength": 1.0, "steps": 2},
    "/api/text": {"text": "a small dog", "n_samples": 2, "n_nearest": 2, "seed": 0},
    "/api/text/interpolate": {"a": "a small dog", "b": "the big cat", "steps": 3, "method": "linear"},
}
OPTIONAL = {"/api/decode": ["label"], "/api/traverse": ["label"], "/api/interpolate": ["label"],
            "/api/sample": ["label"], "/api/arithmetic": ["label"], "/api/text": [], "/api/text/interpolate": []}
RAW = object()  # marks a value given as JSON text
HOSTILE_JSON = [None, True, False, "", " ", "x", "１２", "x" * 10_000, -1, 0, 1, 1.5, -0.0, 2**63, 2**64, 1e308,
                -1e308, [], {}, [None], ["a"], [[0]], [True], {"a": 1}, [0] * 5000, [1e308] * 4,
                (RAW, "NaN"), (RAW, "Infinity"), (RAW, "-Infinity"), (RAW, "1" + "0" * 400), (RAW, "1e400"),
                (RAW, "1" + "0" * 5000), (RAW, "[" * 500 + "]" * 500), (RAW, '{"a":' * 200 + "1" + "}" * 200)]
RAW_BODIES = [b"", b" ", b"not json", b"\xff\xfe\x00", b"[]", b"null", b"1", b'"x"', b"{", b'{"z": }',
              b"[" * 100_000, b'{"a": NaN}', "{\"\u00e9\": 1}".encode(), b'{"z": [0], "z": [1]}']
GETS = ["/", "/static/plotly.min.js", "/favicon.ico", "/static/index.html", "/static/../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd", "/api/info", "/api/projection", "/api/nothing", "/api/", "/api/point",
        "/api/image/input", "/%00", "/api/info/extra"]
POINTS = ["-1", "1e9", "abc", "0", "1", "99", "100", "299", "300", str(2**63), "nan", "inf", "１２", " ", "%00",
          "x" * 5000, "..%2F..", "0.5", "+1", "1_0", "0x1", "-0", "%20"]
IMAGE_KINDS = ["input", "reconstruction", "bogus", "", "%2e%2e"]
IMAGE_NAMES = ["0.png", "1.png", "-1.png", "1e9.png", "abc.png", "0", "0.jpg", "..%2F..%2Fetc.png", "１２.png",
               ".png", "x" * 5000 + ".png", str(2**63) + ".png", "nan.png"]
METHODS = ["pca", "tsne", "umap", "none", "auto", "", "PCA", "bogus", "x" * 10_000, "pca&method=tsne", "%00"]


def _json_text(body: dict) -> bytes:
    parts = []
    for key, value in body.items():
        text = value[1] if isinstance(value, tuple) and value and value[0] is RAW else json.dumps(value)
        parts.append(f"{json.dumps(key)}: {text}")
    return ("{" + ", ".join(parts) + "}").encode()


def _requests(latent_dim: int) -> list[tuple[str, str, bytes | None]]:
    """(method, path, body) of every request to try."""
    rng = random.Random(0)
    z = [0.0] * latent_dim
    requests = []
    for path, base in POSTS.items():
        base = {k: (z if v == Z else v) for k, v in base.items()}
        requests.append(("POST", path, _json_text(base)))
        for key in [*base, *OPTIONAL[path]]:
            for value in rng.sample(HOSTILE_JSON, 14):  # a seeded sample of the hostile values per field
                requests.append(("POST", path, _json_text({**base, key: value})))
            if key in base:
                requests.append(("POST", path, _json_text({k: v for k, v in base.items() if k != key})))
        requests.append(("POST", path, _json_text({**base, "unknown": 1})))
        for _ in range(10):  # two fields at once
            a, b = rng.sample(list(base), 2) if len(base) > 1 else (next(iter(base)),) * 2
            requests.append(("POST", path, _json_text({**base, a: rng.choice(HOSTILE_JSON),
                                                       b: rng.choice(HOSTILE_JSON)})))
        for raw in RAW_BODIES:
            requests.append(("POST", path, raw))
        filler = 64 * 1024 - len(_json_text({**base, "pad": ""}))  # the body at, and just over, the size limit
        requests.append(("POST", path, _json_text({**base, "pad": "x" * filler})))
        requests.append(("POST", path, _json_text({**base, "pad": "x" * (filler + 1)})))
        requests.append(("GET", path, None))
        requests.append(("PUT", path, b"{}"))
    for path in GETS:
        requests += [("GET", path, None), ("POST", path, b"{}"), ("DELETE", path, None)]
    requests += [("GET", f"/api/point/{p}", None) for p in POINTS]
    requests += [("GET", f"/api/image/{k}/{n}", None) for k in IMAGE_KINDS for n in IMAGE_NAMES]
    requests += [("GET", f"/api/projection?method={m}", None) for m in METHODS]
    requests += [("GET", "/api/projection?method=pca&method=tsne", None), ("GET", "/api/point/0?x=1", None)]
    return requests


@pytest.fixture(scope="module")
def explorer_clients(trained_run, text_run, tmp_path_factory):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from vaekit.serve import Explorer, create_app

    folder = tmp_path_factory.mktemp("fuzz-serve")
    image = Path(shutil.copytree(trained_run, folder / "image"))  # the explorer caches projections in the run
    text = Path(shutil.copytree(text_run, folder / "text"))
    return {"image": TestClient(create_app(Explorer(image, max_points=300)), raise_server_exceptions=False),
            "text": TestClient(create_app(Explorer(text, max_points=100)), raise_server_exceptions=False)}


@pytest.mark.parametrize("kind", ["image", "text"])
def test_http_fuzz(kind, explorer_clients):
    from PIL import Image

    client = explorer_clients[kind]
    label = f"http: {kind} run"
    latent_dim = client.get("/api/info").json()["latent_dim"]
    failures = []
    requests = _requests(latent_dim)
    for method, path, body in requests:
        shown = f"{method} {path[:80]} {body[:120]!r}" if body is not None else f"{method} {path[:80]}"
        headers = {"content-type": "application/json"} if body is not None else {}
        try:
            response = client.request(method, path, content=body, headers=headers)
        except Exception as error:  # noqa: BLE001 (the finding)
            failures.append(f"{shown}: raised {type(error).__name__}: {error}")
            COUNTS[label]["traceback"] += 1
            continue
        status, kind_of = response.status_code, response.headers.get("content-type", "")
        if status >= 500:
            failures.append(f"{shown}: {status} {response.text[:200]}")
            COUNTS[label]["HTTP 5xx"] += 1
        elif status >= 400:
            try:
                message = response.json()["error"]
                assert isinstance(message, str) and message
            except Exception:  # noqa: BLE001
                failures.append(f"{shown}: {status} without a JSON error: {response.text[:200]!r}")
                COUNTS[label]["error without JSON"] += 1
            else:
                COUNTS[label]["clean 4xx error"] += 1
        else:
            if kind_of.startswith("image/png"):
                try:
                    Image.open(io.BytesIO(response.content)).load()
                except Exception as error:  # noqa: BLE001
                    failures.append(f"{shown}: a PNG that does not decode: {error}")
                    COUNTS[label]["wrong output"] += 1
                    continue
            elif kind_of.startswith("application/json"):
                response.json()
            COUNTS[label]["correct result"] += 1
    assert len(requests) >= 250
    assert not failures, f"{len(failures)} of {len(requests)} requests failed:\n" + "\n".join(failures[:20])


# --- what the fuzz run found, one test each ---------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["sample", RUN, "--out", ""], ["eval", RUN, "--out", " "],
                                  ["anomaly", "surfaces", "--out", ""], ["impute", "t.csv", "--out", ""]])
def test_an_empty_out_is_refused_not_read_as_the_default(argv, trained_run, tmp_path, capsys, monkeypatch):
    """`--out ''` used to read as no --out: the output went to the default place (into the run folder)."""
    monkeypatch.chdir(tmp_path)
    assert main([str(trained_run) if a == RUN else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert "argument --out: must be a file or folder path" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("command", [["eval", RUN, "--iw-samples", "2", "--limit", "5"], ["quality", RUN, "-n", "4"],
                                     ["disentangle", RUN, "--n", "20"]])
@pytest.mark.parametrize("name", ["out.png", "out.npy", "out"])
def test_json_reports_refuse_another_file_type(command, name, trained_run, tmp_path, capsys, monkeypatch):
    """eval, quality and disentangle wrote their JSON report under any name (JSON text in out.png)."""
    monkeypatch.chdir(tmp_path)
    assert main([str(trained_run) if a == RUN else a for a in command] + ["--out", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "use .json" in err[-1], err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("content", ["npy", "text", "folder"])
def test_an_embedding_that_is_not_an_npz_archive_is_a_data_error(content, tmp_path):
    """A valid .npy given as --embedding raised TypeError (np.load returned an array, not an archive)."""
    from vaekit.analysis.latents import load_embedding
    from vaekit.errors import DataError

    path = tmp_path / "emb.npz"
    if content == "npy":
        np.save(tmp_path / "emb.npy", np.zeros((3, 2)))
        path = tmp_path / "emb.npy"
    elif content == "text":
        path.write_text("text")
    else:
        path.mkdir()
    with pytest.raises(DataError, match="embedding"):
        load_embedding(path)


def test_the_surface_demo_runs_with_a_test_set_too_small_for_every_defect_kind(tmp_path):
    """With --n-test 4 some defect kind had no image, and picking two of each for the figure raised IndexError."""
    from vaekit.apps.surfaces import run_surface_demo

    report = run_surface_demo(tmp_path / "s", n_train=16, n_test=4, size=8, epochs=1, progress=False)
    assert (tmp_path / "s" / "surfaces.png").stat().st_size > 0 and "image_roc_auc" in report
