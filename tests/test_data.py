"""Data loaders: built-in digits, IDX/npz MNIST files, the user's npy/npz/csv/image folders, and their errors."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.data import DATASETS, DataBundle, data_root, load_data
from vaekit.data.mnist import read_idx
from vaekit.errors import DataError

SHARED_DATA = Path(os.environ.get("VAEKIT_DATA") or Path(__file__).parents[1].parent / "shared" / "data")


def needs_shared(name: str):
    folder = SHARED_DATA / name
    return pytest.mark.skipif(not folder.is_dir(), reason=f"real data folder {folder} is absent")


# ---- built-in -----------------------------------------------------------------------------------------------


def test_registered_names() -> None:
    assert {"digits", "mnist", "fashion-mnist", "binarized-mnist"} <= set(DATASETS.names())
    assert all(DATASETS.help(name) for name in DATASETS.names())


def test_digits_shapes_ranges_and_splits() -> None:
    b = load_data("digits")
    assert b.event_shape == (1, 8, 8) and b.is_image and b.value_kind == "unit"
    assert b.num_classes == 10 and b.class_names == tuple("0123456789")
    sizes = {k: len(s) for k, s in b.splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes == {"train": 1258, "valid": 180, "test": 359}
    for s in b.splits.values():
        assert s.x.dtype == torch.float32 and s.y.dtype == torch.int64
        assert 0.0 <= float(s.x.min()) and float(s.x.max()) <= 1.0
    assert float(b.splits["train"].x.max()) == 1.0


def test_digits_split_is_deterministic_by_seed() -> None:
    a, b, c = load_data("digits", seed=3), load_data("digits", seed=3), load_data("digits", seed=4)
    assert torch.equal(a.splits["test"].x, b.splits["test"].x)
    assert not torch.equal(a.splits["test"].x, c.splits["test"].x)
    labels = torch.cat([s.y for s in a.splits.values()])
    assert len(labels) == 1797 and torch.equal(torch.sort(labels).values, torch.sort(torch.cat(
        [s.y for s in c.splits.values()])).values)  # both seeds partition the same examples


def test_digits_binarize_and_limit() -> None:
    b = load_data("digits", binarize="dynamic", limit=50)
    assert b.dynamic_binarize and b.value_kind == "binary"
    assert all(len(s) == 50 for s in b.splits.values())
    assert set(b.splits["test"].x.unique().tolist()) == {0.0, 1.0}
    assert len(b.splits["train"].x.unique()) > 2  # grey levels, resampled per batch by the training loop
    again = load_data("digits", binarize="dynamic", limit=50)
    assert torch.equal(b.splits["valid"].x, again.splits["valid"].x)  # evaluation draws are fixed
    t = load_data("digits", binarize="threshold")
    assert not t.dynamic_binarize and set(t.splits["train"].x.unique().tolist()) == {0.0, 1.0}


def test_option_errors() -> None:
    with pytest.raises(DataError, match="binarize must be one of"):
        load_data("digits", binarize="sometimes")
    with pytest.raises(DataError, match="valid_fraction"):
        load_data("digits", valid_fraction=1.5)
    with pytest.raises(DataError, match="label_column=.*does not apply to data set 'digits'"):
        load_data("digits", label_column="y")
    with pytest.raises(DataError, match="binarize=.*does not apply to data set 'binarized-mnist'"):
        load_data("binarized-mnist", binarize="dynamic")


def test_unknown_name() -> None:
    with pytest.raises(DataError, match=r"unknown data set 'nope': not a registered name \(choose: .*digits.*\)"):
        load_data("nope")


# ---- IDX files ----------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, type_byte: int = 0x08) -> bytes:
    header = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_set(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True, size: int = 4) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def test_read_idx_plain_gz_and_wide_types(tmp_path: Path) -> None:
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(a))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(a)))
    assert np.array_equal(read_idx(tmp_path / "a"), a) and np.array_equal(read_idx(tmp_path / "a.gz"), a)
    b = np.array([-3, 1000, 7], dtype=np.int32)
    (tmp_path / "b").write_bytes(idx_bytes(b, 0x0C))
    assert read_idx(tmp_path / "b").tolist() == [-3, 1000, 7]


def test_idx_errors(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8))
    (tmp_path / "short").write_bytes(data[:-5])
    with pytest.raises(DataError, match="truncated IDX file"):
        read_idx(tmp_path / "short")
    (tmp_path / "short.gz").write_bytes(gzip.compress(data)[:-12])
    with pytest.raises(DataError, match="cannot decompress"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "bad").write_bytes(b"\x01\x02" + data[2:])
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_mnist_from_synthetic_idx_files(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist", gz=True)
    for root in (tmp_path, tmp_path / "mnist"):  # the parent, or the folder holding the files
        b = load_data("mnist", root)
        assert b.event_shape == (1, 4, 4) and b.value_kind == "unit" and b.num_classes == 10
        assert {k: len(s) for k, s in b.splits.items()} == {"train": 10, "valid": 2, "test": 5}
        assert b.splits["valid"].y.tolist() == [0, 1]  # the last training examples (labels 10, 11 mod 10)
        assert 0.0 <= float(b.splits["train"].x.min()) and float(b.splits["train"].x.max()) <= 1.0


def test_fashion_mnist_plain_files_and_binarize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(tmp_path / "fashion-mnist", gz=False)
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path))
    assert data_root() == tmp_path
    b = load_data("fashion-mnist", binarize="threshold")
    assert b.class_names[0] == "T-shirt/top" and b.class_names[9] == "Ankle boot"
    assert b.value_kind == "binary" and not b.dynamic_binarize
    assert set(b.splits["train"].x.unique().tolist()) <= {0.0, 1.0}


def test_missing_idx_folder_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAEKIT_DATA", raising=False)
    assert data_root() is None
    with pytest.raises(DataError, match="mnist: no data folder given .*VAEKIT_DATA"):
        load_data("mnist")
    with pytest.raises(DataError, match=r"mnist: expected train-images-idx3-ubyte\.gz in .*nowhere.*VAEKIT_DATA"):
        load_data("mnist", tmp_path / "nowhere")
    write_idx_set(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"expected t10k-labels-idx1-ubyte\.gz in .*--data-root"):
        load_data("mnist", tmp_path)
    with pytest.raises(DataError, match=r"binarized-mnist: expected binarized_mnist_static\.npz"):
        load_data("binarized-mnist", tmp_path)


# ---- the user's files ---------------------------------------------------------------------------------------


def test_npy_images_and_channels_last(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "grey.npy", rng.integers(0, 256, (30, 5, 6), dtype=np.uint8))
    b = load_data(str(tmp_path / "grey.npy"))
    assert b.event_shape == (1, 5, 6) and b.value_kind == "unit"
    assert {k: len(s) for k, s in b.splits.items()} == {"train": 21, "valid": 3, "test": 6}
    assert b.splits["train"].y is None and b.num_classes == 0
    np.save(tmp_path / "rgb.npy", rng.random((20, 5, 6, 3)).astype(np.float32))
    b = load_data(str(tmp_path / "rgb.npy"), valid_fraction=0.0, test_fraction=0.25, seed=1)
    assert b.event_shape == (3, 5, 6) and set(b.splits) == {"train", "test"}


def test_npy_tabular_kinds_and_standardisation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, (200, 4))
    x[:, 3] = 2.0  # constant column: std 0 -> 1
    np.save(tmp_path / "real.npy", x)
    b = load_data(str(tmp_path / "real.npy"))
    assert b.event_shape == (4,) and b.value_kind == "real" and not b.is_image
    train = b.splits["train"].x
    assert torch.allclose(train[:, :3].mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(train[:, :3].std(0, unbiased=False), torch.ones(3), atol=1e-4)
    assert b.standardizer.scale[3] == 1.0 and torch.all(train[:, 3] == 0)
    original = torch.from_numpy(x).float()
    restored = b.standardizer.inverse(torch.cat([s.x for s in b.splits.values()]))
    assert torch.allclose(torch.sort(restored[:, 0]).values, torch.sort(original[:, 0]).values, atol=1e-4)
    np.save(tmp_path / "bits.npy", rng.integers(0, 2, (40, 7)))
    assert load_data(str(tmp_path / "bits.npy")).value_kind == "binary"
    np.save(tmp_path / "unit.npy", rng.random((40, 7)))
    assert load_data(str(tmp_path / "unit.npy")).value_kind == "unit"
    with pytest.raises(DataError, match="binarize=.*applies to image data"):
        load_data(str(tmp_path / "unit.npy"), binarize="dynamic")


def test_npz_variants(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "xy.npz", X=rng.normal(size=(50, 3)), y=rng.integers(0, 3, 50))
    b = load_data(str(tmp_path / "xy.npz"), limit=4)
    assert b.num_classes == 3 and all(len(s) == 4 and s.y is not None for s in b.splits.values())
    np.savez(tmp_path / "only.npz", pixels=rng.random((20, 2)))
    assert load_data(str(tmp_path / "only.npz")).event_shape == (2,)
    np.savez(tmp_path / "own.npz", x_train=rng.random((30, 2)), y_train=np.array(["b", "a"] * 15),
             x_test=rng.random((8, 2)), y_test=np.array(["c"] * 8))
    b = load_data(str(tmp_path / "own.npz"))
    assert {k: len(s) for k, s in b.splits.items()} == {"train": 27, "valid": 3, "test": 8}
    assert b.class_names == ("a", "b", "c") and b.splits["test"].y.tolist() == [2] * 8
    with pytest.raises(DataError, match="test_fraction does not apply"):
        load_data(str(tmp_path / "own.npz"), test_fraction=0.3)
    np.savez(tmp_path / "many.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    with pytest.raises(DataError, match="expected an array named 'x' or 'X'.*it holds: a, b"):
        load_data(str(tmp_path / "many.npz"))


def test_non_finite_and_tiny_arrays(tmp_path: Path) -> None:
    x = np.ones((20, 3))
    x[4, 1] = np.nan
    x[7, 2] = np.inf
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(DataError, match=r"contains 2 non-finite values \(first at index \(4, 1\)\)"):
        load_data(str(tmp_path / "nan.npy"))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(DataError, match="is empty"):
        load_data(str(tmp_path / "empty.npy"))
    np.save(tmp_path / "two.npy", np.zeros((2, 3)))
    with pytest.raises(DataError, match="too few"):
        load_data(str(tmp_path / "two.npy"))
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(DataError, match="unsupported data file type '.md'"):
        load_data(str(tmp_path / "notes.md"))


def test_csv_header_and_label_column(tmp_path: Path) -> None:
    rows = "\n".join(f"{i * 0.5},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(30))
    (tmp_path / "pets.csv").write_text("size,legs,kind\n" + rows + "\n")
    b = load_data(str(tmp_path / "pets.csv"), label_column="kind")
    assert b.event_shape == (2,) and b.value_kind == "real" and b.class_names == ("cat", "dog")
    assert b.meta["feature_names"] == ("size", "legs") and b.num_classes == 2
    (tmp_path / "plain.csv").write_text("\n".join(f"{i % 4};0.5;{i % 2}" for i in range(20)))
    b = load_data(str(tmp_path / "plain.csv"), label_column=0)
    assert b.event_shape == (2,) and b.num_classes == 4 and b.value_kind == "unit"
    assert load_data(str(tmp_path / "plain.csv"), label_column="-1").num_classes == 2
    b = load_data(str(tmp_path / "plain.csv"))
    assert b.event_shape == (3,) and b.splits["train"].y is None


def test_csv_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(DataError, match=r"t\.csv: row 3, column 2 \('b'\) holds 'x', not a number"):
        load_data(str(path))
    path.write_text("a,b\n1,2\n3,nan\n")
    with pytest.raises(DataError, match=r"row 3, column 2 \('b'\) holds the non-finite value 'nan'"):
        load_data(str(path))
    path.write_text("1,2\n3,\n")
    with pytest.raises(DataError, match="row 2, column 2 is empty"):
        load_data(str(path))
    path.write_text("")
    with pytest.raises(DataError, match="empty csv file"):
        load_data(str(path))
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        load_data(str(path))
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match="row 3 has 3 columns, expected 2"):
        load_data(str(path))
    path.write_text("a,b\n1,2\n3,4\n5,6\n")
    with pytest.raises(DataError, match="no column named 'c' \\(columns: a, b\\)"):
        load_data(str(path), label_column="c")
    with pytest.raises(DataError, match="binarize=.*applies to image data"):
        load_data(str(path), binarize="threshold")
    np.save(tmp_path / "x.npy", np.zeros((5, 2)))
    with pytest.raises(DataError, match="label_column applies to .csv files only"):
        load_data(str(tmp_path / "x.npy"), label_column=0)


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_flat_grey_and_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(10):
        write_png(tmp_path / "grey" / f"{i:02d}.png", rng.integers(0, 256, (6, 5), dtype=np.uint8))
        write_png(tmp_path / "rgb" / f"{i:02d}.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    b = load_data(str(tmp_path / "grey"))
    assert b.event_shape == (1, 6, 5) and b.value_kind == "unit" and b.splits["train"].y is None
    assert sum(len(s) for s in b.splits.values()) == 10
    b = load_data(str(tmp_path / "rgb"), binarize="threshold")
    assert b.event_shape == (3, 6, 5) and b.value_kind == "binary"


def test_image_folder_class_subfolders(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls, count in (("zebra", 4), ("ant", 6), ("moth", 5)):
        for i in range(count):
            write_png(tmp_path / "pics" / cls / f"{i}.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    b = load_data(str(tmp_path / "pics"), valid_fraction=0.0, test_fraction=0.0)
    assert b.class_names == ("ant", "moth", "zebra") and b.num_classes == 3
    assert sorted(torch.bincount(b.splits["train"].y).tolist()) == [4, 5, 6]
    assert torch.bincount(b.splits["train"].y).tolist() == [6, 5, 4]


def test_image_folder_errors(tmp_path: Path) -> None:
    write_png(tmp_path / "mixed" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    write_png(tmp_path / "mixed" / "b.png", np.zeros((5, 4), dtype=np.uint8))
    with pytest.raises(DataError, match=r"same size; b\.png is 4x5 but a\.png is 4x4"):
        load_data(str(tmp_path / "mixed"))
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no PNG or JPEG images"):
        load_data(str(tmp_path / "none"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"x\.png: cannot read image"):
        load_data(str(tmp_path / "broken"))


# ---- real data (../shared/data, or $VAEKIT_DATA) ------------------------------------------------------------


@needs_shared("mnist")
def test_real_mnist() -> None:
    b = load_data("mnist", SHARED_DATA)
    assert {k: len(s) for k, s in b.splits.items()} == {"train": 50000, "valid": 10000, "test": 10000}
    assert b.event_shape == (1, 28, 28) and b.value_kind == "unit"
    assert b.splits["train"].y[:5].tolist() == [5, 0, 4, 1, 9] and b.splits["test"].y[0] == 7
    assert float(b.splits["train"].x.max()) == 1.0


@needs_shared("mnist")
def test_real_mnist_dynamic_binarize() -> None:
    b = load_data("mnist", SHARED_DATA, binarize="dynamic", limit=200)
    assert b.dynamic_binarize and b.value_kind == "binary" and len(b.splits["valid"]) == 200
    assert set(b.splits["test"].x.unique().tolist()) == {0.0, 1.0}


@needs_shared("fashion-mnist")
def test_real_fashion_mnist() -> None:
    b = load_data("fashion-mnist", SHARED_DATA, limit=100)
    assert b.class_names[b.splits["train"].y[0]] == "Ankle boot" and b.num_classes == 10
    assert b.event_shape == (1, 28, 28) and len(b.splits["test"]) == 100


@needs_shared("binarized-mnist")
def test_real_binarized_mnist() -> None:
    b = load_data("binarized-mnist", SHARED_DATA / "binarized-mnist", limit=300)
    assert b.value_kind == "binary" and b.event_shape == (1, 28, 28)
    assert b.splits["train"].y is None and b.splits["valid"].y is None
    assert b.splits["test"].y.tolist() == [0] * 300  # the test split is sorted by label
    assert set(b.splits["train"].x.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_count_nonfinite_finds_each_kind_of_bad_value(bad):
    from vaekit.data.common import count_nonfinite

    x = torch.zeros(50, 3, 4)
    x[7, 2, 1] = bad
    x[9, 0, 0] = bad
    assert count_nonfinite(x) == (2, (7, 2, 1))


def test_count_nonfinite_is_not_fooled_by_a_sum_that_overflows():
    from vaekit.data.common import count_nonfinite

    x = torch.full((10, 4), 3e38)  # every value finite; their float32 sum is infinite
    assert count_nonfinite(x) == (0, None)
    x[3, 1] = float("nan")
    assert count_nonfinite(x) == (1, (3, 1))
    assert count_nonfinite(torch.arange(12).reshape(3, 4)) == (0, None)  # integers are always finite
