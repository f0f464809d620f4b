"""Encoder/decoder networks, registered by name; see `NETWORKS`."""

from .base import NETWORKS, NetworkPair, build_networks
from . import mlp, conv  # noqa: F401  (register the built-in networks; a modality registers its own, e.g. rnn)

__all__ = ["NETWORKS", "NetworkPair", "build_networks"]
