"""An adversary that keeps the class label out of a conditional VAE's code, so that the decoder must read it.

A conditional VAE gives the decoder the label c, but a large code z can carry the class as well (the digit's
shape), and then the decoder learns to ignore c: the same z draws the same digit whatever label it is given, and
style transfer across classes fails. A small classifier A tries to tell the class from z; the encoder is trained
to defeat it through a gradient reversal layer (Ganin & Lempitsky 2015; the Fader networks of Lample et al. 2017
use the same idea on attributes):

    penalty = weight * CE(A(R(z)), c),   R(z) = z in the forward pass, dR/dz = -1 in the backward pass

so one optimiser minimises the cross-entropy in A's weights and maximises it in the encoder's. z keeps what the
class does not explain (the style: slant, stroke width), and the label decides the class.

R is written as z_rev = 2 * sg(z) - z (sg: stop-gradient): its value is z, its gradient -1, and it is a plain
tensor expression, which torch.compile and the exporters trace like any other.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError


def reverse_gradient(z: torch.Tensor) -> torch.Tensor:
    """z in the forward pass; the gradient that flows back through it is negated."""
    return 2 * z.detach() - z


class LabelAdversary(nn.Module):
    """A classifier of the label from the code, D -> hidden -> K, trained against the encoder."""

    def __init__(self, latent_dim: int, num_classes: int, weight: float, hidden: int = 256) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError("model.kind.label_adversary needs a conditional model (model.conditional=true)")
        if not (math.isfinite(weight) and weight > 0):
            raise ConfigError(f"model.kind.label_adversary must be a number > 0, got {weight}")
        self.weight = float(weight)
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))

    def penalty(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """weight * CE(A(R(z)), y) per example (B,), averaged over the S draws of z (S, B, D)."""
        logits = self.net(reverse_gradient(z))  # (S, B, K)
        labels = y.long().reshape(1, -1).expand(z.shape[0], -1)  # (S, B)
        ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
        return self.weight * ce.mean(0)

    @torch.no_grad()
    def accuracy(self, z: torch.Tensor, y: torch.Tensor) -> float:
        """The share of codes (B, D) whose label the adversary tells (1/K: z holds no class it can read)."""
        return float((self.net(z).argmax(-1) == y.long()).float().mean())
