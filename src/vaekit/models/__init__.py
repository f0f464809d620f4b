"""Generative models; `VAE` covers the unconditional and the conditional (Sohn et al. 2015) cases."""

from .vae import VAE, Batch, VAEOutput

__all__ = ["VAE", "Batch", "VAEOutput"]
