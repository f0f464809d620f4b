"""Helpers shared by the data loaders: where data sets live, train/valid/test splits, binarization.

Lower than `loading` (which dispatches a name or a path to a loader) and the loaders themselves (`builtin`,
`mnist`, `shapes`, `files`), which all import from here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import torch

from ..errors import DataError
from .base import DataBundle, Split

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
