"""The user's own data, given as a path: `.npy`, `.npz`, `.csv`/`.tsv`, or a folder of PNG/JPEG images.

Shapes: (N, D) arrays and CSV rows are tabular, event (D,); (N, H, W) are grey images -> (N, 1, H, W);
(N, H, W, C) with C in {1, 3, 4} and image-like values -> (N, C, H, W). Image grey levels 0..255 become [0, 1].
Tabular values are "binary" ({0, 1}), "unit" ([0, 1]) or else "real", standardised with the train split's
per-feature mean and std (the bundle's `standardizer`: x_original = standardizer.inverse(x)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import DataBundle, Split, ValueKind
from .common import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VALID_FRACTION,
    apply_binarize,
    check_load,
    count_nonfinite,
    csv_rows,
    image_header,
    load_npy,
    load_npz,
    open_image,
    split_tensors,
)
from .standardize import Standardizer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
# npz keys of files that carry their own splits
SPLIT_KEYS = {"train": ("train",), "valid": ("valid", "val", "validation"), "test": ("test",)}
Parts = dict[str, tuple[np.ndarray, "np.ndarray | None"]]  # split name (or "all") -> (x, y)


def _labels(y: np.ndarray, n: int, source: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """(n,) int64 labels; text or negative labels become 0..K-1 with the sorted originals as class names."""
    y = np.asarray(y)
    if y.ndim > 1 and int(np.prod(y.shape[1:])) == 1:
        y = y.reshape(-1)
    if y.shape != (n,):
        raise DataError(f"{source}: expected one label per example ({n}), got labels of shape {y.shape}")
    if y.dtype.kind in "fc":
        if not np.isfinite(y).all() or not (y == np.round(y)).all():
            raise DataError(f"{source}: labels must be whole numbers or class names, found {y[y != np.round(y)][:1]}")
        y = y.real.astype(np.int64)
    if y.dtype.kind in "iub" and (n == 0 or y.min() >= 0):
        return y.astype(np.int64), None
    values, inverse = np.unique(y, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), tuple(str(v) for v in values)


@dataclass(frozen=True)
class EventLayout:
    """How the rows of a file's array become events (the streamed sources apply it to each batch they read):
    `expand` "feature" (N,) -> (N, 1), "channel" (N, H, W) -> (N, 1, H, W), "hwc" (N, H, W, C) -> (N, C, H, W),
    or "none"; `scale255` divides grey levels 0..255 by 255; `is_image` says the result is (N, C, H, W) images."""

    expand: str = "none"
    scale255: bool = False
    is_image: bool = False


def event_layout(shape: tuple[int, ...], integer: bool, lo: float, hi: float, whole: bool) -> EventLayout:
    """The layout of an array of `shape` whose finite values lie in [lo, hi] (`whole`: all whole numbers;
    `integer`: an integer dtype): the rules of the module docstring."""
    # Grey levels 0..255 (whole numbers) or [0, 1]
    grey255 = bool(lo >= 0 and 1 < hi <= 255 and (integer or whole))
    image_like = bool(lo >= 0 and (hi <= 1 or grey255))
    expand = {1: "feature", 3: "channel"}.get(len(shape), "none")
    if len(shape) == 4 and image_like and shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        expand = "hwc"
    is_image = len(shape) in (3, 4) and image_like  # (N, C, H, W) once expanded
    return EventLayout(expand, is_image and grey255, is_image)


def apply_layout(x: np.ndarray, layout: EventLayout) -> np.ndarray:
    """Rows `x` in the file's layout -> contiguous float32 events (the in-memory and the streamed paths alike)."""
    if layout.expand == "feature":
        x = x[:, None]  # N scalars -> (N, 1)
    elif layout.expand == "channel":
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    elif layout.expand == "hwc":
        x = x.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if layout.scale255:
        x /= 255.0
    return x


def _to_events(x: np.ndarray, source: str) -> tuple[np.ndarray, bool]:
    """Reshape (N, ...) to the layout above and scale image grey levels; returns (x, is_image)."""
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise DataError(f"{source}: expected a numeric array of examples (N, ...), got {x.dtype} of shape {x.shape}")
    if x.size == 0:
        raise DataError(f"data set {source!r} is empty")
    finite = x[np.isfinite(x)] if x.dtype.kind == "f" else x
    lo, hi = (finite.min(), finite.max()) if finite.size else (0, 0)
    whole = x.dtype.kind in "biu" or bool((finite == np.round(finite)).all())
    layout = event_layout(x.shape, x.dtype.kind in "biu", lo, hi, whole)
    check_float32_range(apply_layout_view(x, layout), source)
    return apply_layout(x, layout), layout.is_image


