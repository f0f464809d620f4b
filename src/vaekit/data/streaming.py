"""Data larger than memory: rows read from disk on demand, and the mini-batch iterator over them.

A streamed split's `x` is a `Rows` object that stands where the in-memory (N, *event) float32 tensor stood:
`len`, `.shape`, `.ndim`, `.dtype` (float32), `.device`, `.to(device)`, and indexing by a slice, an int, or a 1-D
tensor / array of row indices returns a float32 tensor converted exactly as the in-memory loader converts
(`vaekit.data.files.apply_layout`: grey levels 0..255 -> [0, 1], images (N, C, H, W), ...). Sources:

    NpySource          a .npy file, memory-mapped (np.load(mmap_mode="r"))
    IdxSource          an uncompressed IDX file, memory-mapped at its header offset (gzip cannot be mapped)
    ImageFolderSource  image files (the folder layout of vaekit.data.files), decoded on demand
    RowView            the rows `index` of another Rows (a split), optionally standardised or binarised per batch

Rows are read in sorted order (locality on disk) and returned in the requested order. Mapped pages count in the
process's resident memory until released, so a contiguous slice is read through the mapping and its pages are
released right after (madvise DONTNEED; they stay in the page cache). Scattered rows (a shuffled batch) are read
with pread, one call per run of consecutive rows, into the batch itself: on the kernel this was measured on (Linux
6.18, large page-cache folios), touching 512 random rows of a mapping made ~200 MB of it resident at once.

`batch_loader(split, index_batches, workers)` yields the Split of each index batch in the given order, through
a torch DataLoader (reading overlaps compute) when the split is streamed.
"""

from __future__ import annotations

import copy
import math
import mmap
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import DataError, ResourceError
from .base import Split
from .files import EventLayout, apply_layout

CPU = torch.device("cpu")


def _positions(index, n: int) -> tuple[slice | np.ndarray, bool]:
    """`index` as a step-1 slice or an int64 array of rows in [0, n); True when it was a single int."""
    if isinstance(index, slice):
        lo, hi, step = index.indices(n)
        return (slice(lo, max(lo, hi)) if step == 1 else np.arange(lo, hi, step)), False
    if isinstance(index, (int, np.integer)):
        if not -n <= int(index) < n:
            raise IndexError(f"row {int(index)} is out of range for {n} rows")
        return np.array([int(index) % n]), True
    rows = index.detach().cpu().numpy() if torch.is_tensor(index) else np.asarray(index)
    if rows.dtype == bool:
        rows = np.flatnonzero(rows)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise IndexError(f"rows must be a slice or a 1-D array of row numbers, got {rows.dtype} {rows.shape}")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(f"row {int(rows.min() if rows.min() < -n else rows.max())} is out of range for {n} rows")
    return rows % max(n, 1), False


class Rows:
    """Rows of a data set read on demand, indexed like the (N, *event) float32 tensor they stand for."""

    dtype = torch.float32

    def __init__(self, shape: Sequence[int]) -> None:
        self.shape = torch.Size(int(s) for s in shape)
        self._device = CPU

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def to(self, *args, **kwargs) -> "Rows":
        """Itself for the CPU and float32; for another device, rows that are read here and then moved there."""
        target = kwargs.get("device", kwargs.get("dtype", args[0] if args else None))
        if isinstance(target, torch.dtype):
            if target != torch.float32:
                raise DataError(f"streamed data are read as float32, not {target}")
            return self
        device = torch.device(target) if target is not None else CPU
        if device == self._device:
            return self
        moved = copy.copy(self)
        moved._device = device
        return moved

    def cpu(self) -> "Rows":
        return self.to(CPU)

    def __getitem__(self, index) -> torch.Tensor:
        rows, single = _positions(index, len(self))
        out = self._take(rows)  # (n, *event) float32 on the CPU
        out = out[0] if single else out
        return out if self._device == CPU else out.to(self._device)

    def _take(self, rows: slice | np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={tuple(self.shape)})"


