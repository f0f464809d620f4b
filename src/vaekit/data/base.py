"""The in-memory data set that every loader returns, and the data set registry.

Data sets here are small enough to live in memory as tensors (MNIST is 47M floats); the training loop slices
pre-shuffled tensors, which is faster than a DataLoader and needs no worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch

from ..core.registry import Registry
from .standardize import Standardizer

# What kind of values x holds; it picks the default likelihood:
#   "binary" -> {0, 1}                 (Bernoulli)
#   "unit"   -> [0, 1] grey levels      (Bernoulli as in pytorch/examples, or a continuous one)
#   "real"   -> standardised reals     (Gaussian)
#   "tokens" -> int64 token ids of sentences, (N, L) padded (the autoregressive `sentence` likelihood)
ValueKind = Literal["binary", "unit", "real", "tokens"]


@dataclass(frozen=True)
class Split:
    """One split: `x` is (N, *event_shape) float32 (int64 token ids for text), `y` is (N,) int64 labels or None, `mask` is None or
    (N, *event_shape) with 1 = observed, 0 = missing (missing entries of x hold 0)."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class DataBundle:
    """A data set with its splits ("train", "valid", "test") and what a model needs to know about it."""

    name: str
    splits: dict[str, Split]
    event_shape: tuple[int, ...]
    value_kind: ValueKind
    num_classes: int = 0
    class_names: tuple[str, ...] | None = None
    # Resample x ~ Bernoulli(x) for every training batch (dynamic binarization); evaluation splits are
    # binarized once with a fixed seed by the loader.
    dynamic_binarize: bool = False
    meta: dict = field(default_factory=dict)
    # How x was standardised, when it was (tabular data): saved with the run to scale new data the same way.
    standardizer: Standardizer | None = None
    # The likelihood used when model.likelihood names none (None: the one of `value_kind`, see vaekit.build).
    default_likelihood: str | None = None
    # The network used when model.network names none (None: "mlp").
    default_network: str | None = None
    # Token data: the vaekit.text.Vocabulary of the token ids in x (built from the training split).
    vocab: Any = None
    # The modality (vaekit.modalities) a loader names for its data; None: the one its shape says.
    modality_hint: str | None = None

    def split(self, name: str) -> Split:
        """The split called `name`; a DataError naming the available splits otherwise."""
        from ..errors import DataError

        if name in self.splits:
            return self.splits[name]
        raise DataError(f"data set {self.name!r} has no {name!r} split (it has: {', '.join(self.splits)})")

    @classmethod
    def from_arrays(cls, x, y=None, mask=None, *, valid: tuple | None = None, name: str = "arrays",
                    value_kind: ValueKind | None = None, standardizer: Standardizer | None = None) -> "DataBundle":
        """A bundle over in-memory arrays: training data `x` (N, *event) with optional labels `y` (N,) and
        observation mask (1 = observed), and optionally a validation split `valid` = (x, y, mask). Entries of x
        where the mask is 0 may hold anything (NaN included): they are set to 0. `value_kind` (which picks the
        default likelihood) is read from the values when not given."""
        from ..errors import DataError

        splits = {"train": _array_split(x, y, mask, "x")}
        if valid is not None:
            vx, vy, vmask = (tuple(valid) + (None, None))[:3]
            splits["valid"] = _array_split(vx, vy, vmask, "valid x")
            if splits["valid"].x.shape[1:] != splits["train"].x.shape[1:]:
                raise DataError(f"the validation data has shape {tuple(splits['valid'].x.shape[1:])} per example, "
                                f"the training data {tuple(splits['train'].x.shape[1:])}")
        if value_kind is None:
            observed = torch.cat([s.x[s.mask.bool()] if s.mask is not None else s.x.flatten() for s in splits.values()])
            value_kind = ("binary" if bool(((observed == 0) | (observed == 1)).all()) else
                          "unit" if bool(((observed >= 0) & (observed <= 1)).all()) else "real")
        labels = [s.y for s in splits.values() if s.y is not None]
        num_classes = max(int(t.max()) + 1 for t in labels) if labels else 0
        return cls(name=name, splits=splits, event_shape=tuple(splits["train"].x.shape[1:]), value_kind=value_kind,
                   num_classes=num_classes, standardizer=standardizer)

    @property
    def modality(self) -> str:
        """What its values are (a `vaekit.modalities` name): the one its loader names (`modality_hint`), else
        "image" for (C, H, W), "points" for 2-D points and "table" for other arrays."""
        return self.modality_hint if self.modality_hint is not None else array_modality(self.event_shape)

    @property
    def is_image(self) -> bool:
        """True for (C, H, W) data."""
        return len(self.event_shape) == 3


