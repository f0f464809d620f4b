"""Helpers shared by the data loaders: where data sets live, train/valid/test splits, binarization.

Lower than `loading` (which dispatches a name or a path to a loader) and the loaders themselves (`builtin`,
`mnist`, `shapes`, `files`), which all import from here.
"""

from __future__ import annotations

import dataclasses
import os
import tokenize
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import DataError
from .base import DataBundle, Split

DEFAULT_VALID_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.2
# Defaults of the options of data sets of sequences (data.max_len: elements kept per example; data.vocab_size:
# most frequent symbols kept): no PTB sentence is cut (the longest has 82 words), and PTB's 10,000 words all fit.
DEFAULT_MAX_LEN = 100
DEFAULT_VOCAB_SIZE = 20_000
BINARIZE_MODES = ("dynamic", "threshold")
# Evaluation splits of dynamically binarized data are drawn once with these seeds (valid: +1, test: +2), whatever
# the training seed, so that test scores of different runs are comparable.
EVAL_BINARIZE_SEED = 20240101
SPLIT_ORDER = ("train", "valid", "test")


def data_root() -> Path | None:
    """The folder named by `$VAEKIT_DATA` (holding `mnist/`, `fashion-mnist/`, ...), or None when unset."""
    value = os.environ.get("VAEKIT_DATA", "").strip()
    return Path(value).expanduser() if value else None


def _hint(name: str) -> str:
    return f"set VAEKIT_DATA to the folder holding {name}/, or pass --data-root"


def dataset_folder(name: str, root: str | Path | None, markers: Sequence[str]) -> Path:
    """The folder of data set `name`: `root` if it holds one of `markers`, else `root/<name>`, else
    `$VAEKIT_DATA/<name>`."""
    if root is not None:
        root = Path(root).expanduser()
        if any((root / m).exists() for m in markers) or not (root / name).is_dir():
            return root
        return root / name
    base = data_root()
    if base is None:
        raise DataError(f"{name}: no data folder given ({_hint(name)})")
    return base / name


def find_file(folder: Path, name: str, candidates: Sequence[str]) -> Path:
    """The first of `candidates` (e.g. "x.gz", "x") that exists in `folder`; a DataError naming the first one."""
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    missing = "" if folder.is_dir() else "no such folder; "
    raise DataError(f"{name}: expected {candidates[0]} in {folder} ({missing}{_hint(name)})")


def check_fractions(valid_fraction: float, test_fraction: float) -> None:
    """Both fractions in [0, 1) and together below 1."""
    for label, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"{label} must be in [0, 1), got {value}")
    if valid_fraction + test_fraction >= 1.0:
        raise DataError(f"valid_fraction + test_fraction must be below 1, got {valid_fraction + test_fraction}")


def split_indices(n: int, valid_fraction: float, test_fraction: float, seed: int) -> dict[str, torch.Tensor | None]:
    """Rows of each split of `n` examples: a seeded permutation cut train/valid/test; a split whose fraction is 0 is
    left out, and with both 0 "train" is None (all rows, in order). Shared by the in-memory and streamed paths."""
    check_fractions(valid_fraction, test_fraction)
    if valid_fraction == 0 and test_fraction == 0:
        return {"train": None}
    n_valid = max(1, round(n * valid_fraction)) if valid_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_train = n - n_valid - n_test
    if n_train < 2:
        raise DataError(
            f"only {n} examples: too few to hold out {n_valid} for validation and {n_test} for testing "
            "and keep at least 2 for training"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, n)}
    return {name: perm[lo:hi] for name, (lo, hi) in bounds.items() if hi > lo}


def split_tensors(
    x: torch.Tensor, y: torch.Tensor | None, valid_fraction: float, test_fraction: float, seed: int
) -> dict[str, Split]:
    """Train/valid/test splits of a seeded permutation (`split_indices`)."""
    splits = {}
    for name, idx in split_indices(x.shape[0], valid_fraction, test_fraction, seed).items():
        splits[name] = Split(x, y) if idx is None else Split(x[idx], None if y is None else y[idx])
    return splits


