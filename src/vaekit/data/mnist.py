"""MNIST and Fashion-MNIST from the four original IDX files, and statically binarized MNIST from its .npz.

IDX format (big-endian): 2 zero bytes, a type byte (0x08 = unsigned byte, ...), a byte with the number of
dimensions d, d uint32 sizes, then the values in C order. Images are idx3 (N, 28, 28) uint8, labels idx1 (N,) uint8.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import DATASETS, DataBundle, Split
from .common import apply_binarize, check_load, dataset_folder, find_file, load_npz

# IDX type byte -> numpy dtype (multi-byte types are big-endian)
IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
BINARIZED_FILE = "binarized_mnist_static.npz"


def _is_gzip(path: Path) -> bool:
    """True when the file is gzip, by suffix or by its 1f 8b magic."""
    if path.suffix == ".gz":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _read_exactly(f, n: int, path: Path) -> bytes:
    """n bytes of stream `f` (fewer at its end), with read and decompression errors as DataErrors."""
    try:
        return f.read(n)
    except (EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot decompress ({e}); the file is truncated or corrupt") from None
    except OSError as e:
        if isinstance(e, gzip.BadGzipFile) or not e.strerror:
            raise DataError(f"{path}: cannot decompress ({e}); the file is truncated or corrupt") from None
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (plain or gzipped) into an array in native byte order, checking magic and size.

    The header is read first and its sizes (exact Python ints) are checked against the file's size and the memory
    budget before the data are read, so a header that claims 10^9 images is an error, never an allocation; a
    gzipped file is decompressed as a stream, no further than the header says the data go."""
    path = Path(path)
    gz = _is_gzip(path)
    try:
        f = gzip.open(path, "rb") if gz else open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        magic = _read_exactly(f, 4, path)
        if len(magic) < 4:
            raise DataError(f"{path}: truncated IDX file ({len(magic)} bytes, shorter than its 4-byte magic number)")
        if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
            raise DataError(f"{path}: not an IDX file (magic number 0x{magic.hex()}, expected 0x0000TTDD)")
        ndim = magic[3]
        sizes = _read_exactly(f, 4 * ndim, path)
        if len(sizes) < 4 * ndim:
            raise DataError(f"{path}: truncated IDX file (header of {ndim} sizes cut off)")
        shape = struct.unpack(f">{ndim}I", sizes)
        header = 4 + 4 * ndim
        dtype = np.dtype(IDX_DTYPES[magic[2]])
        count = math.prod(shape)  # a Python int: no overflow
        if math.prod(s for s in shape if s) * dtype.itemsize >= 2**63:  # numpy's bound, even for an empty array
            raise DataError(f"{path}: IDX header claims sizes {shape} too large for any array")
        expected = count * dtype.itemsize
        if not gz:
            found = os.fstat(f.fileno()).st_size - header
            if found < expected:
                raise DataError(f"{path}: truncated IDX file: shape {shape} needs {expected:,} data bytes, "
                                f"found {found:,}")
            if found > expected:
                raise DataError(f"{path}: IDX file has {found - expected} bytes after its data (shape {shape})")
        # the bytes, a native-order copy, and the float32 images the loader makes of them
        check_load(count, 2 * dtype.itemsize, f"reading {path} (an IDX array of shape "
                                              f"{'x'.join(map(str, shape))})")
        raw = _read_exactly(f, expected, path)
        if len(raw) < expected:
            raise DataError(f"{path}: truncated IDX file: shape {shape} needs {expected:,} data bytes, "
                            f"found {len(raw):,}")
        extra = _read_exactly(f, 1 << 16, path) if gz else b""
        if extra:
            rest = len(extra)
            while True:  # count what follows, a block at a time
                block = _read_exactly(f, 1 << 20, path)
                if not block:
                    break
                rest += len(block)
            raise DataError(f"{path}: IDX file has {rest} bytes after its data (shape {shape})")
    data = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a writable copy in native order


