"""`vaekit compress` / `vaekit decompress` on every input form (.npy, .npz, IDX, PNG folders), lossless and lossy,
and the image files reader and writer behind them (vaekit.apps.image_files)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from vaekit.apps.image_files import ImageSource, read_images, write_images
from vaekit.cli import main
from vaekit.data.mnist import read_idx

SIZE = 6
TRAIN = ["--epochs", "2", "--no-progress", "--set", "model.network.hidden=[16]", "--latent-dim", "2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs on 6x6 images: a Bernoulli model of binary images and an 8-bit (discretized-logistic) one,
    with the images they were trained on."""
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    binary = rng.integers(0, 2, (60, SIZE, SIZE)).astype(np.uint8)
    grey = rng.integers(0, 256, (60, SIZE, SIZE)).astype(np.uint8)  # uint8 0..255: loaded as [0, 1] grey levels
    np.save(root / "binary.npy", binary)
    np.save(root / "grey.npy", grey)
    assert main(["train", "--data", str(root / "binary.npy"), "--likelihood", "bernoulli", *TRAIN,
                 "--out", str(root / "bernoulli")]) == 0
    assert main(["train", "--data", str(root / "grey.npy"), "--likelihood", "discretized-logistic",
                 "--set", "model.likelihood.n_mix=1", *TRAIN, "--out", str(root / "8bit")]) == 0
    return {"bernoulli": (root / "bernoulli", binary), "8bit": (root / "8bit", grey)}


def _idx(x: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, x.ndim]) + struct.pack(f">{x.ndim}I", *x.shape) + x.astype(np.uint8).tobytes()


def _png_folder(folder, images, mode, names=None):
    folder.mkdir()
    names = names or [f"img{i:03d}.png" for i in range(len(images))]
    for name, image in zip(names, images):
        Image.fromarray(image.astype(bool) if mode == "1" else image.astype(np.uint8)).save(folder / name)
    return folder


def _round_trip(run, source, vkz, out, *flags):
    assert main(["compress", str(run), str(source), "--out", str(vkz), *flags]) == 0
    assert main(["decompress", str(run), str(vkz), "--out", str(out)]) == 0


def _one_line_error(capsys, argv, message):
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


# --- lossless, bit-exact in every form ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["npy", "npz", "idx", "idx.gz"])
def test_lossless_array_and_idx_round_trips_are_bit_exact(runs, tmp_path, form):
    run, x = runs["bernoulli"]
    if form == "npy":
        source, out = tmp_path / "x.npy", tmp_path / "y.npy"
        np.save(source, x)
    elif form == "npz":
        source, out = tmp_path / "x.npz", tmp_path / "y.npz"
        np.savez(source, x=x)
    else:
        source = tmp_path / ("x-idx3-ubyte.gz" if form == "idx.gz" else "x-idx3-ubyte")
        source.write_bytes(gzip.compress(_idx(x)) if form == "idx.gz" else _idx(x))
        out = tmp_path / "y-idx3-ubyte"
    _round_trip(run, source, tmp_path / "x.vkz", out)
    restored = np.load(out)["x"] if form == "npz" else read_idx(out) if form.startswith("idx") else np.load(out)
    assert restored.dtype == x.dtype and np.array_equal(restored, x)
    if form.startswith("idx"):
        assert out.read_bytes() == _idx(x)  # plain IDX, byte for byte


def test_an_idx_file_is_recognised_by_its_magic_whatever_its_name(runs, tmp_path):
    run, x = runs["bernoulli"]
    (tmp_path / "digits.bin").write_bytes(_idx(x))
    _round_trip(run, tmp_path / "digits.bin", tmp_path / "x.vkz", tmp_path / "y.idx")
    assert np.array_equal(read_idx(tmp_path / "y.idx"), x)


@pytest.mark.parametrize("model, mode", [("8bit", "L"), ("bernoulli", "1")])
def test_lossless_png_folder_round_trips_keep_pixels_and_mode(runs, tmp_path, model, mode):
    run, x = runs[model]
    source = _png_folder(tmp_path / "pngs", x[:20], mode)
    (source / "notes.txt").write_text("not an image")  # other files are left alone
    _round_trip(run, source, tmp_path / "x.vkz", tmp_path / "out")
    restored, info = read_images(tmp_path / "out")
    original, _ = read_images(source)
    assert info.form == "png-folder" and info.mode == mode and restored.dtype == original.dtype
    assert np.array_equal(restored, original) and np.array_equal(restored.astype(np.uint8), x[:20])
    assert info.names == tuple(f"img{i:03d}.png" for i in range(20))  # the .vkz keeps the file names
    for name in info.names[:3]:
        with Image.open(tmp_path / "out" / name) as im:
            assert im.mode == mode and im.size == (SIZE, SIZE)