def array_modality(event_shape: tuple[int, ...]) -> str:
    """The modality (a `vaekit.modalities` name) of arrays of this shape: "image" for (C, H, W), "points" for 2-D
    points, else "table"."""
    if len(event_shape) == 3:
        return "image"
    return "points" if tuple(event_shape) == (2,) else "table"


# A loader takes the resolved options and returns a bundle.
DATASETS: Registry[Callable[..., DataBundle]] = Registry("dataset")
# Loaders of the user's files of a type other than the arrays, tables and images of vaekit.data.files, by suffix
# (".txt", registered by vaekit.text.data): (path, *, seed, **options) -> DataBundle; their signature says which
# data options they take.
FILE_LOADERS: dict[str, Callable[..., DataBundle]] = {}
# Checks of bundles whose values are not float arrays, by value kind ("tokens", registered by vaekit.text.data),
# in place of the array checks of vaekit.data.loading.validate_bundle.
VALUE_CHECKS: dict[str, Callable[[DataBundle], DataBundle]] = {}


def _array_split(x, y, mask, what: str) -> Split:
    """A Split from arrays or tensors, checked: numbers, finite where observed, matching lengths."""
    from ..errors import DataError

    try:
        raw = torch.as_tensor(x)
        xt = raw.to(torch.float32).clone()
    except (TypeError, ValueError, RuntimeError) as error:
        raise DataError(f"{what} is not an array of numbers ({error})") from None
    if raw.dtype == torch.float64:  # finite doubles beyond float32 would silently become infinities
        big = torch.isfinite(raw) & (raw.abs() > torch.finfo(torch.float32).max)
        if mask is not None and torch.as_tensor(mask).shape == raw.shape:
            big &= torch.as_tensor(mask).bool()
        if bool(big.any()):
            at = tuple(int(i) for i in big.nonzero()[0])
            raise DataError(f"{what}: value {float(raw[at]):g} at index {at} is outside the float32 range (±3.4e38)")
    if xt.dim() < 2 or xt.shape[0] == 0:
        raise DataError(f"{what} must be (examples, ...) with at least one example, got shape {tuple(xt.shape)}")
    mt = None
    if mask is not None:
        mt = torch.as_tensor(mask).to(torch.float32)
        if mt.shape != xt.shape:
            raise DataError(f"the mask has shape {tuple(mt.shape)}, {what} {tuple(xt.shape)}")
        if not bool(((mt == 0) | (mt == 1)).all()):
            raise DataError("the mask must hold 0 (missing) and 1 (observed) only")
        xt = torch.where(mt.bool(), xt, torch.zeros_like(xt))
    if not bool(torch.isfinite(xt).all()):
        raise DataError(f"{what} holds NaN or infinite values" + ("" if mask is not None else
                        " (mark missing entries with a mask)"))
    yt = None
    if y is not None:
        yt = torch.as_tensor(y)
        if yt.shape != (xt.shape[0],) or yt.is_floating_point() and not bool((yt == yt.round()).all()):
            raise DataError(f"labels must be {xt.shape[0]} whole numbers, one per example")
        yt = yt.to(torch.int64)
        if int(yt.min()) < 0:
            raise DataError("labels must be >= 0")
    return Split(xt, yt, mt)
