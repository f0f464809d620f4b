"""`load_data`: a registered name or a path -> a validated `DataBundle`, and helpers shared by the loaders.

Loaders are plain functions registered in `DATASETS`; their keyword parameters say which options they take
(`root`, `seed`, `binarize`, `valid_fraction`, `test_fraction`, `label_column`). An option set by the user that a
loader does not take is a `DataError`, except `root` and `seed`, which are passed only where they are used.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import DataError
from .base import DATASETS, DataBundle, Split

DEFAULT_VALID_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.2
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


def split_tensors(
    x: torch.Tensor, y: torch.Tensor | None, valid_fraction: float, test_fraction: float, seed: int
) -> dict[str, Split]:
    """Train/valid/test splits of a seeded permutation; a split whose fraction is 0 is left out (and with both 0
    the data stay in order as "train")."""
    check_fractions(valid_fraction, test_fraction)
    n = x.shape[0]
    if valid_fraction == 0 and test_fraction == 0:
        return {"train": Split(x, y)}
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
    splits = {}
    for name, (lo, hi) in bounds.items():
        if hi > lo:
            idx = perm[lo:hi]
            splits[name] = Split(x[idx], None if y is None else y[idx])
    return splits


def apply_binarize(bundle: DataBundle, mode: str | None) -> DataBundle:
    """Binarize [0, 1] image data: "threshold" (x > 0.5 everywhere) or "dynamic" (training batches are resampled
    by the training loop; valid/test are drawn once here with a fixed seed)."""
    if mode is None:
        return bundle
    if mode not in BINARIZE_MODES:
        raise DataError(f"binarize must be one of {', '.join(BINARIZE_MODES)} (or unset), got {mode!r}")
    if not bundle.is_image or bundle.value_kind != "unit":
        kind = "image" if bundle.is_image else "tabular"
        raise DataError(
            f"binarize={mode!r} applies to image data with grey levels in [0, 1]; "
            f"data set {bundle.name!r} is {kind} with {bundle.value_kind} values"
        )
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
    """Keep the first `limit` examples of every split (copies, so the full tensors can be freed)."""
    splits = {
        name: Split(s.x[:limit].clone(), None if s.y is None else s.y[:limit].clone())
        for name, s in bundle.splits.items()
    }
    return dataclasses.replace(bundle, splits=splits)


def count_nonfinite(x: torch.Tensor) -> tuple[int, tuple[int, ...] | None]:
    """How many values of `x` are NaN or infinite, and the index of the first."""
    bad = ~torch.isfinite(x)
    n = int(bad.sum())
    if n == 0:
        return 0, None
    return n, tuple(int(i) for i in bad.nonzero()[0])


def validate_bundle(bundle: DataBundle) -> DataBundle:
    """Check a loader's bundle and normalise dtypes: float32 x, int64 y, num_classes from the labels."""
    name = bundle.name
    if not bundle.splits or all(len(s) == 0 for s in bundle.splits.values()):
        raise DataError(f"data set {name!r} is empty")
    if "train" not in bundle.splits:
        raise DataError(f"data set {name!r} has no 'train' split (it has: {', '.join(bundle.splits)})")
    if bundle.value_kind not in ("binary", "unit", "real"):
        raise DataError(f"data set {name!r} has unknown value kind {bundle.value_kind!r}")
    splits: dict[str, Split] = {}
    max_label = -1
    for split_name, split in bundle.splits.items():
        x = split.x.to(torch.float32)
        if x.ndim < 1 or x.shape[0] == 0:
            raise DataError(f"data set {name!r} has an empty {split_name!r} split")
        if tuple(x.shape[1:]) != tuple(bundle.event_shape):
            raise DataError(
                f"data set {name!r}: {split_name!r} examples have shape {tuple(x.shape[1:])}, "
                f"expected {tuple(bundle.event_shape)}"
            )
        n_bad, first = count_nonfinite(x)
        if n_bad:
            at = first[0] if len(first) == 1 else first
            raise DataError(
                f"data set {name!r} contains {n_bad} non-finite values (first at index {at} of split {split_name!r})"
            )
        graded = bundle.dynamic_binarize and split_name == "train"  # grey levels, resampled per batch
        if (bundle.value_kind == "binary" and not graded) and not bool(((x == 0) | (x == 1)).all()):
            raise DataError(f"data set {name!r} is marked binary but {split_name!r} holds values other than 0 and 1")
        if bundle.value_kind == "unit" or graded:
            if float(x.min()) < 0 or float(x.max()) > 1:
                raise DataError(f"data set {name!r} is marked as [0, 1] values but {split_name!r} leaves that range")
        y = split.y
        if y is not None:
            if y.shape != (x.shape[0],):
                raise DataError(
                    f"data set {name!r}: {split_name!r} has {tuple(y.shape)} labels for {x.shape[0]} examples"
                )
            if y.is_floating_point() and not bool((y == y.round()).all()):
                raise DataError(f"data set {name!r}: labels of {split_name!r} are not whole numbers")
            y = y.to(torch.int64)
            if int(y.min()) < 0:
                raise DataError(f"data set {name!r}: labels of {split_name!r} are negative (first {int(y.min())})")
            max_label = max(max_label, int(y.max()))
        splits[split_name] = Split(x, y)
    if len(splits["train"]) < 2:
        raise DataError(f"data set {name!r} has {len(splits['train'])} training example; at least 2 are needed")
    num_classes = max(bundle.num_classes, max_label + 1)
    if bundle.class_names is not None and len(bundle.class_names) < num_classes:
        n_names = len(bundle.class_names)
        raise DataError(f"data set {name!r} has labels up to {max_label} but only {n_names} class names")
    return dataclasses.replace(bundle, splits=splits, num_classes=num_classes, event_shape=tuple(bundle.event_shape))


