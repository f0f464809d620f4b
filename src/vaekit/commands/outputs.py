"""Files that commands write from what the library returned: an embedding (`.npz`) and the cached sample-quality
classifier. The library computes (`vaekit.analysis.encode_dataset`, `vaekit.metrics.sample_quality`); these
write, each atomically (whole or absent).

This module has no `register`: it adds no subcommand (the CLI skips it when it collects them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import io
from ..errors import DataError

if TYPE_CHECKING:  # the CLI imports this module to build its parser: analysis and metrics load scikit-learn
    from ..analysis.latents import Embedding
    from ..metrics.sample_quality import Classifier


def save_embedding(embedding: Embedding, path: str | Path) -> Path:
    """Writes a `vaekit.analysis.Embedding` as a compressed `.npz` (`vaekit.analysis.load_embedding` reads it)."""
    from ..analysis.latents import embedding_arrays  # (scikit-learn and SciPy behind it: loaded when used)

    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise DataError(f"embeddings are saved as .npz; got {str(path)!r} (name the file e.g. z.npz)")
    with io.atomic_output(path) as tmp, open(tmp, "wb") as handle:  # whole or absent; a file object: no suffix added
        np.savez_compressed(handle, **embedding_arrays(embedding))
    return path


def save_classifier(classifier: Classifier, path: str | Path) -> Path:
    """Writes a sample-quality classifier: `path` (.safetensors weights) and the same name with .json
    (architecture and info), which `vaekit.metrics.sample_quality.load_classifier` reads."""
    path = Path(path).with_suffix(".safetensors")
    io.save_tensors(path, classifier.state_dict())
    io.atomic_write_text(path.with_suffix(".json"), json.dumps(classifier.spec(), indent=2) + "\n")
    return path


__all__ = ["save_classifier", "save_embedding"]
