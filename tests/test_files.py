"""Files are whole or absent, and trustworthy.

(a) every output goes through a temporary file and a rename: a `vaekit sample` killed at random moments (some while
    its temporary file is being written) leaves its --out absent or complete, and the retry succeeds;
(b) a tampered weights file (bit flips, truncation, a dtype or shape changed in the header) is refused with a
    one-line CheckpointError naming the file, never loaded into NaN outputs; NaN / inf weights are refused;
(c) unsupported output types and bad inputs (text named .npz, a binary config, values beyond float32) get one-line
    errors from the CLI that name the real problem.

The number of cases each test ran is counted in `CASES` and printed at the end (`pytest -s tests/test_files.py`).
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

from vaekit import io
from vaekit.cli import main
from vaekit.core.outputs import check_output_suffix
from vaekit.errors import CheckpointError, DataError

TINY = ["--epochs", "1", "--no-progress", "--set", "model.network.hidden=[16]", "--latent-dim", "2"]
CASES: collections.Counter = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    if CASES:
        print("\ncases run by tests/test_files.py:")
        for name, count in sorted(CASES.items()):
            print(f"  {name:<48} {count}")
        print(f"  {'total':<48} {sum(CASES.values())}")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("files") / "run"
    assert main(["train", "--data", "digits", "--out", str(out), *TINY]) == 0
    return out


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- (a) atomic outputs -----------------------------------------------------------------------------------------


def test_atomic_output_renames_on_success_and_removes_on_error(tmp_path):
    target = tmp_path / "grid.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with io.atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".grid.png.") and tmp.name.endswith(".tmp.png")
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]
    with io.atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # a normal new file, not mkstemp's 0600
    CASES["atomic_output success/error"] += 2


def test_npy_writers_keep_the_name_given(tmp_path):
    from vaekit.figures.plots import save_array, save_npy

    for name in ("a.npy", "b.NPY", "c.dat"):
        save_npy(tmp_path / name, np.arange(6.0).reshape(2, 3))
        assert np.load(tmp_path / name).shape == (2, 3)
        CASES["save_npy names"] += 1
    save_array(np.ones((2, 2)), tmp_path / "d.CSV")
    assert np.loadtxt(tmp_path / "d.CSV", delimiter=",").shape == (2, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.NPY", "c.dat", "d.CSV"]  # nothing else


def _sample_cmd(run: Path, out: Path, n: int) -> list[str]:
    return [sys.executable, "-c", "import sys; from vaekit.cli import main; sys.exit(main(sys.argv[1:]))",
            "sample", str(run), "--out", str(out), "-n", str(n), "--draw"]


def test_killed_sample_leaves_no_truncated_file(run_dir, tmp_path):
    """SIGKILL `vaekit sample --out x.npy` at random moments: x.npy is absent or complete, and a retry works."""
    n = 100_000  # (100000, 64) float32: 26 MB, so the write takes a noticeable time
    rng = random.Random(1234)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    # Trials 0-1 kill at a random moment (mostly start-up or sampling); trials 2-4 once the temporary file has
    # appeared, i.e. while the array is being written, after a random few milliseconds.
    for trial in range(5):
        out = tmp_path / f"x{trial}.npy"
        proc = subprocess.Popen(_sample_cmd(run_dir, out, n), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if trial < 2:
            time.sleep(rng.uniform(0.3, 3.0))
        else:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if any(p.name.startswith(f".{out.name}.") for p in tmp_path.iterdir()):
                    break
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.005))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        strays = [p.name for p in tmp_path.iterdir() if p.name.startswith(f"x{trial}") and p != out]
        assert not strays  # nothing visible but x.npy itself
        leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.")]
        assert all(p.name.endswith(".tmp.npy") for p in leftovers)
        if out.exists():
            assert np.load(out).shape == (n, 64)  # complete and loadable
            outcome = "complete"
        else:
            outcome = "absent, temporary file left" if leftovers else "absent"
        # the retry (in this process: no second start-up) succeeds; a complete file needs --force, as any --out
        force = ["--force"] if out.exists() else []
        assert main(["sample", str(run_dir), "--out", str(out), "-n", "50", *force]) == 0
        assert np.load(out).shape == (50, 64)
        CASES[f"kill during sample --out x.npy: {outcome}"] += 1


# --- (b) tampered or non-finite weights ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(run_dir) -> tuple[bytes, dict[str, torch.Tensor]]:
    data = (run_dir / io.MODEL_FILE).read_bytes()
    return data, io.load_run(run_dir).model.state_dict()


def _load_tampered(run_dir: Path, data: bytes, original: dict[str, torch.Tensor]) -> str:
    """Loads `data` as a run's model.safetensors: 'refused' (one-line CheckpointError naming the file) or
    'identical' (loaded, and every weight equals the original); anything else fails the test."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(run_dir / io.CONFIG_FILE, folder / io.CONFIG_FILE)
        (folder / io.MODEL_FILE).write_bytes(data)
        try:
            run = io.load_run(folder)
        except CheckpointError as error:
            message = str(error)
            assert "\n" not in message and io.MODEL_FILE in message, message
            return "refused"
        loaded = run.model.state_dict()
        assert loaded.keys() == original.keys()
        for key, value in original.items():
            assert torch.equal(loaded[key], value), f"{key} loaded changed, without an error"
        assert torch.isfinite(run.model.sample(4)).all()
        return "identical"


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=st.data())
def test_bit_flips_are_refused(run_dir, weights, data):
    raw, original = weights
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 7)), min_size=1, max_size=3))
    tampered = bytearray(raw)
    for position, bit in flips:
        tampered[position] ^= 1 << bit
    if bytes(tampered) == raw:  # two flips of the same bit cancel out
        return
    outcome = _load_tampered(run_dir, bytes(tampered), original)
    CASES[f"bit flips: {outcome}"] += 1


