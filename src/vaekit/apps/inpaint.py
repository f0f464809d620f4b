"""Image inpainting with a VAE trained on complete images: fill hidden pixels (e.g. the bottom half of MNIST
digits) by importance sampling, pseudo-Gibbs or Metropolis-within-Gibbs sampling (see `vaekit.apps.impute`).

Masks here follow the inpainting convention of image files: a *hole* mask, nonzero / white = hidden pixel.
Internally (and in `impute`) masks are observation masks, 1 = observed; `observation_mask` converts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PATTERNS = ("bottom-half", "top-half", "left-half", "right-half", "center")


def hole_pattern(name: str, event_shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A named hole mask (*event) with 1 = hidden: a half of the image, a centre square, or `random:F`
    (each pixel hidden with probability F)."""
    if len(event_shape) != 3:
        raise DataError(f"inpainting needs image data (C, H, W); the model's data have shape {tuple(event_shape)}")
    _, h, w = event_shape
    hole = torch.zeros(event_shape)
    if name == "bottom-half":
        hole[:, h // 2 :] = 1
    elif name == "top-half":
        hole[:, : h // 2] = 1
    elif name == "left-half":
        hole[:, :, : w // 2] = 1
    elif name == "right-half":
        hole[:, :, w // 2 :] = 1
    elif name == "center":
        hole[:, h // 4 : h - h // 4, w // 4 : w - w // 4] = 1
    elif name.startswith("random:"):
        try:
            fraction = float(name.split(":", 1)[1])
        except ValueError:
            fraction = -1.0
        if not 0.0 < fraction < 1.0:
            raise DataError(f"mask {name!r}: write random:F with F in (0, 1), e.g. random:0.5")
        generator = torch.Generator().manual_seed(seed)
        hole = (torch.rand(event_shape, generator=generator) < fraction).float()
    else:
        raise DataError(f"unknown mask {name!r}: give a file (PNG or .npy, white/nonzero = hidden) or one of "
                        f"{', '.join(PATTERNS)}, random:F")
    return hole


def read_array_or_image(path: str | Path, what: str) -> np.ndarray:
    """A PNG/JPEG as (H, W) or (H, W, 3) grey levels in [0, 1], or the array of a .npy / .npz file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    from ..data.common import load_npy, load_npz, open_image  # headers checked against file and budget first

    try:
        if suffix == ".npy":
            return load_npy(path)
        if suffix == ".npz":
            arrays = load_npz(path)
            key = next((k for k in ("x", "X", "images", "mask") if k in arrays), next(iter(arrays)))
            return arrays[key]
        with open_image(path, f"{what} {str(path)!r}") as im:
            return np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    except (OSError, ValueError, IndexError, StopIteration) as error:
        raise DataError(f"cannot read {what} {str(path)!r} ({error})") from None


def as_images(array: np.ndarray, event_shape: tuple[int, ...], what: str = "image") -> torch.Tensor:
    """(H, W), (N, H, W), (C, H, W) or (N, C, H, W) -> (N, C, H, W) float32; uint8 / 0..255 scaled to [0, 1]."""
    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise DataError(f"the {what} is not numeric ({a.dtype})")
    a = a.astype(np.float64)
    if a.size and a.max() > 1.0:
        a = a / 255.0
    c, h, w = event_shape
    if a.shape == (h, w) and c == 1:
        a = a[None, None]
    elif a.shape == (c, h, w):
        a = a[None]
    elif a.ndim == 3 and a.shape[1:] == (h, w) and c == 1:
        a = a[:, None]
    elif a.ndim != 4 or a.shape[1:] != (c, h, w):
        raise DataError(f"the {what} has shape {a.shape}; the model works on images of shape {(c, h, w)} "
                        f"(or {(h, w)} for one grey image)")
    if a.shape[0] == 0:
        raise DataError(f"no images to fill: the {what} has shape {a.shape}")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:  # (after 0..255 levels were scaled to [0, 1])
        raise DataError(f"the {what} holds values outside [0, 1] (or 0..255 grey levels): from {a.min():.3g} to "
                        f"{a.max():.3g}")
    return torch.from_numpy(a.astype(np.float32))


def observation_mask(hole: np.ndarray | torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """A hole mask (1 = hidden) of shape (H, W), (C, H, W) or one per image -> observation masks like `images`."""
    hole = torch.as_tensor(np.asarray(hole, dtype=np.float32))
    n, c, h, w = images.shape
    shapes = {(h, w): lambda m: m.expand(n, c, h, w), (c, h, w): lambda m: m.expand(n, c, h, w),
              (n, h, w): lambda m: m[:, None].expand(n, c, h, w), (n, c, h, w): lambda m: m}
    for shape, expand in shapes.items():
        if tuple(hole.shape) == shape:
            return 1.0 - (expand(hole) > 0).float()
    raise DataError(f"the mask has shape {tuple(hole.shape)}; it must match the images: {(h, w)}, {(c, h, w)} "
                    f"or one per image {(n, h, w)}")


def inpainting_figure(images: torch.Tensor, observed: torch.Tensor, filled: dict[str, torch.Tensor],
                      title: str = "Inpainting") -> Figure:
    """Rows: the originals, what the model saw (hidden pixels tinted blue), and one row per filling method. Write
    it with `vaekit.figures.plots.write_output`."""
    from ..figures.plots import image_grid_figure

    def rgb(x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]

    n = min(12, images.shape[0])
    hidden = observed[:n, :1].expand(-1, 3, -1, -1) < 0.5
    seen = rgb(images[:n] * observed[:n]).clone()
    tint = torch.tensor([0.25, 0.35, 0.8]).view(1, 3, 1, 1).expand_as(seen)
    seen[hidden] = tint[hidden]
    rows = [rgb(images[:n]), seen] + [rgb(f[:n]) for f in filled.values()]
    labels = ["original", "observed"] + list(filled)
    return image_grid_figure(torch.cat(rows).clamp(0, 1), ncol=n, title=title, row_labels=labels)


__all__ = ["hole_pattern", "read_array_or_image", "as_images", "observation_mask", "inpainting_figure",
           "PATTERNS"]
