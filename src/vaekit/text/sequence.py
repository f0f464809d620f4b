"""p(x|z) for sentences: an autoregressive categorical distribution over token sequences, driven by a GRU.

The sentence VAE keeps the model's shape: the decoder network maps z to the GRU's first state, and this
"likelihood" is a torch Distribution over whole sentences,

    p(x | z) = prod_t p(x_t | x_<t, z),      x = <bos> w1 ... wk <eos> <pad> ... (vaekit.text.vocab)

whose `log_prob(ids)` runs the GRU teacher-forced over the sentence and sums log p over the real target tokens
only (w1 .. wk and <eos>; padding contributes exactly nothing), and whose `sample`/`greedy` generate token by
token. So the ELBO and IWAE objectives read it like any other p(x|z).

z reaches the decoder twice (Bowman et al. 2016 use the first; feeding it at every step as well makes the
decoder's use of z harder to give up): the first hidden state h0 = tanh(W z + b), and, with `z_every_step`, z
concatenated to every input embedding. Word dropout (Bowman et al.) replaces decoder input words by <unk>
with probability `word_dropout` while training, so that the decoder must lean on z.

Shapes: z (..., D) with lead shape (...), ids (..., L) or (B, L) broadcast against it; log_prob returns (...).
"""

from __future__ import annotations

import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID


class SentenceDecoder(nn.Module):
    """Embedding -> GRU -> vocabulary logits, conditioned on z (first state and, optionally, every step)."""

    def __init__(self, vocab_size: int, latent_dim: int, embed_dim: int = 256, hidden: int = 512,
                 z_every_step: bool = True, word_dropout: float = 0.0) -> None:
        super().__init__()
        for name, value, low in (("vocab_size", vocab_size, 5), ("latent_dim", latent_dim, 1),
                                 ("embed_dim", embed_dim, 1), ("hidden", hidden, 1)):
            if int(value) < low:
                raise ConfigError(f"{name} must be >= {low}, got {value}")
        if not 0.0 <= word_dropout < 1.0:
            raise ConfigError(f"word_dropout must be in [0, 1), got {word_dropout}")
        self.vocab_size, self.latent_dim, self.hidden = int(vocab_size), int(latent_dim), int(hidden)
        self.z_every_step, self.word_dropout = bool(z_every_step), float(word_dropout)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.init_state = nn.Linear(latent_dim, hidden)
        self.gru = nn.GRU(embed_dim + (latent_dim if z_every_step else 0), hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def _inputs(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """GRU inputs (N, T, E [+ D]) of tokens (N, T), with z (N, D) appended at every step when asked."""
        e = self.embed(tokens)
        if self.z_every_step:
            e = torch.cat([e, z.unsqueeze(1).expand(-1, tokens.shape[1], -1)], dim=-1)
        return e

    def logits(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (N, T, V) for decoder inputs (N, T) (<bos> w1 .. wk, padded) and codes z (N, D)."""
        if self.training and self.word_dropout > 0:
            # keep <bos> and padding; other words become <unk> with probability word_dropout
            drop = (torch.rand(inputs.shape, device=inputs.device) < self.word_dropout)
            drop &= (inputs != BOS_ID) & (inputs != PAD_ID)
            inputs = inputs.masked_fill(drop, UNK_ID)
        h0 = torch.tanh(self.init_state(z)).unsqueeze(0)  # (1, N, H)
        output, _ = self.gru(self._inputs(inputs, z), h0)
        return self.out(output)

    def step(self, z: torch.Tensor, token: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One generation step: logits (N, V) of the next token after `token` (N,), and the new state."""
        if state is None:
            state = torch.tanh(self.init_state(z)).unsqueeze(0)
        output, state = self.gru(self._inputs(token.unsqueeze(1), z), state)
        return self.out(output[:, 0]), state


class AutoregressiveSentence(D.Distribution):
    """p(x|z) over padded token sequences, for codes z with lead (batch) shape (...)."""

    arg_constraints: dict = {}

    def __init__(self, decoder: SentenceDecoder, z: torch.Tensor) -> None:
        self.decoder, self.z = decoder, z
        super().__init__(batch_shape=z.shape[:-1], validate_args=False)

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log p(ids | z), (...): ids (..., L) or (B, L), <bos> first; the sum over real target tokens."""
        lead = self.batch_shape
        ids = ids.expand(*lead, ids.shape[-1]) if ids.dim() < len(lead) + 1 else ids
        flat_ids = ids.reshape(-1, ids.shape[-1])  # (N, L)
        inputs = flat_ids[:, :-1].masked_fill(flat_ids[:, :-1] == EOS_ID, PAD_ID)  # <bos> w1 .. wk
        targets = flat_ids[:, 1:]  # w1 .. wk <eos>
        logits = self.decoder.logits(self.z.reshape(-1, self.z.shape[-1]), inputs)  # (N, L-1, V)
        # cross_entropy ignores PAD_ID targets exactly: padding adds 0 to the sum
        nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD_ID, reduction="none")
        return -nll.sum(-1).reshape(lead)

    @torch.no_grad()
    def generate(self, max_len: int, temperature: float = 1.0, top_p: float | None = None,
                 greedy: bool = False) -> torch.Tensor:
        """Token ids (N, <= max_len + 2) for every code, N = prod(lead): <bos>, up to max_len words, <eos>, padding
        after it. Greedy takes the most probable word; otherwise it samples at `temperature`, from the smallest
        set of words holding `top_p` of the probability when given (nucleus sampling, Holtzman et al. 2020)."""
        if max_len < 1:
            raise ConfigError(f"max_len must be >= 1, got {max_len}")
        if not greedy and not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
        z = self.z.reshape(-1, self.z.shape[-1])
        n = z.shape[0]
        token = torch.full((n,), BOS_ID, dtype=torch.long, device=z.device)
        out, done, state = [token], torch.zeros(n, dtype=torch.bool, device=z.device), None
        for t in range(max_len + 1):
            logits, state = self.decoder.step(z, token, state)
            logits[:, PAD_ID] = logits[:, BOS_ID] = float("-inf")  # never generated
            if t == max_len:  # the limit: end the sentence
                token = torch.full((n,), EOS_ID, dtype=torch.long, device=z.device)
            elif greedy:
                token = logits.argmax(-1)
            else:
                token = _sample(logits / temperature, top_p)
            token = token.masked_fill(done, PAD_ID)
            out.append(token)
            done |= token == EOS_ID
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)


class SentenceLikelihood(nn.Module):
    """The text likelihood in the model's place: forward(z (..., D)) -> p(x|z), an AutoregressiveSentence.

    The decoder network of a text model passes z through (the GRU that turns it into words lives here), so the
    VAE's decode(z) gives this distribution and the objectives score it by log_prob, as for images."""

    def __init__(self, vocab_size: int, latent_dim: int, **options) -> None:
        super().__init__()
        self.decoder = SentenceDecoder(vocab_size, latent_dim, **options)

    def forward(self, z: torch.Tensor) -> AutoregressiveSentence:
        return AutoregressiveSentence(self.decoder, z)


class PassCode(nn.Module):
    """The decoder network of a text model: z (N, D) passes through to the likelihood (labels are not used)."""

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return z


def _sample(logits: torch.Tensor, top_p: float | None) -> torch.Tensor:
    """One token per row of logits (N, V), from the whole distribution or its top-p nucleus."""
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep the most probable words until their mass reaches top_p (the first word always stays)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1).squeeze(-1)


__all__ = ["SentenceDecoder", "AutoregressiveSentence", "SentenceLikelihood", "PassCode"]
