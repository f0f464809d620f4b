"""MNIST and Fashion-MNIST from the four original IDX files, and statically binarized MNIST from its .npz.

IDX format (big-endian): 2 zero bytes, a type byte (0x08 = unsigned byte, ...), a byte with the number of
dimensions d, d uint32 sizes, then the values in C order. Images are idx3 (N, 28, 28) uint8, labels idx1 (N,) uint8.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import DATASETS, DataBundle, Split
from .common import apply_binarize, dataset_folder, find_file

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


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (by suffix or by its 1f 8b magic)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: cannot decompress ({e}); the file is truncated or corrupt") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (plain or gzipped) into an array in native byte order, checking magic and size."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, shorter than its 4-byte magic number)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()}, expected 0x0000TTDD)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX file (header of {ndim} sizes cut off)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    count = int(np.prod(shape, dtype=np.int64))
    expected, found = count * dtype.itemsize, len(raw) - header
    if found < expected:
        raise DataError(f"{path}: truncated IDX file: shape {shape} needs {expected} data bytes, found {found}")
    if found > expected:
        raise DataError(f"{path}: IDX file has {found - expected} bytes after its data (shape {shape})")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
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
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
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