def check_binarize(bundle: DataBundle, mode: str) -> None:
    """A DataError unless `mode` is a binarize mode and the bundle holds [0, 1] images (in memory or streamed)."""
    if mode not in BINARIZE_MODES:
        raise DataError(f"binarize must be one of {', '.join(BINARIZE_MODES)} (or unset), got {mode!r}")
    if not bundle.is_image or bundle.value_kind != "unit":
        kind = "image" if bundle.is_image else "tabular"
        raise DataError(
            f"binarize={mode!r} applies to image data with grey levels in [0, 1]; "
            f"data set {bundle.name!r} is {kind} with {bundle.value_kind} values"
        )


def apply_binarize(bundle: DataBundle, mode: str | None) -> DataBundle:
    """Binarize [0, 1] image data: "threshold" (x > 0.5 everywhere) or "dynamic" (training batches are resampled
    by the training loop; valid/test are drawn once here with a fixed seed)."""
    if mode is None:
        return bundle
    check_binarize(bundle, mode)
    splits = {}
    for i, (name, split) in enumerate(bundle.splits.items()):
        x = split.x
        if mode == "threshold":
            x = (x > 0.5).to(torch.float32)
        elif name != "train":
            offset = SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER) + i
            gen = torch.Generator().manual_seed(EVAL_BINARIZE_SEED + offset)
            x = torch.bernoulli(x.clamp(0.0, 1.0), generator=gen)
        splits[name] = Split(x, split.y)
    meta = {**bundle.meta, "binarize": mode}
    return dataclasses.replace(
        bundle, splits=splits, value_kind="binary", dynamic_binarize=(mode == "dynamic"), meta=meta
    )


def limit_bundle(bundle: DataBundle, limit: int) -> DataBundle:
    """Keep the first `limit` examples of every split (copies, so the full tensors can be freed; a streamed split
    becomes a view of its first rows)."""
    # (a streamed split's rows, vaekit.data.streaming.Rows, have `head`; common is below streaming: no import)
    splits = {
        name: Split(s.x.head(limit) if hasattr(s.x, "head") else s.x[:limit].clone(),
                    None if s.y is None else s.y[:limit].clone())
        for name, s in bundle.splits.items()
    }
    return dataclasses.replace(bundle, splits=splits)


def count_nonfinite(x: torch.Tensor) -> tuple[int, tuple[int, ...] | None]:
    """How many values of `x` are NaN or infinite, and the index of the first."""
    # A NaN or an infinity makes the sum non-finite: one reduction without a (N, ...) mask answers the usual case
    # (a finite sum can only overflow to infinity, which falls through to the exact count below).
    if not x.is_floating_point() or bool(torch.isfinite(x.sum())):
        return 0, None
    bad = ~torch.isfinite(x)
    n = int(bad.sum())
    if n == 0:
        return 0, None
    return n, tuple(int(i) for i in bad.nonzero()[0])


# --- bounded reading: headers are checked against the file and the memory budget before any allocation ----------

# Bytes a loader holds per value of a data file at its peak: the file's own values plus float32 copies (the
# events, the tensors, the joined splits).
LOAD_BYTES_PER_VALUE = 12
# Largest image (width x height) read from a file: PIL's own default bound against decompression bombs.
MAX_IMAGE_PIXELS = 89_478_485


def check_load(n_values: int, itemsize: int, what: str) -> None:
    """A DataError unless loading `n_values` values of `itemsize` bytes fits the memory budget."""
    from ..core import limits

    limits.check_allocation(int(n_values) * (int(itemsize) + LOAD_BYTES_PER_VALUE), what, error=DataError)


def _npy_header(fp, source: str) -> tuple[tuple[int, ...], "np.dtype"]:
    """(shape, dtype) from the header of an open .npy stream, which is left just after the header."""
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fp, max_header_size=2**20)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(fp, max_header_size=2**20)
        else:
            shape, _, dtype = fmt._read_array_header(fp, version, max_header_size=2**20)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, OverflowError, RecursionError, MemoryError,
            tokenize.TokenError) as e:  # NumPy parses the header dict as Python literals: any of these may come
        if "magic" in str(e):
            raise DataError(f"{source} is not a NumPy .npy file (no .npy header; is it text?)") from None
        raise DataError(f"{source}: not a readable .npy array ({_first_line(e)})") from None
    return tuple(int(s) for s in shape), dtype