def apply_layout_view(x: np.ndarray, layout: EventLayout) -> np.ndarray:
    """The reshape/transpose of `apply_layout` without the float32 copy (for checks in the events' layout)."""
    if layout.expand in ("feature", "channel"):
        return x[:, None]
    return x.transpose(0, 3, 1, 2) if layout.expand == "hwc" else x


def check_float32_range(x: np.ndarray, source: str, offset: int = 0) -> None:
    """A DataError when float64 values of `x` lie beyond float32's range (they would become inf); `offset` is
    the index of x's first row in the whole array (for the message)."""
    if x.dtype.kind == "f" and x.dtype.itemsize > 4:
        big = np.abs(np.where(np.isfinite(x), x, 0)) > np.finfo(np.float32).max
        if big.any():
            at = tuple(int(i) for i in np.argwhere(big)[0])
            value = x[at]
            at = (at[0] + offset, *at[1:])
            where = f"row {at[0]}, column {at[1]}" if len(at) == 2 else f"index {at}"
            raise DataError(f"{source}: value {value:g} at {where} is outside the float32 range (±3.4e38)")


def _value_kind(x: np.ndarray) -> ValueKind:
    if ((x == 0) | (x == 1)).all():
        return "binary"
    return "unit" if x.min() >= 0 and x.max() <= 1 else "real"


def _read_npz(path: Path) -> Parts:
    """Arrays x/X (or the only array) with optional y/labels, or x_train/x_valid/x_test style splits."""
    arrays = load_npz(path)  # headers checked against the archive and the memory budget first

    def first(*keys: str) -> np.ndarray | None:
        return next((arrays[k] for k in keys if k in arrays), None)

    parts: Parts = {}
    for split, aliases in SPLIT_KEYS.items():
        for a in aliases:
            x = first(f"x_{a}", f"X_{a}", a)
            if x is not None:
                parts[split] = (x, first(f"y_{a}", f"labels_{a}", f"{a}_labels", f"{a}_y"))
                break
    if parts:
        if "train" not in parts:
            raise DataError(f"{path}: has {', '.join(parts)} splits but no training split (x_train or train)")
        return parts
    x = first("x", "X")
    y = first("y", "labels")
    if x is None:
        others = [k for k in arrays if k not in ("y", "labels")]
        if len(others) != 1:
            held = ", ".join(arrays) or "nothing"
            raise DataError(f"{path}: expected an array named 'x' or 'X' (or a single array); it holds: {held}")
        x = arrays[others[0]]
    return {"all": (x, y)}