def test_png_folder_to_npy_and_back(runs, tmp_path):
    """Forms mix: a PNG folder decompresses to .npy (bool for mode '1' images) and the .npy to PNGs again."""
    run, x = runs["bernoulli"]
    _round_trip(run, _png_folder(tmp_path / "pngs", x[:10], "1"), tmp_path / "x.vkz", tmp_path / "y.npy")
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == bool and np.array_equal(y, x[:10].astype(bool))
    _round_trip(run, tmp_path / "y.npy", tmp_path / "y.vkz", tmp_path / "again/")
    assert np.array_equal(read_images(tmp_path / "again")[0], y)


# --- lossy ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [["--rate", "40"], ["--step", "0.5"]])
def test_lossy_round_trips_keep_the_input_form_and_shape(runs, tmp_path, capsys, flags):
    run, x = runs["8bit"]
    source = _png_folder(tmp_path / "pngs", x[:15], "L")
    capsys.readouterr()
    assert main(["compress", str(run), str(source), "--out", str(tmp_path / "x.vkz"), "--lossy", *flags]) == 0
    summary = capsys.readouterr().out
    assert "bytes per image" in summary and "bits/value" in summary and len(summary.strip().splitlines()) == 1
    assert main(["decompress", str(run), str(tmp_path / "x.vkz"), "--out", str(tmp_path / "out")]) == 0
    restored, info = read_images(tmp_path / "out")
    assert info.mode == "L" and restored.shape == (15, SIZE, SIZE) and restored.dtype == np.uint8

    run, x = runs["bernoulli"]
    np.save(tmp_path / "b.npy", x.astype(np.float32))
    _round_trip(run, tmp_path / "b.npy", tmp_path / "b.vkz", tmp_path / "b_out.npy", "--lossy", *flags)
    restored = np.load(tmp_path / "b_out.npy")
    assert restored.shape == x.shape and restored.dtype == np.float32 and ((restored >= 0) & (restored <= 1)).all()
    # float reconstructions in [0, 1] written as grey PNGs
    assert main(["decompress", str(run), str(tmp_path / "b.vkz"), "--out", str(tmp_path / "b_png")]) == 0
    assert read_images(tmp_path / "b_png")[0].shape == x.shape


# --- bad input: one line on stderr, a non-zero exit, nothing written ----------------------------------------------


def test_bad_input_is_one_line_and_writes_nothing(runs, tmp_path, capsys):
    run, x = runs["bernoulli"]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "small.npy", x[:, :5, :5])
    _png_folder(tmp_path / "mixed", [x[0], x[1], np.zeros((SIZE + 1, SIZE), np.uint8)], "L")
    (tmp_path / "rgb").mkdir()
    Image.new("L", (SIZE, SIZE)).save(tmp_path / "rgb" / "a.png")
    Image.new("RGB", (SIZE, SIZE)).save(tmp_path / "rgb" / "b.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    assert main(["compress", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "x.vkz")]) == 0
    (tmp_path / "cut.vkz").write_bytes((tmp_path / "x.vkz").read_bytes()[:-8])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.png").write_bytes(b"mine")
    capsys.readouterr()
    before = _entries(tmp_path)
    z = str(tmp_path / "z.vkz")
    for argv, message in [
        (["compress", str(run), str(tmp_path / "small.npy"), "--out", z], "shape"),
        (["compress", str(run), str(tmp_path / "mixed"), "--out", z], "img002.png is 6x7"),
        (["compress", str(run), str(tmp_path / "rgb"), "--out", z], "b.png: PNG mode 'RGB' is not supported"),
        (["compress", str(run), str(tmp_path / "empty"), "--out", z], "no PNG images"),
        (["compress", str(run), str(tmp_path / "x.npy"), "--out", z, "--rate", "10"], "add --lossy"),
        (["compress", str(run), str(tmp_path / "x.npy"), "--out", z, "--lossy", "--rate", "9", "--step", "1"],
         "not both"),
        (["compress", str(run), str(tmp_path / "x.npy"), "--out", z, "--lossy", "--step", "50"], "[0.0001, 10]"),
        (["compress", str(run), str(tmp_path / "x.npy"), "--out", z, "--lossy", "--rate", "0"], "--rate"),
        (["compress", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "x.vkz")], "already exists"),
        (["compress", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "x.zip")], "use .vkz"),
        (["compress", str(run), str(tmp_path / "nope.npy"), "--out", z], "does not exist"),
        (["decompress", str(run), str(tmp_path / "cut.vkz"), "--out", str(tmp_path / "z.npy")], "truncated"),
        (["decompress", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "z.npy")], "magic"),
        (["decompress", str(run), str(tmp_path / "nope.vkz"), "--out", str(tmp_path / "z.npy")], "does not exist"),
        (["decompress", str(run), str(tmp_path / "x.vkz"), "--out", str(tmp_path / "x.npy")], "already exists"),
        (["decompress", str(run), str(tmp_path / "x.vkz"), "--out", str(tmp_path / "full")], "not empty"),
        (["decompress", str(run), str(tmp_path / "x.vkz"), "--out", str(tmp_path / "z.zip")], "unsupported output"),
    ]:
        _one_line_error(capsys, argv, message)
        assert _entries(tmp_path) == before, argv  # no output, no temporary file left behind
    assert (tmp_path / "full" / "keep.png").read_bytes() == b"mine"


