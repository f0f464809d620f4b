"""Text in, text out for sentence VAEs: encode sentences, decode codes to sentences (greedy, sampled, top-p or
beam search), sample from the prior, reconstruct, and interpolate between two sentences (the homotopies of
Bowman et al. 2016).

A text model is a `VAE` whose likelihood reads text (`sentence`) and which carries its vocabulary (`model.vocab`,
set by `vaekit.load` from the run's vocab.json and by `fit` from the data). Sentences are strings (split on
whitespace, as PTB is tokenised) or token lists; longer than the model's limit, they are cut with a warning, and
words outside the vocabulary become <unk> (the warning says how many).
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from ..core import limits
from ..errors import ConfigError, DataError
from .corpus import tokenize
from .vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary

log = logging.getLogger(__name__)

STRATEGIES = ("greedy", "sample", "beam")
MAX_BEAM = 64


def is_text_model(model) -> bool:
    """True for a sentence VAE (vaekit.text.model.SentenceVAE, the model with a vocabulary): sentences in and
    out."""
    return hasattr(model, "vocab")


def require_text_model(model, what: str = "this") -> Vocabulary:
    """The vocabulary of a text model; a ConfigError for an image/vector model or a text model without one."""
    if not is_text_model(model):
        raise ConfigError(f"{what} needs a text model (trained on ptb or a .txt file); this one models data of "
                          f"shape {tuple(model.event_shape)}")
    vocab = getattr(model, "vocab", None)
    if vocab is None:
        raise ConfigError("this text model has no vocabulary: load it with vaekit.load(run) (the run folder's "
                          "vocab.json) or set model.vocab")
    return vocab


def max_words(model) -> int:
    """The most words a sentence of this model holds: its data width less <bos> and <eos>."""
    return int(model.event_shape[0]) - 2


def to_ids(model, sentences: Sequence[str] | Sequence[Sequence[str]], warn: bool = True) -> torch.Tensor:
    """Token ids (N, L) of `sentences` (strings or token lists) as the model's data holds them, on its device.

    An empty sentence is a DataError; longer ones are cut to the model's limit and unknown words become <unk>,
    each with a warning (`warn`)."""
    vocab = require_text_model(model)
    if isinstance(sentences, str):
        sentences = [sentences]
    tokens = [tokenize(s) if isinstance(s, str) else list(s) for s in sentences]
    if not tokens:
        raise DataError("no sentences given")
    for i, words in enumerate(tokens):
        if not words:
            raise DataError(f"sentence {i + 1} is empty")
    limit = max_words(model)
    cut = sum(len(words) > limit for words in tokens)
    unknown = sum(vocab.id(w) == UNK_ID and w != "<unk>" for words in tokens for w in words[:limit])
    if warn and cut:
        log.warning("%d sentence(s) are longer than the model's %d words and were cut", cut, limit)
    if warn and unknown:
        log.warning("%d word(s) are not in the model's vocabulary and are read as <unk>", unknown)
    ids, _ = vocab.encode_batch(tokens, max_len=limit)
    x = torch.zeros((ids.shape[0], limit + 2), dtype=torch.int64)
    x[:, : ids.shape[1]] = ids
    return x.to(_device(model))


def to_text(model, ids: torch.Tensor) -> list[str]:
    """The sentences (words joined by spaces) of token-id rows (N, L)."""
    vocab = require_text_model(model)
    return [" ".join(vocab.decode(row)) for row in ids.cpu()]


def check_strategy(strategy: str, temperature: float = 1.0, top_p: float | None = None, beam_size: int = 5) -> None:
    """A ConfigError unless the decoding settings are valid."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown decoding strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if not temperature > 0 or temperature != temperature or temperature == float("inf"):
        raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or not 1 <= beam_size <= MAX_BEAM:
        raise ConfigError(f"beam_size must be a whole number in [1, {MAX_BEAM}], got {beam_size!r}")
    if strategy != "sample" and (temperature != 1.0 or top_p is not None):
        raise ConfigError(f"temperature and top_p apply to strategy 'sample', not {strategy!r}")


