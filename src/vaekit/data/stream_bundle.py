"""Bundles of streamed splits, and the size estimate that decides between streaming and loading.

`estimate_size(spec, root)` reads only headers (a .npy header, IDX headers, the first image's header and the
number of images, the lines of a CSV) to say how many bytes the float32 values of all splits would take in
memory, and whether the format can stream (.npy, uncompressed IDX, image folders) or not (.npz, CSV, gzip IDX).

`stream_path` / `stream_idx` build the bundle the in-memory loaders would build, with `RowView`s over one
source instead of tensors: one chunked pass over the file finds what the in-memory loader reads off the whole
array (the layout and grey-level scaling, the value kind, non-finite values), the same seeded permutation cuts
the splits (as index views: nothing is copied), and tabular reals are standardised with the training split's
mean and standard deviation, computed in two chunked passes.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core import limits
from ..errors import DataError
from .base import DataBundle, Split, ValueKind
from .common import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VALID_FRACTION,
    EVAL_BINARIZE_SEED,
    SPLIT_ORDER,
    _npy_header,
    check_binarize,
    dataset_folder,
    find_file,
    split_indices,
)
from .files import (
    GREY_MODES,
    EventLayout,
    apply_layout_view,
    check_float32_range,
    event_layout,
    image_files,
    image_header,
    image_sizes,
)
from .standardize import Standardizer
from .streaming import IdxSource, ImageFolderSource, NpySource, RowView, Source

# Bytes of raw values one chunk of a scan reads (its float32 copy and checks take a few times that).
SCAN_CHUNK_BYTES = 4 * 2**20
# Registered data sets stored as IDX files (the loaders of vaekit.data.mnist).
IDX_SETS = ("mnist", "fashion-mnist")
GUNZIP = "gunzip the IDX files (gunzip -k {folder}/*.gz) so they can be memory-mapped, or raise data.memory_limit"


@dataclass(frozen=True)
class SizeEstimate:
    """Bytes of the float32 values of all splits in memory; whether the format streams, and what to do if not."""

    nbytes: int
    streamable: bool
    what: str  # e.g. "the .npy file data/x.npy"
    advice: str = ""


# --- estimates from headers ------------------------------------------------------------------------------------


def _idx_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of an IDX file, plain or gzip (only its first bytes are decompressed)."""
    from .mnist import IDX_DTYPES, _is_gzip

    with (gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")) as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
            raise DataError(f"{path}: not an IDX file")
        shape = struct.unpack(f">{magic[3]}I", f.read(4 * magic[3]))
    return tuple(shape), np.dtype(IDX_DTYPES[magic[2]]), 4 + 4 * len(shape)


def idx_paths(name: str, root) -> dict[str, Path]:
    """The four IDX files of a registered set (gzip preferred where both exist, as the in-memory loader does)."""
    from .mnist import IDX_FILES

    folder = dataset_folder(name, root, [IDX_FILES["train_x"] + ".gz", IDX_FILES["train_x"]])
    return {key: find_file(folder, name, [base + ".gz", base]) for key, base in IDX_FILES.items()}


def _csv_values(path: Path) -> int:
    """Rows times columns of a CSV file, counted in one streamed pass (a header row is counted as data)."""
    with open(path, "rb") as f:
        first = f.readline()
        lines = 1 + sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    text = first.decode("utf-8", "replace")
    columns = 1 + max(text.count(d) for d in ",;\t")
    return lines * columns


def estimate_size(spec, root=None) -> SizeEstimate | None:
    """The in-memory size of data set `spec` (a registered name or a path) from headers only; None when unknown
    (text, generated or bundled sets, unreadable headers: the in-memory loader then reports what it finds)."""
    import zipfile

    try:
        return _estimate(spec, root)
    except (DataError, OSError, ValueError, struct.error, EOFError, zipfile.BadZipFile):
        return None


def _estimate(spec, root) -> SizeEstimate | None:
    if isinstance(spec, str) and spec in IDX_SETS:
        paths = idx_paths(spec, root)
        n = sum(math.prod(_idx_header(paths[k])[0]) for k in ("train_x", "test_x"))
        gz = [p for k, p in paths.items() if k.endswith("_x") and p.suffix == ".gz"]
        return SizeEstimate(4 * n, not gz, f"data set {spec!r}",
                            GUNZIP.format(folder=paths["train_x"].parent) if gz else "")
    path = Path(spec).expanduser()
    if root is not None and not path.exists() and (Path(root).expanduser() / path).exists():
        path = Path(root).expanduser() / path
    suffix = path.suffix.lower()
    if path.is_dir():
        files, _, _ = image_files(path)
        width, height, mode = image_header(files[0])
        channels = 1 if mode in GREY_MODES else 3
        return SizeEstimate(4 * len(files) * width * height * channels, True, f"the image folder {path}")
    if suffix == ".npy":
        with open(path, "rb") as fp:
            shape, _ = _npy_header(fp, str(path))
        return SizeEstimate(4 * math.prod(shape), True, f"the .npy file {path}")
    if suffix == ".npz":
        import zipfile

        n = 0
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    with archive.open(info) as member:
                        n += math.prod(_npy_header(member, str(path))[0])
        return SizeEstimate(4 * n, False, f"the .npz file {path}",
                            "save its arrays as .npy files (np.save) to stream them, or raise data.memory_limit")
    if suffix in (".csv", ".tsv"):
        return SizeEstimate(4 * _csv_values(path), False, f"the table {path}",
                            "convert it to a .npy file (np.save) to stream it, or raise data.memory_limit")
    return None


# --- one pass over a source ------------------------------------------------------------------------------------


def _chunks(n: int, row_bytes: int):
    step = max(1, SCAN_CHUNK_BYTES // max(1, row_bytes))
    return ((lo, min(n, lo + step)) for lo in range(0, n, step))


def scan(source: Source, name: str) -> tuple[EventLayout, ValueKind]:
    """The layout and value kind the in-memory loader (`vaekit.data.files`) would find for this source, from one
    chunked pass; DataErrors for non-finite values or values beyond float32 (indices as the loader reports)."""
    n, dtype = source.raw_shape[0], source.raw_dtype
    row_bytes = math.prod(source.raw_shape[1:]) * dtype.itemsize
    lo, hi, whole, bad, big = math.inf, -math.inf, True, 0, False
    lo32, hi32, in01, in0255 = math.inf, -math.inf, True, True  # of the float32 values: the value kind
    for a, b in _chunks(n, row_bytes):
        raw = source.raw(slice(a, b))
        finite = raw
        if dtype.kind == "f":
            mask = np.isfinite(raw)
            bad += int(raw.size - mask.sum())
            finite = raw[mask]
            big = big or (dtype.itemsize > 4 and bool((np.abs(finite) > np.finfo(np.float32).max).any()))
            whole = whole and bool((finite == np.round(finite)).all())
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        f32 = finite.astype(np.float32) if dtype.kind == "f" else finite  # whole numbers compare as they are
        if f32.size:
            lo32, hi32 = min(lo32, float(f32.min())), max(hi32, float(f32.max()))
        in01 = in01 and bool(((f32 == 0) | (f32 == 1)).all())
        in0255 = in0255 and bool(((f32 == 0) | (f32 == 255)).all())
    lo, hi = (0.0, 0.0) if lo > hi else (lo, hi)
    layout = event_layout(source.raw_shape, dtype.kind in "biu", lo, hi, whole)
    if big or bad:
        _raise_first_bad(source, layout, name, bad)
    if layout.scale255:
        kind: ValueKind = "binary" if in0255 else "unit"
    else:
        kind = "binary" if in01 else ("unit" if lo32 >= 0 and hi32 <= 1 else "real")
    return layout, kind


def _raise_first_bad(source: Source, layout: EventLayout, name: str, bad: int) -> None:
    """The in-memory loader's error for the first value beyond float32 or the first non-finite one."""
    from .common import count_nonfinite

    row_bytes = math.prod(source.raw_shape[1:]) * source.raw_dtype.itemsize
    for a, b in _chunks(source.raw_shape[0], row_bytes):
        check_float32_range(apply_layout_view(source.raw(slice(a, b)), layout), name, offset=a)
    for a, b in _chunks(source.raw_shape[0], row_bytes):
        events = apply_layout_view(source.raw(slice(a, b)), layout)
        n_bad, at = count_nonfinite(torch.from_numpy(np.ascontiguousarray(events, dtype=np.float32)))
        if n_bad:
            at = (at[0] + a, *at[1:])
            raise DataError(f"data set {name!r} contains {bad} non-finite values (first at index {at})")


def fit_standardizer(view: RowView) -> Standardizer:
    """`Standardizer.fit` of the view's rows, in two chunked passes (mean, then the mean squared deviation)."""
    rows = np.sort(view.base_rows())  # the statistics do not depend on the order: read in file order
    row_bytes = math.prod(view.shape[1:]) * 8
    total = np.zeros(tuple(view.shape[1:]), dtype=np.float64)
    for a, b in _chunks(len(rows), row_bytes):
        total += view.base._take(rows[a:b]).numpy().astype(np.float64).sum(0)
    mean = total / len(rows)
    squares = np.zeros_like(total)
    for a, b in _chunks(len(rows), row_bytes):
        squares += ((view.base._take(rows[a:b]).numpy().astype(np.float64) - mean) ** 2).sum(0)
    scale = np.sqrt(squares / len(rows))
    return Standardizer(mean=mean, scale=np.where(scale > 0, scale, 1.0))


# --- bundles ---------------------------------------------------------------------------------------------------


def _labels(y: np.ndarray | None, index: torch.Tensor | None) -> torch.Tensor | None:
    if y is None:
        return None
    y = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return y if index is None else y[index]


def stream_path(path: str | Path, *, seed: int = 0, binarize: str | None = None,
                valid_fraction: float = DEFAULT_VALID_FRACTION,
                test_fraction: float = DEFAULT_TEST_FRACTION) -> DataBundle:
    """The bundle `vaekit.data.files.load_path` makes of a .npy file or an image folder, streamed."""
    path = Path(path)
    y, class_names = None, None
    if path.is_dir():
        files, y, class_names = image_files(path)
        width, height, colour = image_sizes(path, files)
        source: Source = ImageFolderSource(files, width, height, colour)
    elif path.suffix.lower() == ".npy":
        source = NpySource(path)
        if source.raw_dtype.kind not in "biuf" or len(source.raw_shape) == 0 or 0 in source.raw_shape:
            raise DataError(f"{path.name}: expected a non-empty numeric array of examples (N, ...), got "
                            f"{source.raw_dtype} of shape {source.raw_shape}")
    else:
        raise DataError(f"{path}: only .npy files and image folders can be streamed")
    layout, kind = scan(source, path.name)
    source = source.with_layout(layout)
    indices = split_indices(len(source), valid_fraction, test_fraction, seed)
    views = {k: RowView(source, None if i is None else i.numpy()) for k, i in indices.items()}
    standardizer = fit_standardizer(views["train"]) if kind == "real" else None
    splits = {k: Split(v.replace(standardizer=standardizer), _labels(y, indices[k])) for k, v in views.items()}
    bundle = DataBundle(name=path.name, splits=splits, event_shape=tuple(source.shape[1:]), value_kind=kind,
                        num_classes=len(class_names) if class_names else 0, class_names=class_names,
                        meta={"path": str(path.resolve()), "split_seed": seed, "streamed": True},
                        standardizer=standardizer)
    return stream_binarize(bundle, binarize)


def stream_idx(name: str, root, binarize: str | None = None) -> DataBundle:
    """The bundle `vaekit.data.mnist` makes of a registered IDX set, its image files memory-mapped."""
    from .mnist import FASHION_CLASSES, read_idx

    class_names = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(i) for i in range(10))

    paths = idx_paths(name, root)
    sources = {}
    for part in ("train", "test"):
        path = paths[f"{part}_x"]
        if path.suffix == ".gz":
            raise DataError(f"{name}: {path} is gzip-compressed and cannot be streamed; "
                            + GUNZIP.format(folder=path.parent))
        shape, dtype, offset = _idx_header(path)
        expected = offset + math.prod(shape) * dtype.itemsize
        if len(shape) != 3 or dtype != np.uint8 or path.stat().st_size != expected:
            raise DataError(f"{name}: {path} must hold (N, H, W) bytes filling the file, got {dtype} {shape} in "
                            f"{path.stat().st_size:,} bytes (expected {expected:,})")
        # (N, H, W) grey levels -> (N, 1, H, W) in [0, 1], as the in-memory loader converts them
        sources[part] = IdxSource(path, shape, dtype, offset, EventLayout("channel", True, True))
    labels = {part: torch.from_numpy(read_idx(paths[f"{part}_y"]).astype(np.int64)) for part in ("train", "test")}
    for part, source in sources.items():
        if labels[part].shape != (len(source),):
            raise DataError(f"{name}: {part} labels have shape {tuple(labels[part].shape)}, expected ({len(source)},)")
    if sources["train"].shape[1:] != sources["test"].shape[1:]:
        raise DataError(f"{name}: train and test images differ in size")
    n = len(sources["train"])
    n_train = n - n // 6  # the in-memory loader's split: the last sixth of the training file validates
    splits = {"train": Split(RowView(sources["train"], np.arange(n_train)), labels["train"][:n_train]),
              "valid": Split(RowView(sources["train"], np.arange(n_train, n)), labels["train"][n_train:]),
              "test": Split(RowView(sources["test"]), labels["test"])}
    bundle = DataBundle(name=name, splits=splits, event_shape=tuple(sources["train"].shape[1:]), value_kind="unit",
                        num_classes=len(class_names), class_names=class_names,
                        meta={"source": str(paths["train_x"].parent), "streamed": True})
    return stream_binarize(bundle, binarize)


def stream_binarize(bundle: DataBundle, mode: str | None) -> DataBundle:
    """`vaekit.data.common.apply_binarize` for streamed splits: "threshold" applies x > 0.5 to every batch read;
    "dynamic" leaves the training split as grey levels (the training loop draws per batch) and gives each
    evaluation example one fixed draw (seeded by the split and its position, `RowView.bernoulli_seed`)."""
    if mode is None:
        return bundle
    check_binarize(bundle, mode)
    splits = {}
    for i, (name, split) in enumerate(bundle.splits.items()):
        x = split.x
        if mode == "threshold":
            x = x.replace(threshold=True)
        elif name != "train":
            offset = SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER) + i
            x = x.replace(bernoulli_seed=EVAL_BINARIZE_SEED + offset)
        splits[name] = Split(x, split.y)
    meta = {**bundle.meta, "binarize": mode}
    return dataclasses.replace(bundle, splits=splits, value_kind="binary", dynamic_binarize=(mode == "dynamic"),
                               meta=meta)


def bundle_bytes(bundle: DataBundle) -> int:
    """Bytes of the float32 values of all splits of a bundle (what it holds in memory when not streamed)."""
    return sum(limits.nbytes(s.x.shape) for s in bundle.splits.values())


__all__ = ["SizeEstimate", "estimate_size", "scan", "fit_standardizer", "stream_path", "stream_idx",
           "stream_binarize", "bundle_bytes"]
