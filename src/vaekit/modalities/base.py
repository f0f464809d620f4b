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
- what a run folder shows a person (image grids, tables as CSV, a scatter of 2-D samples, sentences);
- what the explorer page (`vaekit serve`) shows of a value (a PNG of an image or of a table row, a sentence) and
  what a person may type there for the model to encode (sentences).

A new modality is one registered subclass of `Modality` in one file, imported by `vaekit.modalities`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..core.registry import Registry
from ..core.runtime import to_model
from ..data.base import array_modality
from ..errors import ConfigError
from ..figures.plots import strip_png, to_png

MODALITIES: Registry = Registry("modality")

# The refusal of typed input on the explorer page by a modality that takes none (text runs are the ones that do).
NO_TYPED_INPUT = "this run is not a text run"
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

    # --- the explorer page (vaekit.serve): how values are shown, what a person may type (`check_input`) ------------
    # The page shows values as pictures: PNG bytes of an image, or of a table row as grey cells (`show_example`,
    # `show_decoded`, `show_strip`); False: as words, in JSON.
    pictures = True
    # A conditional run decodes strips (traversals, samples...) by class: the explorer checks and passes the label;
    # False: the strips take none and ignore one sent along.
    class_labels = True

    def show_examples(self, model: nn.Module, x: torch.Tensor,
                      z: torch.Tensor | None = None) -> list[dict[str, Any]]:
        """The JSON fields the page shows for each example of `x` (N, *event), with what their codes `z` (N, D)
        decode to when given; none for pictures, which the page asks for as PNG (`show_example`)."""
        return [{} for _ in range(x.shape[0])]

    def check_pictures(self) -> None:
        """A one-line ConfigError unless the page shows these values as pictures (PNG)."""
        if not self.pictures:
            raise ConfigError(f"this is a {self.name} run: it decodes to {self.values}, not images")

    def show_example(self, model: nn.Module, x: torch.Tensor) -> bytes:
        """One example (*event) as the page shows it: PNG bytes (an enlarged image, a table row of grey cells)."""
        self.check_pictures()
        return to_png(x, tuple(model.event_shape))

    def show_decoded(self, model: nn.Module, z: torch.Tensor, label: int | None = None) -> bytes | dict[str, Any]:
        """The decoded mean of one code z (D,), of class `label` for a conditional run, as the page shows it: PNG
        bytes here."""
        return to_png(_decode(model, z[None], label)[0], tuple(model.event_shape))

    def show_strip(self, model: nn.Module, z: torch.Tensor, label: int | None = None) -> bytes | dict[str, Any]:
        """The decoded means of codes z (N, D) side by side, as the page shows them: a PNG strip here."""
        return strip_png(_decode(model, z, label), tuple(model.event_shape))

    def check_input(self, value: Any) -> Any:
        """A value typed on the page, checked; a one-line ConfigError where typed input does not apply."""
        raise ConfigError(NO_TYPED_INPUT)

    def encode_input(self, model: nn.Module, values: list[Any]) -> torch.Tensor:
        """The posterior means (N, D), on the CPU, of checked typed values (`check_input`)."""
        raise ConfigError(NO_TYPED_INPUT)

    def explore_input(self, model: nn.Module, value: Any, neighbours: tuple[torch.Tensor, torch.Tensor],
                      n_samples: int, n_nearest: int, seed: int) -> dict[str, Any]:
        """What the page shows of a checked typed value: its code "z", "reconstruction", the `n_nearest` examples
        of `neighbours` (their codes (M, D) and rows (M, *event)) closest by code, and `n_samples` values decoded
        from draws of q(z | value) with `seed`."""
        raise ConfigError(NO_TYPED_INPUT)


def _decode(model: nn.Module, z: torch.Tensor, label: int | None) -> torch.Tensor:
    """Decoded means (N, *event), on the CPU, of codes z (N, D), of class `label` (None: no class)."""
    labels = None if label is None else torch.full((z.shape[0],), label)
    return model.generate(to_model(model, z), labels).cpu()


def modality_of(model: nn.Module) -> Modality:
    """The modality a model was built for (`model.modality`); a model built outside `vaekit.build` is taken for
    an image model when its examples are (C, H, W), a 2-D point model for (2,), else a table model."""
    found = getattr(model, "modality", None)
    if isinstance(found, Modality):
        return found
    return MODALITIES.get(modality_for_shape(tuple(getattr(model, "event_shape", ()))))()


def modality_for_shape(event_shape: tuple[int, ...], vocab_size: int = 0) -> str:
    """The modality name of array data of this shape (what runs saved before modalities were recorded had)."""
    return "text" if vocab_size else array_modality(event_shape)


__all__ = ["MODALITIES", "Modality", "modality_of", "modality_for_shape", "DEFAULT_LIKELIHOOD"]