@SETTINGS
@given(length=st.integers(0, 10**6))
def test_truncation_is_refused(run_dir, weights, length):
    raw, original = weights
    length %= len(raw)
    assert _load_tampered(run_dir, raw[:length], original) == "refused"
    CASES["truncation: refused"] += 1


def _header(raw: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _with_header(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


@SETTINGS
@given(data=st.data())
def test_header_tampering_is_refused(run_dir, weights, data):
    """A dtype or shape edited in the header (data offsets kept, so the file still parses) is detected."""
    raw, original = weights
    header, body = _header(raw)
    name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    entry = header[name]
    kind = data.draw(st.sampled_from(["dtype", "shape"]))
    if kind == "dtype":
        entry["dtype"] = data.draw(st.sampled_from(["I32", "U32", "F16", "BF16", "F64", "I8"]))
        if entry["dtype"] in ("F16", "BF16"):
            entry["shape"] = [*entry["shape"][:-1], entry["shape"][-1] * 2] if entry["shape"] else [2]
        elif entry["dtype"] == "F64" and entry["shape"] and entry["shape"][-1] % 2 == 0:
            entry["shape"] = [*entry["shape"][:-1], entry["shape"][-1] // 2]
        elif entry["dtype"] == "I8":
            entry["shape"] = [*entry["shape"][:-1], entry["shape"][-1] * 4] if entry["shape"] else [4]
    else:
        if len(entry["shape"]) < 2 or entry["shape"][0] == entry["shape"][1]:
            entry["shape"] = [int(np.prod(entry["shape"]))] + ([1] if len(entry["shape"]) < 2 else [])
        else:
            entry["shape"] = [entry["shape"][1], entry["shape"][0], *entry["shape"][2:]]
    assert _load_tampered(run_dir, _with_header(header, body), original) == "refused"
    CASES[f"header {kind} tamper: refused"] += 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_non_finite_weights_are_refused(run_dir, weights, data):
    """Weights with NaN / inf are refused on load, with a valid checksum (saved so) or without one (legacy)."""
    _, original = weights
    name = data.draw(st.sampled_from(sorted(k for k, v in original.items() if v.is_floating_point())))
    value = data.draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    tensors = {k: v.clone() for k, v in original.items()}
    flat = tensors[name].view(-1)
    flat[data.draw(st.integers(0, flat.numel() - 1))] = value
    legacy = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(run_dir / io.CONFIG_FILE, folder / io.CONFIG_FILE)
        if legacy:
            (folder / io.MODEL_FILE).write_bytes(st_save(tensors))
        else:
            io.save_tensors(folder / io.MODEL_FILE, tensors)
        with pytest.raises(CheckpointError, match="not finite") as caught:
            io.load_run(folder)
        assert "\n" not in str(caught.value) and name in str(caught.value)
    CASES[f"non-finite weights ({'no checksum' if legacy else 'checksummed'}): refused"] += 1


def test_runs_without_checksums_still_load(run_dir, weights, tmp_path):
    _, original = weights
    shutil.copy(run_dir / io.CONFIG_FILE, tmp_path / io.CONFIG_FILE)
    (tmp_path / io.MODEL_FILE).write_bytes(st_save({k: v.contiguous() for k, v in original.items()}))
    loaded = io.load_run(tmp_path).model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in original.items())
    metadata = io._split_safetensors((run_dir / io.MODEL_FILE).read_bytes())[0]["__metadata__"]
    assert io.CHECKSUM_KEY in metadata  # what a run writes now has one
    CASES["legacy weights (no checksum): load"] += 1


def test_training_checkpoint_is_verified(run_dir, tmp_path):
    """checkpoints/last.safetensors carries a checksum too; a flipped byte in its data is refused."""
    raw = bytearray((run_dir / io.LAST_CHECKPOINT).read_bytes())
    tensors, metadata = io.load_tensors(run_dir / io.LAST_CHECKPOINT)
    assert "trainer" in metadata and io.CHECKSUM_KEY not in metadata
    raw[-5] ^= 0x10
    (tmp_path / "last.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        io.load_tensors(tmp_path / "last.safetensors")
    CASES["checkpoint data flip: refused"] += 1


# --- (c) one-line errors from the CLI ---------------------------------------------------------------------------


@pytest.mark.parametrize("command, name", [
    ("sample", "x.txt"), ("sample", "x.jpg"), ("sample", "x"), ("sample", "x.npz"),
    ("reconstruct", "r.txt"), ("reconstruct", "r.pdf"),
])
def test_unsupported_output_types_are_refused_before_any_work(run_dir, tmp_path, capsys, command, name):
    code, _, err = cli(capsys, command, run_dir, "--out", tmp_path / name)
    line = one_line_error(err)
    assert code == 2 and "unsupported output type" in line and "use .png, .npy or .csv" in line
    assert not any(tmp_path.iterdir())  # nothing written, not even a temporary file
    CASES["unsupported --out type"] += 1


@pytest.mark.parametrize("name", ["x.NPY", "x.Png", "x.CSV"])
def test_output_suffixes_are_case_insensitive(run_dir, tmp_path, capsys, name):
    code, _, err = cli(capsys, "sample", run_dir, "--out", tmp_path / name, "-n", "4")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    if name.lower().endswith(".npy"):
        assert np.load(tmp_path / name).shape == (4, 64)
    CASES["upper-case --out suffix accepted"] += 1


def test_check_output_suffix_message():
    with pytest.raises(Exception, match=r"unsupported output type '\.txt' for --out; use \.png, \.npy or \.csv"):
        check_output_suffix("x.txt", (".png", ".npy", ".csv"))
    assert check_output_suffix("x.NPY", (".png", ".npy", ".csv")) == ".npy"
    CASES["check_output_suffix"] += 2


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "text.npz").write_text("x,y\n1,2\n")
    (tmp / "text.npy").write_text("1 2 3\n")
    (tmp / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (tmp / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)))
    rows = np.random.default_rng(0).random((40, 3))
    huge = rows.copy()
    huge[5, 1] = 1e300
    np.savetxt(tmp / "huge.csv", huge, delimiter=",")
    over = rows.copy()
    over[7, 2] = 1e39
    np.save(tmp / "over.npy", over)
    np.savez(tmp / "over.npz", x=over)
    train = ["train", "--out", str(tmp / "out"), *TINY]
    return [
        ([*train, "--data", str(tmp / "text.npz")], "is not a NumPy .npz archive"),
        ([*train, "--data", str(tmp / "text.npy")], "is not a NumPy .npy file"),
        ([*train, "--config", str(tmp / "binary.toml")], "not a UTF-8 text file"),
        ([*train, "--config", str(tmp / "binary.json")], "not a UTF-8 text file"),
        ([*train, "--data", str(tmp / "huge.csv")], "value 1e+300 at row 6, column 2 is outside the float32 range"),
        ([*train, "--data", str(tmp / "over.npy")], "value 1e+39 at row 7, column 2 is outside the float32 range"),
        ([*train, "--data", str(tmp / "over.npz")], "value 1e+39 at row 7, column 2 is outside the float32 range"),
    ]


def test_bad_inputs_get_one_line_errors_naming_the_problem(tmp_path, capsys):
    for argv, expected in _bad_inputs(tmp_path):
        code, _, err = cli(capsys, *argv)
        line = one_line_error(err)
        assert code == 2 and expected in line, (argv, line)
        assert "pickled" not in line and "non-finite" not in line
        assert not (tmp_path / "out").exists()
        CASES["bad input -> one-line error"] += 1


def test_values_that_fit_float32_are_accepted(tmp_path):
    from vaekit.data.files import load_path

    rows = np.random.default_rng(0).random((40, 3))
    rows[3, 0] = 1e38  # fits float32 (max 3.4e38)
    np.save(tmp_path / "fits.npy", rows)
    assert load_path(tmp_path / "fits.npy").split("train").x.isfinite().all()
    with pytest.raises(DataError, match="outside the float32 range"):
        np.save(tmp_path / "over.npy", np.where(rows == 1e38, -1e39, rows))
        load_path(tmp_path / "over.npy")
    CASES["float32 range boundary"] += 2


@pytest.mark.parametrize("damage", ["flip", "nan"])
def test_sample_refuses_damaged_weights(run_dir, tmp_path, capsys, damage):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    if damage == "flip":
        raw = bytearray((copy / io.MODEL_FILE).read_bytes())
        raw[-3] ^= 0x40
        (copy / io.MODEL_FILE).write_bytes(bytes(raw))
    else:
        tensors, _ = io.load_tensors(copy / io.MODEL_FILE)
        first = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
        tensors[first].view(-1)[0] = float("nan")
        io.save_tensors(copy / io.MODEL_FILE, tensors)
    code, _, err = cli(capsys, "sample", copy, "--out", tmp_path / "s.npy")
    line = one_line_error(err)
    assert code == 2 and io.MODEL_FILE in line
    assert ("checksum" if damage == "flip" else "not finite") in line
    assert not (tmp_path / "s.npy").exists()
    CASES["CLI sample with damaged weights"] += 1


@pytest.mark.parametrize("command", [["eval"], ["reconstruct"], ["latent", "embed"]])
def test_a_run_whose_data_file_changed_shape_is_a_one_line_error(tmp_path, capsys, command):
    """Trained on (200, 8, 8), then the file is replaced by (200, 9, 9): both shapes in one line, exit 2."""
    from vaekit.cli import main

    rng = np.random.default_rng(0)
    data = tmp_path / "mine.npy"
    np.save(data, rng.random((200, 8, 8)).astype(np.float32))
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--epochs", "1", "--no-progress", "--set", "model.network.hidden=[16]",
                 "--out", str(run)]) == 0
    np.save(data, rng.random((200, 9, 9)).astype(np.float32))
    capsys.readouterr()
    code = main([*command, str(run), "--out", str(tmp_path / "out.png" if command == ["reconstruct"] else
                                                  tmp_path / ("out.json" if command == ["eval"] else "out.npz"))])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "(1, 9, 9)" in err and "(1, 8, 8)" in err and "changed since training" in err