def check_npy_stream(fp, source: str, file_bytes: int | None,
                     budget: bool = True) -> tuple[tuple[int, ...], "np.dtype"]:
    """Reads the .npy header of `fp` and checks it: the data bytes it claims against what the stream of
    `file_bytes` bytes holds after the header (when known), and against the memory budget. DataErrors, before
    anything is allocated; `fp` is left just after the header."""
    import math

    shape, dtype = _npy_header(fp, source)
    n = math.prod(shape)
    claimed = n * dtype.itemsize
    shown = "x".join(map(str, shape)) or "scalar"
    if file_bytes is not None and not dtype.hasobject:
        held = file_bytes - fp.tell()
        if claimed > held:
            raise DataError(f"{source}: truncated or inconsistent .npy data: its header claims an array of shape "
                            f"{shown} {dtype} ({claimed:,} bytes) but only {max(held, 0):,} bytes follow it")
    if budget:  # (a memory-mapped file is read a slice at a time: its size is not held at once)
        check_load(n, dtype.itemsize, f"loading {source} (an array of shape {shown} {dtype})")
    return shape, dtype


def csv_rows(lines, delimiter: str, source: str | Path) -> list[list[str]]:
    """Every row of CSV text (`lines`: a string's lines or an open file); a malformed file (a cell over the csv
    module's 131,072-character limit, a stray quote at the end, a NUL byte) is a DataError naming `source`."""
    import csv

    try:
        return list(csv.reader(lines, delimiter=delimiter))
    except csv.Error as e:
        raise DataError(f"{source}: not a readable CSV file ({_first_line(e)})") from None


def load_npy(path: Path):
    """np.load of a .npy file after `check_npy_stream` of its header (no pickles)."""
    import numpy as np

    try:
        with open(path, "rb") as fp:
            check_npy_stream(fp, str(path), os.fstat(fp.fileno()).st_size)
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        if "pickled" in str(e):  # no .npy header, so NumPy would have unpickled it
            raise DataError(f"{path} is not a NumPy .npy file (no .npy header; is it text?)") from None
        raise DataError(f"{path}: cannot read as .npy ({_first_line(e)})") from None


def load_npz(path: Path) -> dict:
    """All arrays of a .npz file, each member's .npy header checked first (sizes that the zip directory does not
    back, or that do not fit the memory budget together, are a DataError before anything is decompressed)."""
    import math
    import zipfile

    import numpy as np

    if not zipfile.is_zipfile(path):
        if not Path(path).exists():
            raise DataError(f"{path}: cannot read as .npz (no such file)")
        raise DataError(f"{path} is not a NumPy .npz archive (not a zip file; is it text?)")
    try:
        with zipfile.ZipFile(path) as archive:
            total, itemsize = 0, 1
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    with archive.open(info) as member:
                        shape, dtype = _npy_header(member, f"{path} [{info.filename}]")
                        held = info.file_size - member.tell()
                    claimed = math.prod(shape) * dtype.itemsize
                    if not dtype.hasobject and claimed > held:
                        raise DataError(f"{path}: inconsistent .npz member {info.filename!r}: its header claims "
                                        f"shape {'x'.join(map(str, shape))} {dtype} ({claimed:,} bytes), the "
                                        f"archive holds {max(held, 0):,}")
                    total += math.prod(shape)
                    itemsize = max(itemsize, dtype.itemsize)
            check_load(total, itemsize, f"loading {path} ({total:,} values)")
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read as .npz ({_first_line(e)})") from None


def image_header(path: Path, source: str | None = None):
    """(width, height, mode) of an image file from its header (nothing decoded); a DataError for an image
    larger than MAX_IMAGE_PIXELS (a decompression bomb) or one PIL cannot read."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    source = source or str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height, mode = im.size[0], im.size[1], im.mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{source}: image too large to read safely ({_first_line(e)})") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise DataError(f"{source}: cannot read image ({_first_line(e)})") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(f"{source}: image of {width}x{height} pixels is too large ({width * height:,} pixels; "
                        f"at most {MAX_IMAGE_PIXELS:,}; a possible decompression bomb)")
    return width, height, mode


def open_image(path: Path, source: str | None = None):
    """PIL's Image.open after `image_header` checked its size (use as `with open_image(p) as im:`)."""
    import warnings

    from PIL import Image

    width, height, mode = image_header(path, source)
    check_load(width * height * max(Image.getmodebands(mode), 3), 1, f"reading {source or path} ({width}x{height} pixels)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked above against our own bound
        return Image.open(path)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
