"""Modalities: what kind of values a run's data are (images, tables, 2-D points, sentences), as plug-ins.

A modality is chosen by the data (`DataBundle.modality`), recorded in the run's config (`model.modality`) and
attached to the model it builds (`model.modality`, read with `modality_of`). It owns what differs between kinds
of values, so that the builder, the training loop, evaluation, the run writer and the loader ask it instead of
testing "is this text?":

- the default network and likelihood of its data, and which registry entries read its values;
- the class of the model (a subclass of VAE that turns outputs into its values, e.g. sentences), and the state
  that goes with it (a vocabulary), attached from the data, saved with the run and loaded back;
- the order of examples in training and evaluation batches (sentences of similar length together);
- the unit of bits per dimension (a pixel, a column, a predicted token);
- what a run folder shows a person (image grids, tables as CSV, a scatter of 2-D samples, sentences).

A new modality is one registered subclass of `Modality` in one file, imported by `vaekit.modalities`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..registry import Registry

MODALITIES: Registry = Registry("modality")

# The default likelihood of each kind of array value (vaekit.data.base.ValueKind).
DEFAULT_LIKELIHOOD = {"binary": "bernoulli", "unit": "bernoulli", "real": "gaussian-learned"}


class Modality:
    """An array modality: fixed-size examples (B, *event) of numbers. Subclasses change what differs."""

    name = ""
    values = "arrays"  # how a message names its values ("sentences", "images")
    # The modality that network and likelihood entries must declare (their factory's `modality` attribute) to
    # read these values; None: the array entries, which declare none.
    reads: str | None = None
    # Priors that live in data space (pseudo-inputs, the VampPrior) need data that an encoder reads as numbers.
    data_space_priors = True
    # The class the builder makes for a one-layer model (None: vaekit.models.vae.VAE).
    model_class: type | None = None
    # Examples of unequal length (padded): training and evaluation batch examples of similar length together,
    # and parts of the model may get no gradient in a step (DDP must look for unused parameters).
    variable_length = False
    # Examples whose decoding costs more per row (a sentence keeps every step's state): the importance-sampled
    # evaluation decodes this many times fewer rows at once.
    decode_rows_divisor = 1

    def default_likelihood(self, data: Any) -> str:
        """The likelihood of `data` when model.likelihood names none: the data set's own, else its values'."""
        return data.default_likelihood or DEFAULT_LIKELIHOOD[data.value_kind]

    def default_network(self, data: Any) -> str:
        """The network of `data` when model.network names none: the data set's own, else an MLP."""
        return data.default_network or "mlp"

    def vocab_size(self, data: Any) -> int:
        """The size of the token vocabulary the model needs (0: no tokens)."""
        return 0

    def attach(self, model: nn.Module, data: Any) -> None:
        """Gives a freshly built model the state it needs from the training data (nothing for arrays)."""

    def state_files(self, data: Any) -> dict[str, str]:
        """The files (name -> text) of the data's state that a run folder keeps besides the weights."""
        return {}

    def load_state(self, model: nn.Module, run_dir: Path, config: Any) -> None:
        """Gives a loaded model the state `state_files` saved (nothing for arrays)."""

    def batch_order(self, order: torch.Tensor, x: torch.Tensor, batch_size: int,
                    generator: torch.Generator) -> torch.Tensor:
        """The training epoch's order of examples, given a random permutation `order` (kept as it is here)."""
        return order

    def evaluation_order(self, x: torch.Tensor) -> torch.Tensor | None:
        """A permutation of the examples for evaluation batches, or None to keep their order."""
        return None

    def units(self, x: torch.Tensor, event_shape: tuple[int, ...]) -> float:
        """How many values an example holds on average, the denominator of bits per dimension."""
        return float(math.prod(event_shape))

    def evaluation_counts(self, x: torch.Tensor, nll_sum: float) -> dict[str, Any]:
        """Extra counts of an evaluation (`vaekit.evaluate.EvalResult` fields) from the examples and their
        summed NLL in nats; none for arrays."""
        return {}

    def run_outputs(self, model: nn.Module, data: Any, history: list[dict]) -> Iterator[tuple[str, Any]]:
        """(file name, content) of what a run folder shows a person; the run writer writes each."""
        raise NotImplementedError

def modality_of(model: nn.Module) -> Modality:
    """The modality a model was built for (`model.modality`); a model built outside `vaekit.build` is taken for
    an image model when its examples are (C, H, W), a 2-D point model for (2,), else a table model."""
    found = getattr(model, "modality", None)
    if isinstance(found, Modality):
        return found
    return MODALITIES.get(modality_for_shape(tuple(getattr(model, "event_shape", ()))))()


def modality_for_shape(event_shape: tuple[int, ...], vocab_size: int = 0) -> str:
    """The modality name of array data of this shape (what runs saved before modalities were recorded had)."""
    if vocab_size:
        return "text"
    if len(event_shape) == 3:
        return "image"
    return "points" if tuple(event_shape) == (2,) else "table"


__all__ = ["MODALITIES", "Modality", "modality_of", "modality_for_shape", "DEFAULT_LIKELIHOOD"]
