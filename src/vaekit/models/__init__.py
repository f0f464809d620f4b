"""Generative models, one file per model kind, each registered in `MODEL_KINDS` (`vaekit.models.base`):
`vae` (one stochastic layer; conditioning on a label is an option of the same model, Sohn et al. 2015) and
`hierarchical` (several stochastic layers) and `vqvae` (discrete codes with a learned prior)."""

from . import hierarchical, vqvae  # noqa: F401  (importing registers the kinds)
from .base import MODEL_KINDS, Capabilities, ModelParts
from .vae import VAE, Batch, VAEOutput

__all__ = ["VAE", "Batch", "VAEOutput", "MODEL_KINDS", "Capabilities", "ModelParts"]