def _load_idx(name: str, root: str | Path | None, binarize: str | None, class_names: tuple[str, ...]) -> DataBundle:
    """An MNIST-style set: train 5/6 (50,000) / valid = the last 1/6 of the training file (10,000) / test."""
    first = IDX_FILES["train_x"]
    folder = dataset_folder(name, root, [first + ".gz", first])
    arrays = {key: read_idx(find_file(folder, name, [base + ".gz", base])) for key, base in IDX_FILES.items()}
    for part in ("train", "test"):
        x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataError(f"{name}: {part} images in {folder} must be (N, H, W) bytes, got {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{name}: {part} labels in {folder} have shape {y.shape}, expected ({len(x)},)")
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise DataError(f"{name}: train and test images in {folder} differ in size")

    def tensors(part: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = arrays[f"{part}_x"].astype(np.float32)
        x /= 255.0  # grey levels 0..255 -> [0, 1]
        return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(arrays[f"{part}_y"].astype(np.int64))

    train_x, train_y = tensors("train")
    test_x, test_y = tensors("test")
    n_train = train_x.shape[0] - train_x.shape[0] // 6
    splits = {
        "train": Split(train_x[:n_train], train_y[:n_train]),
        "valid": Split(train_x[n_train:], train_y[n_train:]),
        "test": Split(test_x, test_y),
    }
    bundle = DataBundle(
        name=name,
        splits=splits,
        event_shape=tuple(train_x.shape[1:]),
        value_kind="unit",
        num_classes=len(class_names),
        class_names=class_names,
        meta={"source": str(folder)},
    )
    return apply_binarize(bundle, binarize)


@DATASETS.register("mnist")
def mnist(root: str | Path | None = None, *, binarize: str | None = None) -> DataBundle:
    """MNIST handwritten digits from the IDX files: 28x28 grey levels, 50k train / 10k valid / 10k test."""
    return _load_idx("mnist", root, binarize, tuple(str(i) for i in range(10)))


@DATASETS.register("fashion-mnist")
def fashion_mnist(root: str | Path | None = None, *, binarize: str | None = None) -> DataBundle:
    """Fashion-MNIST clothing images from the IDX files: 28x28 grey levels, 10 classes, 50k / 10k / 10k."""
    return _load_idx("fashion-mnist", root, binarize, FASHION_CLASSES)


@DATASETS.register("binarized-mnist")
def binarized_mnist(root: str | Path | None = None) -> DataBundle:
    """Statically binarized MNIST (Larochelle & Murray): 50k / 10k / 10k in {0, 1}; labels on test only."""
    name = "binarized-mnist"
    folder = dataset_folder(name, root, [BINARIZED_FILE])
    path = find_file(folder, name, [BINARIZED_FILE])
    arrays = load_npz(path)  # headers checked against the archive and the memory budget first
    splits = {}
    for part in ("train", "valid", "test"):
        if part not in arrays:
            raise DataError(f"{name}: {path} has no array {part!r} (it holds: {', '.join(sorted(arrays))})")
        x = arrays[part]
        if x.ndim != 2 or x.shape[1] != 784:  # (N, 784) uint8 in {0, 1}
            raise DataError(f"{name}: array {part!r} in {path} has shape {x.shape}, expected (N, 784)")
        y = None
        if part == "test" and "test_labels" in arrays:
            y = torch.from_numpy(arrays["test_labels"].astype(np.int64))
        splits[part] = Split(torch.from_numpy(x.astype(np.float32)).reshape(-1, 1, 28, 28), y)
    return DataBundle(
        name=name,
        splits=splits,
        event_shape=(1, 28, 28),
        value_kind="binary",
        num_classes=10 if "test_labels" in arrays else 0,
        class_names=tuple(str(i) for i in range(10)) if "test_labels" in arrays else None,
        meta={"source": str(path)},
    )