class Source(Rows):
    """Rows of one file or folder: `raw(rows)` in the file's layout, converted by `layout` (set once scanned)."""

    def __init__(self, raw_shape: Sequence[int], layout: EventLayout = EventLayout()) -> None:
        self.raw_shape = tuple(int(s) for s in raw_shape)
        self.layout = layout
        super().__init__(self._event_shape())

    def _event_shape(self) -> tuple[int, ...]:
        empty = np.zeros((1, *self.raw_shape[1:]), dtype=np.uint8)  # the layout's shape, from one dummy row
        return (self.raw_shape[0], *apply_layout(empty, self.layout).shape[1:])

    def with_layout(self, layout: EventLayout) -> "Source":
        """This source converting by `layout`."""
        out = copy.copy(self)
        out.layout = layout
        Rows.__init__(out, out._event_shape())
        return out

    def raw(self, rows: slice | np.ndarray) -> np.ndarray:
        """The rows (a slice, or sorted row numbers) as stored: (n, *raw_shape[1:])."""
        raise NotImplementedError

    def _take(self, rows: slice | np.ndarray) -> torch.Tensor:
        if isinstance(rows, slice):
            return torch.from_numpy(apply_layout(self.raw(rows), self.layout))
        order = np.argsort(rows, kind="stable")  # read in file order, return in the requested one
        values = apply_layout(self.raw(rows[order]), self.layout)
        out = np.empty_like(values)
        out[order] = values
        return torch.from_numpy(out)


class _Mapped(Source):
    """A source over a memory-mapped array, opened lazily (so that it pickles cheaply into DataLoader workers)."""

    def __init__(self, path: Path, raw_shape: Sequence[int], layout: EventLayout = EventLayout()) -> None:
        self.path = Path(path)
        self._array: np.ndarray | None = None
        self._file = None  # opened on the first scattered read
        super().__init__(raw_shape, layout)

    def _open(self) -> np.ndarray:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None, "_file": None}  # each process opens the file itself

    def raw(self, rows: slice | np.ndarray) -> np.ndarray:
        if self._array is None:
            self._array = self._open()
        if not isinstance(rows, slice) and self._array.flags.c_contiguous and len(rows):
            return self._gather(rows)
        values = np.array(self._array[rows])  # a copy in memory: the mapped pages can go
        self.release()
        return values

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        """Sorted rows read with pread straight into the result, one call per run of consecutive rows."""
        if self._file is None:
            self._file = open(self.path, "rb", buffering=0)
        out = np.empty((len(rows), *self.raw_shape[1:]), dtype=self._array.dtype)
        row_bytes = out.nbytes // len(rows)
        view = memoryview(out.reshape(-1).view(np.uint8))
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            lo, hi = int(a) * row_bytes, int(b) * row_bytes
            at = self._array.offset + int(rows[a]) * row_bytes
            while lo < hi:  # a regular file returns all but at its end
                got = os.preadv(self._file.fileno(), [view[lo:hi]], at)
                if got <= 0:
                    raise DataError(f"{self.path}: the file ended before row {int(rows[b - 1])} (truncated?)")
                lo, at = lo + got, at + got
        return out

    def release(self) -> None:
        """Drops the mapped pages from this process's resident memory (the page cache keeps them)."""
        handle = getattr(self._array, "_mmap", None)
        if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            handle.madvise(mmap.MADV_DONTNEED)


class NpySource(_Mapped):
    """A .npy file's rows through np.load(mmap_mode="r")."""

    def __init__(self, path: Path, layout: EventLayout = EventLayout()) -> None:
        array = self._load(path)
        self.raw_dtype = array.dtype
        super().__init__(path, array.shape, layout)

    @staticmethod
    def _load(path: Path) -> np.ndarray:
        from .common import check_npy_stream

        try:
            with open(path, "rb") as fp:  # the header checked against the file's size before it is mapped
                check_npy_stream(fp, str(path), os.fstat(fp.fileno()).st_size, budget=False)
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, OverflowError) as e:
            raise DataError(f"{path}: cannot map as .npy ({str(e).splitlines()[0] if str(e) else e})") from None

    def _open(self) -> np.ndarray:
        return self._load(self.path)


