"""The text modality: sentences as token ids (N, max_len + 2), `<bos> words <eos> <pad>...`.

Its network and likelihood are the entries that declare `modality = "text"` (the `rnn` network, the `sentence`
likelihood); the builder makes a `SentenceVAE` (sentences in and out), training and evaluation put sentences of
similar length in the same batch, bits are counted per predicted token, and the run keeps its vocabulary
(vocab.json) and shows sample and reconstructed sentences. The explorer page (`vaekit serve`) shows its points as
sentences with their greedy reconstructions, decodes codes to sentences, and takes typed sentences: their codes,
the nearest training sentences and sentences sampled around them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import CheckpointError, DataError, VaekitError
from ..modalities.base import MODALITIES, Modality
from . import network as _network  # noqa: F401  (registers the rnn network; the sentence likelihood is in .sequence)
from .batching import length_bucketed, sentence_lengths
from .generate import decode_codes, reconstruct_sentences, sample_sentences, to_ids, to_text
from .model import SentenceVAE
from .vocab import Vocabulary

VOCAB_FILE = "vocab.json"  # a text run's vocabulary, words in id order
# Sentences a text run writes at the end of training: samples of each kind and test reconstructions.
TEXT_SAMPLES, TEXT_RECONSTRUCTIONS = 10, 20
MAX_SENTENCE_CHARS = 2_000  # a sentence typed on the explorer page


@MODALITIES.register("text")
class TextModality(Modality):
    """Sentences of token ids: an RNN encoder and an autoregressive decoder; runs show sentences."""

    name = "text"
    values = "sentences"
    reads = "text"
    data_space_priors = False  # pseudo-inputs would be sentences of token ids, which an encoder cannot vary
    model_class = SentenceVAE
    variable_length = True
    decode_rows_divisor = 8  # a sentence row holds every step's recurrent state

    def default_likelihood(self, data: Any) -> str:
        return data.default_likelihood or "sentence"

    def default_network(self, data: Any) -> str:
        return data.default_network or "rnn"

    def vocab_size(self, data: Any) -> int:
        return len(data.vocab)

    def attach(self, model: nn.Module, data: Any) -> None:
        model.vocab = data.vocab  # the words of the token ids (vaekit.text.generate)

    def state_files(self, data: Any) -> dict[str, str]:
        return {VOCAB_FILE: data.vocab.to_json() + "\n"}

    def load_state(self, model: nn.Module, run_dir: Path, config: Any) -> None:
        model.vocab = load_vocabulary(run_dir, config.model.vocab_size)

    def batch_order(self, order: torch.Tensor, x: torch.Tensor, batch_size: int,
                    generator: torch.Generator) -> torch.Tensor:
        # batches of sentences of similar length (shuffled among themselves): little padding to compute
        return length_bucketed(order, sentence_lengths(x), batch_size, generator)

    def evaluation_order(self, x: torch.Tensor) -> torch.Tensor:
        return sentence_lengths(x).argsort(stable=True)  # little padding to compute; the means keep no order

    def units(self, x: torch.Tensor, event_shape: tuple[int, ...]) -> float:
        # every real token but <bos> is predicted: the words and <eos> (the padding of the fixed width is no data)
        return float(sentence_lengths(x).sum() - x.shape[0]) / x.shape[0]

    def evaluation_counts(self, x: torch.Tensor, nll_sum: float) -> dict[str, Any]:
        # perplexity per word as Bowman et al. (2016) report it, and per predicted token (words and <eos>)
        n = x.shape[0]
        tokens = int(sentence_lengths(x).sum()) - n  # every real token but <bos> is predicted
        words = tokens - n
        return dict(words=words, tokens=tokens, perplexity_word=math.exp(nll_sum / max(1, words)),
                    perplexity_token=math.exp(nll_sum / tokens))

    def run_outputs(self, model: nn.Module, data: Any, history: list[dict]) -> Iterator[tuple[str, Any]]:
        yield from text_outputs(model, data, history)

    # --- the explorer page: sentences in JSON, typed sentences in --------------------------------------------------
    pictures = False
    class_labels = False  # sentences decode from the code alone

    def show_examples(self, model: nn.Module, x: torch.Tensor,
                      z: torch.Tensor | None = None) -> list[dict[str, Any]]:
        """Each example's sentence ("text") and, given codes, the greedy sentence of its code ("reconstruction")."""
        shown: list[dict[str, Any]] = [{"text": sentence} for sentence in to_text(model, x)]
        if z is not None:
            for row, sentence in zip(shown, decode_codes(model, z)):
                row["reconstruction"] = sentence
        return shown

    def show_decoded(self, model: nn.Module, z: torch.Tensor, label: int | None = None) -> dict[str, Any]:
        """{"text": the greedy sentence of code z (D,)}."""
        return {"text": decode_codes(model, z.reshape(1, -1))[0]}

    def show_strip(self, model: nn.Module, z: torch.Tensor, label: int | None = None) -> dict[str, Any]:
        """{"sentences": the greedy sentences of codes z (N, D)}."""
        return {"sentences": decode_codes(model, z)}

    def check_input(self, value: Any) -> str:
        """A typed sentence: non-empty text of at most MAX_SENTENCE_CHARS characters."""
        if not isinstance(value, str) or not value.strip():
            raise DataError("give a sentence (non-empty text)")
        if len(value) > MAX_SENTENCE_CHARS:
            raise DataError(f"a sentence may have at most {MAX_SENTENCE_CHARS} characters, got {len(value)}")
        return value

    def encode_input(self, model: nn.Module, values: list[Any]) -> torch.Tensor:
        """Posterior means (N, D) of typed sentences (unknown words become <unk>, without a warning)."""
        return _posterior(model, values)[0]

    def explore_input(self, model: nn.Module, value: Any, neighbours: tuple[torch.Tensor, torch.Tensor],
                      n_samples: int, n_nearest: int, seed: int) -> dict[str, Any]:
        """A typed sentence: its code, greedy reconstruction, the nearest sentences of `neighbours` (by code)
        and the greedy sentences of draws z ~ q(z | sentence)."""
        mu, sigma = (side[0] for side in _posterior(model, [value]))
        codes, rows = neighbours
        nearest = torch.argsort((codes - mu[None]).pow(2).sum(1))[:n_nearest]
        eps = torch.randn((n_samples, mu.shape[0]), generator=torch.Generator().manual_seed(seed))
        return {"z": [round(float(v), 5) for v in mu], "reconstruction": decode_codes(model, mu[None])[0],
                "nearest": to_text(model, rows[nearest]),
                "samples": decode_codes(model, mu[None] + sigma[None] * eps) if n_samples else []}