def _npy_with_header(header: bytes, version: int) -> bytes:
    """A .npy file whose header dict is `header` (any bytes), padded as NumPy pads it, and 64 bytes of data."""
    import struct

    padded = header + b" " * (64 - (10 + len(header) + 1) % 64) + b"\n"
    size = struct.pack("<H", len(padded)) if version == 1 else struct.pack("<I", len(padded))
    return b"\x93NUMPY" + bytes([version, 0]) + size + padded + b"\0" * 64


CRAFTED_NPY_HEADERS = {
    "unterminated": b"{'descr': '<f4', 'fortran_order': False, 'shape': (",
    "open string": b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), \"\"\"}",
    "deep nesting": b"{'descr': '<f4', 'fortran_order': False, 'shape': " + b"(" * 5000 + b")" * 5000 + b"}",
    "huge shape": b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 3)}",
    "long number": b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"9" * 5000 + b",)}",
    "negative shape": b"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3)}",
    "text shape": b"{'descr': '<f4', 'fortran_order': False, 'shape': 'abc'}",
    "bad dtype": b"{'descr': 'zz', 'fortran_order': False, 'shape': (2, 3)}",
    "object dtype": b"{'descr': '|O', 'fortran_order': False, 'shape': (2, 3)}",
    "not a dict": b"[1, 2, 3]",
    "a call": b"{'descr': '<f4', 'fortran_order': False, 'shape': __import__('os')}",
    "bad bytes": b"{'descr': '\xff\xfe', 'fortran_order': False, 'shape': (2, 3)}",
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("name", list(CRAFTED_NPY_HEADERS))
def test_a_crafted_npy_header_is_a_data_error(tmp_path, name, version, streamed):
    """NumPy parses the header as Python literals: every way that can fail is a DataError naming the file,
    whether the file is loaded or memory-mapped (streamed)."""
    from vaekit.data import load_data
    from vaekit.errors import DataError

    path = tmp_path / "crafted.npy"
    path.write_bytes(_npy_with_header(CRAFTED_NPY_HEADERS[name], version))
    with pytest.raises(DataError, match="crafted.npy"):
        load_data(str(path), **({"memory_limit": "1"} if streamed else {}))