@torch.no_grad()
def decode_codes(model, z: torch.Tensor, strategy: str = "greedy", temperature: float = 1.0,
                 top_p: float | None = None, beam_size: int = 5, max_len: int | None = None,
                 generator: torch.Generator | None = None) -> list[str]:
    """The sentences of codes z (N, D): the most probable word at each step ("greedy"), words drawn at
    `temperature` from the `top_p` nucleus ("sample"), or the best of `beam_size` hypotheses ("beam")."""
    check_strategy(strategy, temperature, top_p, beam_size)
    limit = max_words(model) if max_len is None else int(max_len)
    if not 1 <= limit <= max_words(model):
        raise ConfigError(f"max_len must be in [1, {max_words(model)}] (the model's limit), got {max_len}")
    z = z.reshape(-1, model.latent_dim)
    per_row = decode_bytes_per_row(model, beam_size if strategy == "beam" else 1)
    rows = limits.chunk_rows(z.shape[0], per_row)  # codes decoded at once: each step holds (rows, V) scores
    was_training = model.training
    model.eval()
    sentences: list[str] = []
    try:
        for start in range(0, z.shape[0], rows):
            px = model.decode(z[start : start + rows].to(_device(model)))
            if strategy == "beam":
                ids = beam_search(px.decoder, px.z, beam_size, limit)
            else:
                ids = px.generate(limit, temperature=temperature, top_p=top_p, greedy=strategy == "greedy",
                                  generator=generator)
            sentences += to_text(model, ids)
    finally:
        model.train(was_training)
    return sentences


def decode_bytes_per_row(model, beam_size: int = 1) -> int:
    """Bytes one code takes while it is decoded: per hypothesis, a step's scores over the vocabulary (a few
    copies), the recurrent state and the words so far."""
    vocab = require_text_model(model)
    hidden = model.likelihood.decoder.hidden
    return beam_size * (4 * len(vocab) * limits.FLOAT_BYTES + 4 * hidden * limits.FLOAT_BYTES
                        + (max_words(model) + 2) * 8)


@torch.no_grad()
def sample_sentences(model, n: int, strategy: str = "sample", temperature: float = 1.0, top_p: float | None = None,
                     beam_size: int = 5, seed: int | None = None) -> list[str]:
    """`n` new sentences: z ~ p(z), decoded by `strategy` (see `decode_codes`); `seed` makes them repeatable."""
    require_text_model(model)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a whole number >= 1, got {n!r}")
    check_strategy(strategy, temperature, top_p, beam_size)
    # the sentences themselves (words of up to max_len characters each, roughly) and the codes, at once
    limits.check_allocation(n * (model.latent_dim * limits.FLOAT_BYTES + (max_words(model) + 2) * 64),
                            f"sampling {n:,} sentences")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    with _seeded(seed):
        z = model.prior().sample((n,))
    return decode_codes(model, z, strategy, temperature, top_p, beam_size, generator=generator)


@torch.no_grad()
def encode_sentences(model, sentences: Sequence[str] | Sequence[Sequence[str]]) -> torch.Tensor:
    """Posterior means E[z | x] (N, D) of sentences."""
    was_training = model.training
    model.eval()
    try:
        return model.embed(to_ids(model, sentences))
    finally:
        model.train(was_training)


@torch.no_grad()
def reconstruct_sentences(model, sentences: Sequence[str] | Sequence[Sequence[str]], strategy: str = "greedy",
                          beam_size: int = 5) -> list[str]:
    """Each sentence encoded to its posterior mean and decoded (greedy or beam search)."""
    if strategy == "sample":
        raise ConfigError("reconstructions decode greedily or by beam search, not by sampling")
    return decode_codes(model, encode_sentences(model, sentences), strategy, beam_size=beam_size)