@torch.no_grad()
def _posterior(model: nn.Module, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Means and standard deviations (N, D), on the CPU, of q(z | x) of sentences."""
    qz = model.encode(to_ids(model, sentences, warn=False))
    return qz.base_dist.loc.cpu(), qz.base_dist.scale.cpu()  # beside the codes the explorer keeps on the CPU


def load_vocabulary(run_dir: Path, size: int) -> Vocabulary:
    """The vocabulary of a text run (RUN/vocab.json), checked against the model's vocabulary size."""
    path = Path(run_dir) / VOCAB_FILE
    if not path.is_file():
        raise CheckpointError(f"{str(run_dir)!r} is a text run but has no {VOCAB_FILE}")
    try:
        vocab = Vocabulary.load(path)
    except VaekitError as error:
        raise CheckpointError(str(error)) from None
    if len(vocab) != size:
        raise CheckpointError(f"{path} holds {len(vocab)} tokens, the model {size}")
    return vocab


def text_outputs(model: nn.Module, data: Any, history: list[dict], seed: int = 0) -> Iterator[tuple[str, Any]]:
    """(file name, content) for a text run: samples.txt (prior samples decoded greedily and by sampling),
    reconstructions.txt (the first test sentences and their greedy reconstructions) and the curves figure."""
    from ..figures import plots

    lines = ["# z ~ p(z), decoded greedily", *sample_sentences(model, TEXT_SAMPLES, "greedy", seed=seed), "",
             "# z ~ p(z), words sampled (temperature 1)",
             *sample_sentences(model, TEXT_SAMPLES, "sample", seed=seed)]
    yield "samples.txt", "\n".join(lines) + "\n"
    split = next(data.splits[name] for name in ("test", "valid", "train") if name in data.splits)
    originals = to_text(model, split.x[:TEXT_RECONSTRUCTIONS])
    rebuilt = reconstruct_sentences(model, originals)
    yield "reconstructions.txt", "".join(f"  {a}\n→ {b}\n\n" for a, b in zip(originals, rebuilt))
    if history:
        yield "curves.png", plots.training_curves_figure(history)


__all__ = ["TextModality", "load_vocabulary", "text_outputs", "VOCAB_FILE", "MAX_SENTENCE_CHARS"]