class IdxSource(_Mapped):
    """An uncompressed IDX file's rows, memory-mapped at its header offset (`vaekit.data.mnist` reads the header)."""

    def __init__(self, path: Path, raw_shape: Sequence[int], dtype: np.dtype, offset: int,
                 layout: EventLayout = EventLayout()) -> None:
        self.raw_dtype, self.offset = np.dtype(dtype), int(offset)
        super().__init__(path, raw_shape, layout)

    def _open(self) -> np.ndarray:
        return np.memmap(self.path, dtype=self.raw_dtype, mode="r", offset=self.offset, shape=self.raw_shape)


class ImageFolderSource(Source):
    """Image files of one size decoded on demand into (n, C, H, W) uint8, C = 3 when any image is in colour."""

    def __init__(self, files: Sequence[Path], width: int, height: int, colour: bool,
                 layout: EventLayout = EventLayout()) -> None:
        self.files = [Path(p) for p in files]
        self.colour = colour
        self.raw_dtype = np.dtype(np.uint8)
        super().__init__((len(self.files), 3 if colour else 1, height, width), layout)

    def raw(self, rows: slice | np.ndarray) -> np.ndarray:
        from PIL import UnidentifiedImageError

        from .common import open_image
        from .files import GREY_MODES

        picked = range(*rows.indices(len(self.files))) if isinstance(rows, slice) else rows
        out = np.empty((len(picked), *self.raw_shape[1:]), dtype=np.uint8)
        for i, r in enumerate(picked):
            path = self.files[int(r)]
            try:
                with open_image(path) as im:
                    a = np.asarray(im.convert("L") if im.mode in GREY_MODES else im.convert("RGB"), dtype=np.uint8)
            except (OSError, UnidentifiedImageError, ValueError) as e:
                raise DataError(f"{path}: cannot read image ({e})") from None
            if a.shape[:2] != self.raw_shape[2:]:
                raise DataError(f"{path}: is {a.shape[1]}x{a.shape[0]} pixels, the folder's images "
                                f"{self.raw_shape[3]}x{self.raw_shape[2]}")
            out[i] = a[None] if a.ndim == 2 and not self.colour else (
                np.repeat(a[None], 3, axis=0) if a.ndim == 2 else a.transpose(2, 0, 1))  # -> (C, H, W)
        return out


class RowView(Rows):
    """The rows `index` (int64, positions in `base`; None = all, in order) of another Rows, with per-batch
    `standardizer` (tabular reals), `threshold` (x > 0.5) or `bernoulli_seed` (one fixed Bernoulli draw per
    example, seeded by (seed, position in this view): the evaluation splits of dynamic binarization)."""

    def __init__(self, base: Rows, index: np.ndarray | None = None, *, standardizer=None, threshold: bool = False,
                 bernoulli_seed: int | None = None) -> None:
        self.base = base
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self.standardizer, self.threshold, self.bernoulli_seed = standardizer, threshold, bernoulli_seed
        n = len(base) if self.index is None else len(self.index)
        super().__init__((n, *base.shape[1:]))

    def replace(self, **changes) -> "RowView":
        """The same rows with other per-batch options."""
        options = dict(standardizer=self.standardizer, threshold=self.threshold, bernoulli_seed=self.bernoulli_seed)
        return RowView(self.base, self.index, **{**options, **changes})

    def head(self, n: int) -> "RowView":
        """The first `n` rows (a view: nothing is copied)."""
        index = np.arange(min(n, len(self.base))) if self.index is None else self.index[:n]
        return RowView(self.base, index, standardizer=self.standardizer, threshold=self.threshold,
                       bernoulli_seed=self.bernoulli_seed)

    def base_rows(self) -> np.ndarray:
        """Positions in `base` of every row of this view (int64)."""
        return np.arange(len(self.base)) if self.index is None else self.index

    def _take(self, rows: slice | np.ndarray) -> torch.Tensor:
        positions = rows
        if self.index is not None:
            rows = self.index[rows]
        x = self.base._take(rows)
        if self.standardizer is not None:
            x = self.standardizer.transform(x)
        if self.threshold:
            x = (x > 0.5).to(torch.float32)
        if self.bernoulli_seed is not None:
            x = _fixed_bernoulli(x, positions, self.bernoulli_seed)
        return x


