"""Paths between two latent codes: the straight line and the great circle (Shoemake 1985; White 2016 for
latent spaces, where the prior's mass lies near a sphere). Pure tensor math, used by image and sentence
interpolation alike (vaekit.analysis.interpolation, vaekit.text.generate).
"""

from __future__ import annotations

import torch

METHODS = ("linear", "slerp")
# Angles below this (radians) make sin(w) ~ 0: slerp then falls back to the linear path it approaches.
SLERP_EPS = 1e-6


def lerp(z_a: torch.Tensor, z_b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear path: (D,), (D,), (T,) -> (T, D)."""
    t = t.reshape(-1, 1).to(z_a)
    return (1 - t) * z_a + t * z_b


def slerp(z_a: torch.Tensor, z_b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical path: (D,), (D,), (T,) -> (T, D); z(0) = z_a and z(1) = z_b exactly."""
    t = t.reshape(-1, 1).to(z_a)
    cos = torch.dot(z_a, z_b) / (z_a.norm() * z_b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega) < SLERP_EPS or float(torch.sin(omega)) < SLERP_EPS:
        return lerp(z_a, z_b, t)  # (anti)parallel codes: the great circle is undefined
    sin = torch.sin(omega)
    return torch.sin((1 - t) * omega) / sin * z_a + torch.sin(t * omega) / sin * z_b