def _read_csv(path: Path, label_column: str | int | None) -> tuple[Parts, tuple[str, ...] | None]:
    """Numbers, one example a row; an optional header row; `label_column` (name or 0-based index) as labels."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as text ({e})") from None
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix == ".tsv" else max(",;\t", key=first_line.count)
    lines = csv_rows(text.splitlines(), delimiter, path)
    rows = [(i + 1, r) for i, r in enumerate(lines) if any(c.strip() for c in r)]  # (line number, cells)
    if not rows:
        raise DataError(f"{path}: empty csv file (expected one example per row)")

    def is_number(cell: str) -> bool:
        try:
            float(cell)
            return True
        except ValueError:
            return False

    width = len(rows[0][1])
    label_idx: int | None = None
    if isinstance(label_column, str) and label_column.lstrip("-").isdigit():
        label_column = int(label_column)
    if isinstance(label_column, int):
        if not -width <= label_column < width:
            raise DataError(f"{path}: label_column {label_column} is out of range for {width} columns")
        label_idx = label_column % width
    header: list[str] | None = None
    # The first row is a header when a (non-label) cell is not a number, or a label column is named.
    if isinstance(label_column, str) or any(not is_number(c) for j, c in enumerate(rows[0][1]) if j != label_idx):
        header = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    if isinstance(label_column, str):
        if label_column not in header:
            raise DataError(f"{path}: no column named {label_column!r} (columns: {', '.join(header)})")
        label_idx = header.index(label_column)
    if not rows:
        raise DataError(f"{path}: no data rows below the header")
    features = [j for j in range(width) if j != label_idx]
    x = np.empty((len(rows), len(features)), dtype=np.float64)
    labels: list[str] = []
    for r, (line, row) in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path}: row {line} has {len(row)} columns, expected {width}")
        for k, j in enumerate(features):
            cell = row[j].strip()
            name = f"column {j + 1}" + (f" ({header[j]!r})" if header else "")
            try:
                x[r, k] = float(cell)
            except ValueError:
                what = "is empty (missing values are not supported)" if not cell else f"holds {cell!r}, not a number"
                raise DataError(f"{path}: row {line}, {name} {what}") from None
            if not np.isfinite(x[r, k]):
                if cell.lower().lstrip("+-") not in ("inf", "infinity", "nan"):  # a number too large for a double
                    raise DataError(f"{path}: value {cell} at row {line}, {name} is outside the float32 range "
                                    "(±3.4e38)")
                raise DataError(f"{path}: row {line}, {name} holds the non-finite value {cell!r}")
            if abs(x[r, k]) > np.finfo(np.float32).max:
                raise DataError(f"{path}: value {x[r, k]:g} at row {line}, {name} is outside the float32 range "
                                "(±3.4e38)")
        if label_idx is not None:
            labels.append(row[label_idx].strip())
    y = None
    if label_idx is not None:
        y = np.array([float(v) for v in labels]) if all(is_number(v) for v in labels) else np.array(labels)
    names = tuple(header[j] for j in features) if header else None
    return {"all": (x, y)}, names


def image_files(folder: Path) -> tuple[list[Path], np.ndarray | None, tuple[str, ...] | None]:
    """(image paths, labels or None, class names or None) of an image folder: images directly in it, or one
    subfolder per class (names sorted, each searched recursively); nothing is decoded."""

    def images_in(paths: list[Path]) -> list[Path]:
        return sorted(p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    top = images_in(list(folder.iterdir()))
    classes = {d.name: images_in(list(d.rglob("*"))) for d in sorted(folder.iterdir()) if d.is_dir()}
    classes = {name: files for name, files in classes.items() if files and not name.startswith(".")}
    if top and classes:
        raise DataError(f"{folder}: holds images both directly and in subfolders (use one subfolder per class)")
    if not top and not classes:
        raise DataError(f"{folder}: no PNG or JPEG images (expected images, or one subfolder of images per class)")
    files = top or [p for f in classes.values() for p in f]
    y = np.repeat(np.arange(len(classes)), [len(f) for f in classes.values()]) if classes else None
    return files, y, tuple(classes) if classes else None


def image_sizes(folder: Path, files: list[Path]) -> tuple[int, int, bool]:
    """(width, height, any colour) from every image's header; a DataError for mixed sizes (nothing decoded)."""
    size, colour = None, False
    for p in files:
        width, height, mode = image_header(p)
        if size is None:
            size = (width, height)
        elif (width, height) != size:
            raise DataError(
                f"{folder}: images must all have the same size; {p.relative_to(folder)} is "
                f"{width}x{height} but {files[0].relative_to(folder)} is {size[0]}x{size[1]}"
            )
        colour = colour or mode not in GREY_MODES
    return size[0], size[1], colour


def _read_image_folder(folder: Path) -> tuple[Parts, tuple[str, ...] | None]:
    """All images of one size; one subfolder per class (names sorted) gives labels."""
    from PIL import UnidentifiedImageError

    files, y, class_names = image_files(folder)
    # Sizes from the headers first (nothing decoded): a decompression bomb, mixed sizes or a folder too large
    # for the memory budget is an error before any image is decoded.
    width, height, colour = image_sizes(folder, files)
    size = (width, height)
    channels = 3 if colour else 1
    check_load(len(files) * size[0] * size[1] * channels, 2,  # the decoded list and its stack
               f"loading {len(files):,} images of {size[0]}x{size[1]} pixels from {folder}")
    pictures: list[np.ndarray] = []
    size = None
    for p in files:
        try:
            with open_image(p) as im:
                im = im.convert("L") if im.mode in GREY_MODES else im.convert("RGB")
                pictures.append(np.asarray(im, dtype=np.uint8))  # (H, W) grey or (H, W, 3) colour
                if size is None:
                    size = im.size
                elif im.size != size:
                    raise DataError(
                        f"{folder}: images must all have the same size; {p.relative_to(folder)} is "
                        f"{im.size[0]}x{im.size[1]} but {files[0].relative_to(folder)} is {size[0]}x{size[1]}"
                    )
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DataError(f"{p}: cannot read image ({e})") from None
    if any(a.ndim == 3 for a in pictures):  # some colour: all become RGB
        pictures = [np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in pictures]
    x = np.stack(pictures)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # -> (N, C, H, W) uint8
    return {"all": (x, y)}, class_names