def _fixed_bernoulli(p: torch.Tensor, positions: slice | np.ndarray, seed: int) -> torch.Tensor:
    """x ~ Bernoulli(p), row i drawn from a generator seeded by (seed, position of row i): the same value for
    the same example however the rows are read."""
    rows = np.arange(positions.start, positions.stop) if isinstance(positions, slice) else positions
    event = tuple(p.shape[1:])
    u = np.stack([np.random.default_rng((int(seed), int(r))).random(event, dtype=np.float32) for r in rows]) \
        if len(rows) else np.empty((0, *event), dtype=np.float32)
    return (torch.from_numpy(u) < p.clamp(0.0, 1.0)).to(torch.float32)


def is_streamed(x) -> bool:
    """True when `x` is read on demand (a `Rows`), False for an in-memory tensor."""
    return isinstance(x, Rows)


# --- mini-batches --------------------------------------------------------------------------------------------


def _split_rows(split: Split, index: torch.Tensor) -> Split:
    return Split(split.x[index], None if split.y is None else split.y[index],
                 None if split.mask is None else split.mask[index])


class _Positions(torch.utils.data.Dataset):
    """The DataLoader's dataset: hands each whole index batch to the collate function, which reads it."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    def __getitems__(self, index: torch.Tensor) -> torch.Tensor:
        return index


class _ReadRows:
    """The collate function: the rows of one index batch of `split`, read (in a worker process) from its source."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __call__(self, index: torch.Tensor) -> Split:
        return _split_rows(self.split, index)


def batch_loader(split: Split, index_batches: Iterable, workers: int = 0) -> Iterator[Split]:
    """The Split of each index batch (a 1-D tensor or sequence of row numbers of `split`), in the given order:
    every example of every batch once. An in-memory split is indexed directly; a streamed one is read by a torch
    DataLoader with `workers` processes (0: in this process), which reads ahead while the caller computes."""
    if workers < 0:
        raise DataError(f"workers must be >= 0, got {workers}")
    batches = (torch.as_tensor(b, dtype=torch.int64).cpu() for b in index_batches)  # CPU ints: they go to workers
    if not is_streamed(split.x):
        for index in batches:
            yield _split_rows(split, index.to(split.x.device))
        return
    device = split.x.device
    on_cpu = Split(split.x.to(CPU), None if split.y is None else split.y.cpu(),
                   None if split.mask is None else split.mask.to(CPU))  # workers read on the CPU
    loader = DataLoader(_Positions(len(split)), batch_sampler=batches, num_workers=workers,
                        collate_fn=_ReadRows(on_cpu), pin_memory=False, persistent_workers=False)
    for batch in loader:
        yield batch if device == CPU else Split(*(None if t is None else t.to(device) for t in
                                                  (batch.x, batch.y, batch.mask)))


def batch_bytes(split: Split, batch_size: int, workers: int = 0) -> int:
    """Bytes of the float32 batches held at once: the one in use and, with workers, the 2 each reads ahead."""
    per_row = math.prod(split.x.shape[1:]) * 4 * (2 if split.mask is not None else 1)
    return int(batch_size) * per_row * (1 + 2 * int(workers))


def check_batch_fits(split: Split, batch_size: int, memory_limit_bytes: int, workers: int = 0) -> int:
    """The bytes of the batches held at once (`batch_bytes`) when they fit `memory_limit_bytes`, else a one-line
    ResourceError; the training loop calls it before the first streamed epoch."""
    from ..core.limits import format_bytes

    need = batch_bytes(split, batch_size, workers)
    if need > memory_limit_bytes:
        held = f"{1 + 2 * workers} batches" if workers else "one batch"
        raise ResourceError(f"{held} of {batch_size} examples of shape {tuple(split.x.shape[1:])} need "
                            f"{format_bytes(need)}, over the memory limit of {format_bytes(memory_limit_bytes)}; "
                            f"raise data.memory_limit, lower train.batch_size or data.workers")
    return need


__all__ = ["Rows", "NpySource", "IdxSource", "ImageFolderSource", "RowView", "batch_loader", "check_batch_fits",
           "batch_bytes", "is_streamed"]