def test_force_replaces_an_output_folder_of_pngs_only(runs, tmp_path, capsys):
    run, x = runs["bernoulli"]
    np.save(tmp_path / "x.npy", x[:4])
    assert main(["compress", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "x.vkz")]) == 0
    out = _png_folder(tmp_path / "out", x[:7], "L")
    assert main(["decompress", str(run), str(tmp_path / "x.vkz"), "--out", str(out), "--force"]) == 0
    assert _entries(out) == [f"{i:05d}.png" for i in range(4)]  # replaced whole: the 7 old images are gone
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    _one_line_error(capsys, ["decompress", str(run), str(tmp_path / "x.vkz"), "--out", str(out), "--force"],
                    "other things than PNG files")
    assert (out / "notes.txt").read_text() == "mine"


# --- the reader and writer ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_idx_files_keep_their_dtype(tmp_path, dtype):
    x = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == "uint8":
        x = x.astype(np.uint8) + 5
    write_images(tmp_path / "x.idx", x)
    back, source = read_images(tmp_path / "x.idx")
    assert source == ImageSource("idx") and back.dtype == x.dtype and np.array_equal(back, x)
    write_images(tmp_path / "x.idx.gz", x)
    assert np.array_equal(read_idx(tmp_path / "x.idx.gz"), x)


def test_writer_refuses_what_a_form_cannot_hold_and_leaves_nothing(tmp_path):
    from vaekit.errors import DataError

    for path, x, message in [
        (tmp_path / "x-idx3-ubyte", np.zeros((2, 3), np.int64), "IDX files hold"),
        (tmp_path / "pngs", np.zeros((2, 3, 4, 4), np.uint8), "grey images"),
        (tmp_path / "pngs", np.full((2, 4, 4), 1.5, np.float32), "[0, 1]"),
        (tmp_path / "pngs", np.full((2, 4, 4), 300, np.int32), "0..255"),
    ]:
        with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
            write_images(path, x)
        assert list(tmp_path.iterdir()) == []


def test_png_names_and_mode_come_back_with_the_source(tmp_path):
    x = np.zeros((3, 4, 5), np.uint8)
    x[:, 1, 2] = 1  # grey levels 0 and 1 only: kept grey ("L") when the source says so
    _png_folder(tmp_path / "a", x, "L", names=["b.png", "c.png", "a.png"])
    images, source = read_images(tmp_path / "a")
    assert source.names == ("a.png", "b.png", "c.png") and source.mode == "L" and images.shape == (3, 4, 5)
    write_images(tmp_path / "b", images, source)
    assert read_images(tmp_path / "b")[1] == source
    write_images(tmp_path / "c/", images)  # without a source: numbered, and 0/1 values are binary images
    assert read_images(tmp_path / "c")[1] == ImageSource("png-folder", ("00000.png", "00001.png", "00002.png"), "1")


@pytest.mark.parametrize("flags", [(), ("--lossy",)])
def test_black_and_white_pngs_stored_as_0_255_code_with_a_binary_model(runs, tmp_path, flags):
    """Ordinary black-and-white PNGs (grey levels 0 and 255) for a Bernoulli model: coded as 0/1, decoded as
    0/255 again (bit-exact when lossless), with their names."""
    run, x = runs["bernoulli"]
    source = _png_folder(tmp_path / "pngs", 255 * x[:12], "L", names=[f"scan-{i}.png" for i in range(12)])
    _round_trip(run, source, tmp_path / "x.vkz", tmp_path / "out", *flags)
    restored, info = read_images(tmp_path / "out")
    assert info.names == tuple(sorted(f"scan-{i}.png" for i in range(12))) and restored.dtype == np.uint8
    assert set(np.unique(restored)) <= {0, 255}
    if not flags:
        assert np.array_equal(restored, read_images(source)[0])


def test_flattened_rows_code_with_a_model_of_images(runs, tmp_path):
    """(N, 36) rows, as binarized MNIST ships them, for a model of (1, 6, 6) images: the same values."""
    run, x = runs["bernoulli"]
    rows = x[:10].reshape(10, -1)
    np.save(tmp_path / "rows.npy", rows)
    _round_trip(run, tmp_path / "rows.npy", tmp_path / "x.vkz", tmp_path / "out.npy")
    assert np.array_equal(np.load(tmp_path / "out.npy"), rows)


def test_file_names_in_a_crafted_header_cannot_leave_the_output_folder():
    from vaekit.apps.vkz import CompressionError, names_of

    import base64
    import zlib

    def header(names):
        return {"count": len(names), "names": base64.b64encode(zlib.compress("\n".join(names).encode())).decode()}

    assert names_of(header(["a.png", "b.png"])) == ["a.png", "b.png"]
    for bad in (["../a.png", "b.png"], ["/tmp/a.png", "b.png"], [".hidden.png", "b.png"], ["a.png", "a.png"],
                ["a.txt", "b.png"]):
        with pytest.raises(CompressionError, match="file names"):
            names_of(header(bad))
    with pytest.raises(CompressionError, match="damaged"):
        names_of({"count": 1, "names": "not base64!"})
