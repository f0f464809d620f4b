"""export.json: what an exported model's files hold and how to use them, for readers without vaekit.

It names the format and the files, each graph's inputs and outputs (dtype, shape with "batch" for the dynamic
axis), and the three distributions: q(z|x) and p(x|z) as the parameters the graphs output and what they mean,
and p(z), given in full when it is simple (N(0, I), or a mixture of diagonal Gaussians with its weights, means
and scales) so that new data can be made by decoding draws of it.
"""

from __future__ import annotations

import importlib.metadata
import math
from typing import Sequence

import torch
from torch import distributions as D

from ..models.vae import VAE
from .graphs import Plugins, Tensor, family

# What each distribution family's parameters mean, per entry of x (or of z); a family not listed is described by its
# torch class.
MEANINGS = {
    "Bernoulli": "each entry is 1 with probability sigmoid(logits), else 0 (vaekit also scores grey levels in [0, 1])",
    "Normal": "each entry is Gaussian, N(loc, scale^2)",
    "DiscretizedLogisticMixture": "8-bit values k/255 in [0, 1]: a mixture over axis 1 (M components) of logistics "
                                  "with weights softmax(logits), locations loc and scales exp(log_scale) in [-1, 1] "
                                  "units (x' = 2x - 1), integrated over each level's bin of width 2/255, the edge "
                                  "bins reaching -inf and +inf",
}
# Largest mixture prior (components x latent size) whose parameters are written into export.json.
MAX_PRIOR_VALUES = 100_000


def vaekit_version() -> str:
    """The installed vaekit's version ("unknown" when it is not installed as a package)."""
    try:
        return importlib.metadata.version("vaekit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def distribution_entry(plugin: tuple[str, dict], dist: D.Independent, names: Sequence[str]) -> dict:
    """The JSON of q(z|x) or p(x|z): the plug-in, the torch family, its parameter outputs and their meaning."""
    base = dist.base_dist
    name = family(base)
    return {
        "name": plugin[0],
        "options": plugin[1],
        "distribution": name,
        "parameters": list(names),
        "meaning": MEANINGS.get(name, f"the parameters of torch.distributions.{name}"),
        "independent_dims": dist.reinterpreted_batch_ndims,  # log-probabilities sum over these last axes
    }


@torch.no_grad()
def prior_entry(model: VAE, plugin: tuple[str, dict]) -> dict:
    """The JSON of p(z): N(0, I) or a diagonal-Gaussian mixture in full when it is one, else only its name."""
    entry = {"name": plugin[0], "options": plugin[1]}
    if getattr(model.prior, "label_conditional", False):
        return {**entry, "sample": None, "note": "p(z|y) depends on the label; sampling it is not exported"}
    pz = model.prior()
    if isinstance(pz, D.Independent) and isinstance(pz.base_dist, D.Normal):
        normal = pz.base_dist
        if bool((normal.loc == 0).all()) and bool((normal.scale == 1).all()):
            return {**entry, "sample": "standard normal: z ~ N(0, I) of shape (batch, latent_dim), then the decoder"}
    if isinstance(pz, D.MixtureSameFamily) and isinstance(pz.component_distribution, D.Independent) and \
            isinstance(pz.component_distribution.base_dist, D.Normal):
        normal = pz.component_distribution.base_dist  # batch (K, D)
        if math.prod(normal.loc.shape) <= MAX_PRIOR_VALUES:
            return {**entry, "sample": "mixture: pick component k with probability weights[k], then z ~ "
                                       "N(loc[k], diag(scale[k]^2)), then the decoder",
                    "weights": pz.mixture_distribution.probs.tolist(), "loc": normal.loc.tolist(),
                    "scale": normal.scale.tolist()}
    return {**entry, "sample": None, "note": "sampling this prior is not exported; codes from the encoder decode"}


def graph_entry(file: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor]) -> dict:
    """The JSON of one graph: its file, inputs and outputs (in the order the graph takes and returns them)."""
    return {"file": file, "inputs": [t.to_dict() for t in inputs], "outputs": [t.to_dict() for t in outputs]}


def manifest(model: VAE, plugins: Plugins, format: str, runtime: str, graphs: dict[str, dict],
             qz: D.Independent, qz_names: Sequence[str], px: D.Independent, px_names: Sequence[str],
             class_names: Sequence[str] | None = None) -> dict:
    """The whole export.json."""
    labels = None
    if model.conditional:
        labels = {"input": "y", "dtype": "int64", "values": f"class index 0..{model.num_classes - 1}",
                  "note": "the graphs one-hot encode it; other values give a condition of zeros (undefined)"}
    return {
        "format": format,
        "runtime": runtime,
        "vaekit_version": vaekit_version(),
        "torch_version": torch.__version__,
        "model": {
            "kind": plugins.kind[0],
            "network": {"name": plugins.network[0], "options": plugins.network[1]},
            "event_shape": list(model.event_shape),
            "latent_dim": model.latent_dim,
            "conditional": model.conditional,
            "num_classes": model.num_classes,
            "class_names": list(class_names) if class_names else None,
            "labels": labels,
        },
        "batch_axis": "the first axis of every input and output, named 'batch': any size >= 1",
        "graphs": graphs,
        "posterior": distribution_entry(plugins.posterior, qz, qz_names),
        "likelihood": {**distribution_entry(plugins.likelihood, px, px_names),
                       "mean": "the decoder's last output 'mean' is E[x|z], the image or row to show"},
        "prior": prior_entry(model, plugins.prior),
    }


__all__ = ["MEANINGS", "manifest", "vaekit_version"]
