"""The sentence VAE (Bowman et al. 2016): the `VAE` of vaekit.models.vae whose values are sentences.

The model itself computes as any VAE does, on token ids (B, L) and their distribution p(x|z) (an autoregressive
GRU/LSTM, vaekit.text.sequence); this class only turns its outputs into words and words into its inputs:
`sample(n)` returns sentences, `reconstruct` takes and returns sentences, and `generate` (codes -> arrays) is
refused, since codes decode to sentences (`vaekit.text.generate.decode_codes`). The builder makes this class
when the network and likelihood read sentences (vaekit.build); `vocab` is set by training and loading.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import ConfigError
from ..models.vae import VAE
from .generate import decode_codes, reconstruct_sentences, sample_sentences
from .sequence import TEXT_DECODING
from .vocab import Vocabulary


class SentenceVAE(VAE):
    """A VAE over sentences of token ids; sentences in, sentences out."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.vocab: Vocabulary | None = None  # the words of the token ids (set by fit and load)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | int | None = None, mean: bool = True, **options) -> list[str]:
        """n sentences from z ~ p(z), decoded greedily (`mean=True`) or by sampling words (`mean=False`);
        `options` (strategy, temperature, top_p, beam_size, seed) go to `vaekit.text.generate.sample_sentences`
        and override `mean`."""
        if y is not None:
            raise ConfigError("this model is not conditional, so it cannot sample a given class")
        return sample_sentences(self, n, **{"strategy": "greedy" if mean else "sample", **options})

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None, mean: bool = True, check: bool = True,
                 what: str | None = None) -> torch.Tensor:
        """Refused: codes decode to sentences (`decode_codes`), not to arrays."""
        raise ConfigError(TEXT_DECODING)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor | Sequence[str], y: torch.Tensor | None = None):
        """Sentences (a list of strings) -> their greedy reconstructions; token ids (B, L) -> sentences."""
        if torch.is_tensor(x):
            return decode_codes(self, self.embed(x))
        return reconstruct_sentences(self, x)


__all__ = ["SentenceVAE"]
