"""Encoder/decoder networks, registered by name; see `NETWORKS`."""

from .base import NETWORKS, NetworkPair, build_networks
from . import mlp, conv, rnn  # noqa: F401  (register the built-in networks)

__all__ = ["NETWORKS", "NetworkPair", "build_networks"]