@pytest.mark.parametrize("command", [["train", "--data", "BIG", "--epochs", "1"], ["impute", "BIG", "--out", "o.csv"],
                                     ["anomaly", "fit", "BIG", "--out", "r"]])
def test_a_csv_cell_over_the_csv_modules_limit_is_a_one_line_error(tmp_path, capsys, monkeypatch, command):
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    big = tmp_path / "big.csv"
    big.write_text("a,b\n1," + "9" * 200_000 + "\n2,3\n")
    assert main([str(big) if a == "BIG" else a for a in command]) == 2
    err = capsys.readouterr().err.strip()
    assert "big.csv: not a readable CSV file" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]  # nothing written


@pytest.mark.parametrize("content", ["h\n" + "9" * 200_000 + "\n", b"\xff\xfeh\n1\n"])
def test_an_unreadable_attribute_file_is_a_data_error(tmp_path, content):
    from vaekit.analysis.arithmetic import read_attribute_file
    from vaekit.errors import DataError

    path = tmp_path / "attributes.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match="attributes.csv"):
        read_attribute_file(path, None, 1)


def test_readers_of_single_examples_refuse_empty_and_oversized_files(trained_run, tmp_path, capsys):
    """An empty array given to inpainting, a 20000x20000 PNG given to `latent interpolate`: one-line errors."""
    from PIL import Image

    from vaekit.cli import main

    empty, big = tmp_path / "empty.npy", tmp_path / "big.png"
    np.save(empty, np.zeros((0, 8, 8), np.float32))
    Image.new("L", (20000, 20000)).save(big)  # a few KB on disk, 400 million pixels decoded
    for argv, match in ((["impute", str(trained_run), "--image", str(empty), "--out", str(tmp_path / "o.png")],
                         "no images to fill"),
                        (["latent", "interpolate", str(trained_run), "--a", str(big), "--b", "0",
                          "--out", str(tmp_path / "i.png")], "too large to read safely")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "empty.npy"]