def _read(path: Path, label_column: str | int | None) -> tuple[Parts, tuple[str, ...] | None, tuple | None]:
    """(parts, class names, feature names) of any supported path."""
    suffix = path.suffix.lower()
    if label_column is not None and (path.is_dir() or suffix not in (".csv", ".tsv")):
        raise DataError(f"option label_column applies to .csv files only, not to {path}")
    if path.is_dir():
        return (*_read_image_folder(path), None)
    if suffix == ".npy":
        return {"all": (load_npy(path), None)}, None, None  # header checked against file and budget first
    if suffix == ".npz":
        return _read_npz(path), None, None
    if suffix in (".csv", ".tsv"):
        parts, feature_names = _read_csv(path, label_column)
        return parts, None, feature_names
    kind = suffix or "(none)"
    raise DataError(f"{path}: unsupported data file type {kind!r} (expected .npy, .npz, .csv, or an image folder)")


def _tensors(parts: Parts, name: str) -> tuple[dict[str, tuple], tuple[str, ...] | None]:
    """Parts as (x float32, y int64 or None) tensors, and class names where the labels were text."""
    events = {k: _to_events(np.asarray(x), name if k == "all" else f"{name} ({k})") for k, (x, _) in parts.items()}
    shapes = {x.shape[1:] for x, _ in events.values()}
    if len(shapes) > 1:
        raise DataError(f"{name}: splits have different example shapes: {', '.join(map(str, sorted(shapes)))}")
    for k, (x, _) in events.items():
        n_bad, at = count_nonfinite(torch.from_numpy(x))  # index in the file's layout, before any shuffling
        if n_bad:
            where = "" if k == "all" else f" of split {k!r}"
            raise DataError(f"data set {name!r} contains {n_bad} non-finite values (first at index {at}{where})")
    # Labels of all labelled splits together, so text classes get the same numbers everywhere.
    labelled = [k for k, (_, y) in parts.items() if y is not None]
    for k in labelled:
        if len(parts[k][1]) != len(events[k][0]):
            where = "" if k == "all" else f" in split {k!r}"
            raise DataError(f"{name}: {len(parts[k][1])} labels for {len(events[k][0])} examples{where}")
    ys: dict[str, torch.Tensor] = {}
    class_names = None
    if labelled:
        sizes = [len(events[k][0]) for k in labelled]
        y_all, class_names = _labels(
            np.concatenate([np.asarray(parts[k][1]).reshape(n, -1) for k, n in zip(labelled, sizes)]), sum(sizes), name
        )
        bounds = np.cumsum([0] + sizes)
        ys = {k: torch.from_numpy(y_all[lo:hi]) for k, lo, hi in zip(labelled, bounds[:-1], bounds[1:])}
    tensors = {k: (torch.from_numpy(x), ys.get(k)) for k, (x, _) in events.items()}
    return tensors, class_names


def load_path(
    path: str | Path,
    *,
    seed: int = 0,
    binarize: str | None = None,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    label_column: str | int | None = None,
) -> DataBundle:
    """A bundle from a .npy/.npz/.csv/.tsv file or an image folder; split by seed unless the file has splits."""
    path = Path(path)
    if binarize is not None and path.suffix.lower() in (".csv", ".tsv"):
        raise DataError(f"option binarize={binarize!r} applies to image data, not to the table {path}")
    parts, class_names, feature_names = _read(path, label_column)
    tensors, text_classes = _tensors(parts, path.name)
    class_names = text_classes or class_names
    # Split off what the file does not split itself; a fraction for a split the file has does not apply.
    fractions = {"valid": (valid_fraction, DEFAULT_VALID_FRACTION), "test": (test_fraction, DEFAULT_TEST_FRACTION)}
    for s, (value, default) in fractions.items():
        if s in tensors and value != default:
            raise DataError(f"option {s}_fraction does not apply: {path} has its own {s!r} split")
    base = tensors.pop("all") if "all" in tensors else tensors.pop("train")
    vf, tf = (0.0 if s in tensors else fractions[s][0] for s in ("valid", "test"))
    splits = split_tensors(*base, vf, tf, seed)
    splits.update({k: Split(*v) for k, v in tensors.items()})
    splits = {k: splits[k] for k in ("train", "valid", "test") if k in splits}
    kind = _value_kind(torch.cat([s.x.reshape(len(s), -1) for s in splits.values()]).numpy())
    meta: dict = {"path": str(path.resolve()), "split_seed": seed}
    if feature_names:
        meta["feature_names"] = feature_names
    standardizer = None
    if kind == "real":  # standardise with the training split's statistics
        standardizer = Standardizer.fit(splits["train"].x)
        splits = {k: Split(standardizer.transform(s.x), s.y) for k, s in splits.items()}
    bundle = DataBundle(
        name=path.name,
        splits=splits,
        event_shape=tuple(splits["train"].x.shape[1:]),
        value_kind=kind,
        num_classes=len(class_names) if class_names else 0,
        class_names=class_names,
        meta=meta,
        standardizer=standardizer,
    )
    return apply_binarize(bundle, binarize)  # a DataError unless the data are [0, 1] images