def load_data(
    spec: str | Path,
    root: str | Path | None = None,
    *,
    binarize: str | None = None,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    limit: int | None = None,
    seed: int = 0,
    label_column: str | int | None = None,
) -> DataBundle:
    """Load a registered data set (`spec` = its name) or the user's data at path `spec`, validated."""
    if binarize is not None and binarize not in BINARIZE_MODES:
        raise DataError(f"binarize must be one of {', '.join(BINARIZE_MODES)} (or unset), got {binarize!r}")
    check_fractions(valid_fraction, test_fraction)
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of examples, got {limit}")
    # Options the user set (differing from the defaults); each must be taken by the loader.
    options: dict[str, Any] = {}
    if binarize is not None:
        options["binarize"] = binarize
    if valid_fraction != DEFAULT_VALID_FRACTION:
        options["valid_fraction"] = valid_fraction
    if test_fraction != DEFAULT_TEST_FRACTION:
        options["test_fraction"] = test_fraction
    if label_column is not None:
        options["label_column"] = label_column

    if isinstance(spec, str) and spec in DATASETS:
        loader = DATASETS.get(spec)
        params = inspect.signature(loader).parameters
        for key, value in options.items():
            if key not in params:
                takes = [p for p in params if p in ("binarize", "valid_fraction", "test_fraction", "label_column")]
                raise DataError(
                    f"option {key}={value!r} does not apply to data set {spec!r} "
                    f"(it takes: {', '.join(takes) or 'no options'})"
                )
        kwargs = dict(options)
        if "root" in params:
            kwargs["root"] = root
        if "seed" in params:
            kwargs["seed"] = seed
        bundle = loader(**kwargs)
    else:
        path = Path(spec).expanduser()
        if not path.exists() and root is not None and (Path(root).expanduser() / path).exists():
            path = Path(root).expanduser() / path
        if not path.exists():
            raise DataError(
                f"unknown data set {str(spec)!r}: not a registered name (choose: {', '.join(DATASETS.names())}) "
                "nor an existing file or folder"
            )
        from .files import load_path  # here, not at the top: files.py imports this module's helpers

        bundle = load_path(path, seed=seed, **options)
    if limit is not None:
        bundle = limit_bundle(bundle, limit)
    settings = {"limit": limit, "seed": seed, **options}
    bundle = dataclasses.replace(bundle, meta={**bundle.meta, "options": settings})
    return validate_bundle(bundle)
