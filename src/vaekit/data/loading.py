"""`load_data`: a registered name or a path -> a validated `DataBundle`.

Loaders are plain functions registered in `DATASETS`; their keyword parameters say which options they take
(`root`, `seed`, `binarize`, `valid_fraction`, `test_fraction`, `label_column`). An option set by the user that a
loader does not take is a `DataError`, except `root` and `seed`, which are passed only where they are used.
The helpers the loaders share live in `vaekit.data.common`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from pathlib import Path
from typing import Any

import torch

from ..core.runtime import parse_memory_limit
from ..errors import DataError, ResourceError
from .base import DATASETS, FILE_LOADERS, VALUE_CHECKS, DataBundle, Split
from .common import (
    BINARIZE_MODES,
    DEFAULT_MAX_LEN,
    DEFAULT_TEST_FRACTION,
    DEFAULT_VALID_FRACTION,
    DEFAULT_VOCAB_SIZE,
    check_fractions,
    count_nonfinite,
    limit_bundle,
)
from .files import load_path
from .streaming import is_streamed

log = logging.getLogger(__name__)


def validate_bundle(bundle: DataBundle) -> DataBundle:
    """Check a loader's bundle and normalise dtypes: float32 x, int64 y, num_classes from the labels."""
    name = bundle.name
    if not bundle.splits or all(len(s) == 0 for s in bundle.splits.values()):
        raise DataError(f"data set {name!r} is empty")
    if "train" not in bundle.splits:
        raise DataError(f"data set {name!r} has no 'train' split (it has: {', '.join(bundle.splits)})")
    if bundle.value_kind not in ("binary", "unit", "real", *VALUE_CHECKS):
        raise DataError(f"data set {name!r} has unknown value kind {bundle.value_kind!r}")
    if bundle.value_kind in VALUE_CHECKS:  # values that are not float arrays (token ids) have their own checks
        return VALUE_CHECKS[bundle.value_kind](bundle)
    splits: dict[str, Split] = {}
    max_label = -1
    for split_name, split in bundle.splits.items():
        x = split.x.to(torch.float32)
        streamed = is_streamed(x)  # its values were checked by the one pass that opened it (stream_bundle.scan)
        if x.ndim < 1 or x.shape[0] == 0:
            raise DataError(f"data set {name!r} has an empty {split_name!r} split")
        if tuple(x.shape[1:]) != tuple(bundle.event_shape):
            raise DataError(
                f"data set {name!r}: {split_name!r} examples have shape {tuple(x.shape[1:])}, "
                f"expected {tuple(bundle.event_shape)}"
            )
        n_bad, first = (0, None) if streamed else count_nonfinite(x)
        if n_bad:
            at = first[0] if len(first) == 1 else first
            raise DataError(
                f"data set {name!r} contains {n_bad} non-finite values (first at index {at} of split {split_name!r})"
            )
        graded = bundle.dynamic_binarize and split_name == "train"  # grey levels, resampled per batch
        if streamed:
            pass
        elif (bundle.value_kind == "binary" and not graded) and not bool(((x == 0) | (x == 1)).all()):
            raise DataError(f"data set {name!r} is marked binary but {split_name!r} holds values other than 0 and 1")
        elif bundle.value_kind == "unit" or graded:
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
    max_len: int = DEFAULT_MAX_LEN,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    memory_limit: str | None = None,
) -> DataBundle:
    """Load a registered data set (`spec` = its name) or the user's data at path `spec`, validated. Each option
    the user sets must be one the data set's loader takes (`max_len` and `vocab_size`, for instance, are options of
    data sets of sentences: words kept per sentence, most frequent tokens kept).

    Data whose float32 values (all splits, estimated from headers before loading) exceed `memory_limit` (a size
    such as "200M"; None: vaekit's memory budget, `vaekit.core.limits.memory_budget`) are streamed from disk when the
    format allows (.npy, uncompressed IDX, image folders: splits of `vaekit.data.streaming.Rows`); otherwise a
    ResourceError says what to do. Data that fit are loaded into memory as tensors."""
    limit_bytes = parse_memory_limit(memory_limit, "memory_limit")
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
    if max_len != DEFAULT_MAX_LEN:
        options["max_len"] = max_len
    if vocab_size != DEFAULT_VOCAB_SIZE:
        options["vocab_size"] = vocab_size

    if isinstance(spec, str) and spec in DATASETS:
        loader = DATASETS.get(spec)
        params = inspect.signature(loader).parameters
        _check_options(loader, options, f"data set {spec!r}")
        kwargs = dict(options)
        if "root" in params:
            kwargs["root"] = root
        if "seed" in params:
            kwargs["seed"] = seed
        if _should_stream(spec, root, limit_bytes, memory_limit):
            from .stream_bundle import stream_idx

            bundle = stream_idx(spec, root, options.get("binarize"))
        else:
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
        file_loader = FILE_LOADERS.get(path.suffix.lower())  # e.g. a .txt file of sentences
        _check_options(file_loader or load_path, options, f"the file {path}")
        if file_loader is not None:
            bundle = file_loader(path, seed=seed, **options)
        elif _should_stream(path, None, limit_bytes, memory_limit):
            from .stream_bundle import stream_path

            bundle = stream_path(path, seed=seed, **options)
        else:
            bundle = load_path(path, seed=seed, **options)
    if limit is not None:
        bundle = limit_bundle(bundle, limit)
    settings = {"limit": limit, "seed": seed, **options}
    bundle = dataclasses.replace(bundle, meta={**bundle.meta, "options": settings})
    return validate_bundle(bundle)


# The data options a loader may take (the data.* keys that reach it), for messages.
LOADER_OPTIONS = ("binarize", "valid_fraction", "test_fraction", "label_column", "max_len", "vocab_size")


def _check_options(loader, options: dict[str, Any], what: str) -> None:
    """A DataError naming the first option the user set that `loader` does not take, and those it takes."""
    params = inspect.signature(loader).parameters
    for key, value in options.items():
        if key not in params:
            takes = [p for p in params if p in LOADER_OPTIONS]
            raise DataError(f"option {key}={value!r} does not apply to {what} "
                            f"(it takes: {', '.join(takes) or 'no options'})")


def _should_stream(spec, root, limit_bytes: int, memory_limit: str | None) -> bool:
    """True when data set `spec` would not fit `limit_bytes` in memory and can stream; a one-line ResourceError
    when it would not fit and cannot stream; False when it fits or its size is unknown before loading."""
    from ..core.limits import ENV_VAR, format_bytes
    from .stream_bundle import estimate_size

    estimate = estimate_size(spec, root)
    if estimate is None or estimate.nbytes <= limit_bytes:
        return False
    limit = f"data.memory_limit={memory_limit}" if memory_limit is not None else f"the memory budget ({ENV_VAR})"
    sizes = f"{format_bytes(estimate.nbytes)} in memory as float32, over {limit} of {format_bytes(limit_bytes)}"
    if not estimate.streamable:
        raise ResourceError(f"{estimate.what} needs {sizes}, and this format cannot be streamed: {estimate.advice}")
    log.info("streaming %s from disk: it needs %s", estimate.what, sizes)
    return True
