"""Latent arithmetic: attribute vectors and analogies (White 2016, "Sampling generative networks";
Larsen et al. 2016, VAE/GAN attribute vectors).

    attribute vector   v = mean{mu(x) : x in target group} - mean{mu(x) : x in source group}
    applying it        z' = mu(x) + s v for strengths s, decoded: s = 1 moves x by the groups' mean difference
    analogy            z = mu(a) - mu(b) + mu(c)   ("a is to b as ? is to c"), decoded

Groups come from labels (class `target` vs class `source`, or vs every other class) or from any boolean
attribute: a column of a CSV/npy file with one value per example, a binary feature of tabular data, or the
built-in `ink` attribute of image data (total intensity above the median: thick strokes vs thin).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.runtime import device_of, to_model
from ..data.common import csv_rows
from ..data.standardize import Standardizer
from ..errors import ConfigError, DataError
from ..models.vae import VAE

TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "t", "y"}, {"0", "false", "no", "f", "n", "-1"}


@dataclass(frozen=True)
class AttributeVector:
    """`vector` (D,) pointing from the source group's mean code to the target group's; group sizes; a name."""

    vector: np.ndarray
    name: str
    n_target: int
    n_source: int


def attribute_vector(z: np.ndarray, target: np.ndarray, source: np.ndarray | None = None,
                     name: str = "attribute") -> AttributeVector:
    """Difference of mean codes: z (N, D); `target`/`source` (N,) bool group masks (source: not target)."""
    z = np.asarray(z, dtype=np.float64)
    target = np.asarray(target, dtype=bool)
    source = ~target if source is None else np.asarray(source, dtype=bool)
    if target.shape != (z.shape[0],) or source.shape != (z.shape[0],):
        raise ConfigError(f"group masks must have one value per code ({z.shape[0]}), got {target.shape}")
    if not target.any() or not source.any():
        empty = "target" if not target.any() else "source"
        raise ConfigError(f"the {empty} group of {name!r} has no examples in this split; pick groups that occur")
    vector = z[target].mean(0) - z[source].mean(0)  # (D,)
    return AttributeVector(vector=vector.astype(np.float32), name=name, n_target=int(target.sum()),
                           n_source=int(source.sum()))


def label_vector(z: np.ndarray, labels: np.ndarray | None, target: int, source: int | None = None,
                 class_names: Sequence[str] | None = None) -> AttributeVector:
    """The vector from class `source` (default: all other classes) to class `target`."""
    if labels is None:
        raise ConfigError("this data set has no labels: define the groups with an attribute column instead")
    labels = np.asarray(labels)
    k = int(labels.max()) + 1
    for value in (target, source):
        if value is not None and not 0 <= value < k:
            raise ConfigError(f"label {value} is out of range: this data set has labels 0..{k - 1}")
    names = list(class_names or [str(i) for i in range(k)])
    name = f"{names[source] if source is not None else 'rest'} -> {names[target]}"
    return attribute_vector(z, labels == target, None if source is None else labels == source, name)


@dataclass(frozen=True)
class Shifted:
    """Decoded means `images` (N, S, *event) of the codes `z` (N, S, D) = mu(x) + strengths[s] * vector."""

    images: torch.Tensor
    z: torch.Tensor
    strengths: np.ndarray


@torch.no_grad()
def apply_vector(model: VAE, x: torch.Tensor, vector: np.ndarray | torch.Tensor, strengths: Sequence[float],
                 y: torch.Tensor | None = None) -> Shifted:
    """Moves the codes of `x` (N, *event) along `vector` (D,) by each strength and decodes; `y` for conditional
    models (encoded and decoded with the examples' own labels)."""
    vector = torch.as_tensor(np.asarray(vector), dtype=torch.float32).reshape(-1)
    if vector.shape != (model.latent_dim,):
        raise ConfigError(f"the vector has {vector.numel()} values; the model's latent space has {model.latent_dim}")
    strengths_t = torch.as_tensor(np.asarray(strengths, dtype=np.float32)).reshape(-1)  # (S,)
    if strengths_t.numel() == 0:
        raise ConfigError("give at least one strength")
    rows = int(x.shape[0]) * strengths_t.numel()
    model.check_generate(rows, f"{x.shape[0]:,} examples moved by {strengths_t.numel():,} strengths",
                         extra_per_row=model.latent_dim * 4)
    x, y = to_model(model, x), to_model(model, y)
    mu = model.embed(x, y)  # (N, D)
    z = mu[:, None, :] + strengths_t.to(mu)[None, :, None] * vector.to(mu)  # (N, S, D)
    n, s = z.shape[:2]
    labels = None if y is None else y.reshape(-1, 1).expand(n, s).reshape(-1)
    images = model.generate(z.reshape(-1, model.latent_dim), labels, check=False)
    return Shifted(images=images.reshape(n, s, *images.shape[1:]).cpu(), z=z.cpu(),
                   strengths=strengths_t.numpy())


@torch.no_grad()
def analogy(model: VAE, x_a: torch.Tensor, x_b: torch.Tensor, x_c: torch.Tensor,
            label: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decodes z = mu(a) - mu(b) + mu(c) for examples of shape (*event) or batches (N, *event); returns the decoded
    means (N, *event) and the codes (N, D). `label`: the class conditional models encode and decode with."""
    xs = [x.reshape(-1, *model.event_shape) for x in (x_a, x_b, x_c)]
    n = xs[0].shape[0]
    if any(x.shape[0] != n for x in xs):
        raise ConfigError("the three analogy inputs must have the same number of examples")
    labels = None if label is None else torch.full((n,), int(label), dtype=torch.long, device=device_of(model))
    mu_a, mu_b, mu_c = (model.embed(to_model(model, x), labels) for x in xs)
    z = mu_a - mu_b + mu_c  # (N, D)
    return model.decode(z, labels).mean.cpu(), z.cpu()


def as_boolean(values: np.ndarray, name: str) -> np.ndarray:
    """0/1, True/False or yes/no values as a bool array; a DataError naming the first other value."""
    values = np.asarray(values)
    if values.dtype == bool:
        return values
    if values.dtype.kind in "iuf":
        ok = np.isin(values, (0, 1)) | (values == -1)  # -1/1 coding as in CelebA's attribute files
        if not ok.all():
            raise DataError(f"attribute {name!r} is not boolean: it holds {values[~ok][0]!r} (expected 0/1 or "
                            f"true/false); threshold it into a 0/1 column first")
        return values == 1
    words = np.char.lower(np.char.strip(values.astype(str)))
    bad = ~(np.isin(words, list(TRUE_WORDS)) | np.isin(words, list(FALSE_WORDS)))
    if bad.any():
        raise DataError(f"attribute {name!r} is not boolean: it holds {values[bad][0]!r} (expected 0/1 or true/false)")
    return np.isin(words, list(TRUE_WORDS))


def read_attribute_file(path: str | Path, column: str | int | None, n: int) -> np.ndarray:
    """Column `column` (name or 0-based index) of a CSV with a header row, or a `.npy` array (N,) / (N, K), as a
    bool array of `n` values (one per example of the split, in order)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"attribute file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        from ..data.common import load_npy

        array = load_npy(path)  # header checked against the file and the memory budget first
        if array.ndim == 2:
            if not isinstance(column, int) and not str(column).isdigit():
                raise DataError(f"{path} has {array.shape[1]} columns: choose one by index (e.g. --attribute 0)")
            idx = int(column)
            if not 0 <= idx < array.shape[1]:
                raise DataError(f"column {idx} does not exist in {path} (it has columns 0..{array.shape[1] - 1})")
            array = array[:, idx]
        values, name = array.reshape(-1), f"{path.name}[{column}]"
    else:
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                rows = [r for r in csv_rows(handle, "\t" if path.suffix == ".tsv" else ",", path) if r]
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: cannot read as text ({error})") from None
        if len(rows) < 2:
            raise DataError(f"{path}: expected a header row and one row per example")
        header = [h.strip() for h in rows[0]]
        if column is None and len(header) == 1:
            column = header[0]
        if column in header:
            idx = header.index(column)
        elif str(column).isdigit() and int(column) < len(header):
            idx = int(column)
        else:
            raise DataError(f"no column named {column!r} in {path} (columns: {', '.join(header)})")
        values, name = np.array([r[idx] if idx < len(r) else "" for r in rows[1:]]), header[idx]
    if values.shape[0] != n:
        raise DataError(f"{path} has {values.shape[0]} values of {name!r} but the split has {n} examples")
    return as_boolean(values, name)


def dataset_attribute(x: torch.Tensor, name: str, feature_names: Sequence[str] | None = None,
                      standardizer: Standardizer | None = None) -> np.ndarray:
    """A boolean attribute of the examples `x` (N, *event) themselves: the built-in `ink` (image intensity above
    the median), or a binary feature column of tabular data named in `feature_names`."""
    if name == "ink":
        ink = x.reshape(x.shape[0], -1).sum(1).numpy()
        return ink > np.median(ink)
    names = list(feature_names or [])
    if name not in names:
        known = ", ".join(["ink"] + names[:20]) + (", ..." if len(names) > 20 else "")
        raise ConfigError(f"no attribute column {name!r} in this data set (known: {known}); or give a file of "
                          f"attributes with --attributes FILE")
    j = names.index(name)
    values = x.reshape(x.shape[0], -1)[:, j].numpy().astype(np.float64)
    if standardizer is not None:
        values = values * standardizer.scale[j] + standardizer.mean[j]  # back to the file's values
    return as_boolean(np.round(values, 6), name)
