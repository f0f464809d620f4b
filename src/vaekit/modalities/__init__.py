"""Modalities (images, tables, 2-D points, sentences) as plug-ins: `vaekit.modalities.base` says what one owns.

Importing this package registers the built-in entries.
"""

from .base import MODALITIES, Modality, modality_for_shape, modality_of
from . import arrays  # noqa: E402,F401  (importing registers the entries)
from ..text import modality as _text_modality  # noqa: E402,F401

__all__ = ["MODALITIES", "Modality", "modality_of", "modality_for_shape"]