@torch.no_grad()
def interpolate_sentences(model, a: str | Sequence[str], b: str | Sequence[str], steps: int = 5,
                          strategy: str = "greedy", beam_size: int = 5, method: str = "linear") -> list[str]:
    """The homotopy between two sentences: z_t = (1 - t) z_a + t z_b (or the spherical path, `method="slerp"`)
    at `steps` evenly spaced t in [0, 1] (both ends included), each decoded; the ends are the reconstructions of
    a and b."""
    from ..core.latent_paths import METHODS, lerp, slerp

    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 1000:
        raise ConfigError(f"steps must be a whole number in [2, 1000], got {steps!r}")
    if strategy == "sample":
        raise ConfigError("interpolations decode greedily or by beam search, not by sampling")
    if method not in METHODS:
        raise ConfigError(f"unknown interpolation {method!r}; choose one of {', '.join(METHODS)}")
    za, zb = encode_sentences(model, [a, b])
    t = torch.linspace(0, 1, steps, device=za.device, dtype=za.dtype)
    path = (lerp if method == "linear" else slerp)(za, zb, t)  # (steps, D)
    return decode_codes(model, path, strategy, beam_size=beam_size)


@torch.no_grad()
def beam_search(decoder, z: torch.Tensor, beam_size: int, max_len: int) -> torch.Tensor:
    """Token ids (N, <= max_len + 2) of the most probable sentence found for each code z (N, D) by a beam of
    `beam_size` hypotheses, ranked by total log-probability (a finished hypothesis keeps its score)."""
    n, k = z.shape[0], beam_size
    device = z.device
    zk = z.repeat_interleave(k, dim=0)  # (N K, D): hypothesis j of code i is row i K + j
    tokens = torch.full((n * k,), BOS_ID, dtype=torch.long, device=device)
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis to start with, so the first step does not repeat it K times
    history = tokens[:, None]
    done = torch.zeros(n * k, dtype=torch.bool, device=device)
    state = None
    for t in range(max_len + 1):
        logp, state = decoder.step(zk, tokens, state)  # (N K, V)
        logp[:, PAD_ID] = logp[:, BOS_ID] = float("-inf")
        if t == max_len:  # the limit: every live hypothesis ends here
            logp = torch.where(torch.arange(logp.shape[1], device=device) == EOS_ID, 0.0, float("-inf")).expand_as(logp)
        # a finished hypothesis continues only with <pad>, at no cost
        finished = torch.full_like(logp, float("-inf"))
        finished[:, PAD_ID] = 0.0
        logp = torch.where(done[:, None], finished, logp)
        vocab = logp.shape[1]
        total = (scores.reshape(-1, 1) + logp).reshape(n, k * vocab)
        scores, flat = total.topk(k, dim=1)  # (N, K)
        parent = flat // vocab + torch.arange(n, device=device)[:, None] * k  # rows of the hypotheses they extend
        tokens = (flat % vocab).reshape(-1)
        parent = parent.reshape(-1)
        history = torch.cat([history[parent], tokens[:, None]], dim=1)
        state = tuple(s[:, parent] for s in state) if isinstance(state, tuple) else state[:, parent]
        done = done[parent] | (tokens == EOS_ID)
        if bool(done.all()):
            break
    best = scores.argmax(dim=1) + torch.arange(n, device=device) * k
    return history[best]


class _seeded:
    """Runs a block under torch.manual_seed(seed), restoring the global RNG after (None: no change)."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        if self.seed is not None:
            self.state = torch.random.get_rng_state()
            torch.manual_seed(self.seed)

    def __exit__(self, *exc) -> None:
        if self.seed is not None:
            torch.random.set_rng_state(self.state)


def _device(model) -> torch.device:
    return next(model.parameters()).device


__all__ = ["is_text_model", "require_text_model", "to_ids", "to_text", "decode_codes", "sample_sentences",
           "encode_sentences", "reconstruct_sentences", "interpolate_sentences", "beam_search", "STRATEGIES"]
