"""The one figure of a run report that no other part of vaekit draws: the KL of each latent dimension."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..figures.plots import _pyplot

ACTIVE_COLOUR, INACTIVE_COLOUR = "#1f77b4", "#c7c7c7"


def kl_per_dim_figure(kl: Sequence[float], active: Sequence[bool], layers: Sequence[int] | None = None,
                      title: str = "KL(q(z_d|x) || p(z_d)) per dimension"):
    """Bars of the mean KL (nats) of each latent dimension, active units in colour and the others grey; for a
    model of several stochastic layers (`layers`: their sizes, bottom first) a dotted line between layers."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    kl = np.asarray(kl, dtype=np.float64)
    d = kl.shape[0]
    fig, ax = plt.subplots(figsize=(min(14.0, max(5.0, 0.28 * d + 1.5)), 3.0), dpi=120)
    colours = [ACTIVE_COLOUR if a else INACTIVE_COLOUR for a in active]
    ax.bar(np.arange(d), kl, color=colours, width=0.8)
    if layers and len(layers) > 1:
        for edge in np.cumsum(layers)[:-1]:
            ax.axvline(edge - 0.5, color="#555", linestyle=":", linewidth=1)
    step = max(1, int(np.ceil(d / 40)))  # at most ~40 tick labels
    ax.set_xticks(np.arange(0, d, step))
    ax.set_xlim(-0.7, d - 0.3)
    ax.set(xlabel="latent dimension", ylabel="KL (nats)", title=title)
    n_active = int(np.sum(active))
    ax.legend(handles=[Patch(color=ACTIVE_COLOUR, label=f"active ({n_active})"),
                       Patch(color=INACTIVE_COLOUR, label=f"inactive ({d - n_active})")],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
