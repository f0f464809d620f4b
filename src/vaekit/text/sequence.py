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
from ..likelihoods import LIKELIHOODS
from .encoder import RNN_CELLS, check_cell
from .vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

# Vocabularies larger than this get an adaptive softmax by default, its head holding the ADAPTIVE_HEAD most frequent
# ids (vocabulary ids are ranked by frequency after the four specials).
ADAPTIVE_ABOVE, ADAPTIVE_HEAD = 4000, 2000


class OutputLayer(nn.Module):
    """Recurrent outputs h (..., H) -> normalised log-probabilities over the vocabulary.

    With `cutoffs` it is an adaptive softmax (Grave et al. 2017, torch's AdaptiveLogSoftmaxWithLoss): the most
    frequent ids below cutoffs[0] and one entry per cluster in a head softmax, the rarer ids in clusters of
    smaller projections. It is still an exact distribution over every word, at a fraction of the (H, V) cost."""

    def __init__(self, hidden: int, vocab_size: int, cutoffs: list[int]) -> None:
        super().__init__()
        cutoffs = [int(c) for c in cutoffs]
        if cutoffs and (cutoffs != sorted(set(cutoffs)) or cutoffs[0] <= UNK_ID or cutoffs[-1] >= vocab_size):
            raise ConfigError(f"cutoffs must increase strictly, from above {UNK_ID} to below the vocabulary size "
                              f"{vocab_size}, got {cutoffs}")
        self.cutoffs = cutoffs
        if cutoffs:
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab_size, cutoffs, div_value=4.0)
        else:
            self.linear = nn.Linear(hidden, vocab_size)

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        """log p(w | h) for every word w: (..., V)."""
        if self.cutoffs:
            flat = h.reshape(-1, h.shape[-1])
            return self.adaptive.log_prob(flat).reshape(*h.shape[:-1], -1)
        return torch.log_softmax(self.linear(h), dim=-1)

    def target_log_prob(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(targets | h): h (M, H), targets (M,) -> (M,)."""
        if self.cutoffs:
            return self.adaptive(h, targets).output
        return -F.cross_entropy(self.linear(h), targets, reduction="none")


def default_cutoffs(vocab_size: int) -> list[int]:
    """The adaptive softmax's cutoffs when none are given: [ADAPTIVE_HEAD] for large vocabularies, else none."""
    return [ADAPTIVE_HEAD] if vocab_size > ADAPTIVE_ABOVE else []


class SentenceDecoder(nn.Module):
    """Embedding -> GRU or LSTM -> vocabulary log-probabilities, conditioned on z (first state and, optionally,
    every step); with `use_z=False` it ignores z: a plain recurrent language model, the baseline of a text VAE.

    An LSTM's first cell state is zero; its first hidden state is tanh(W z + b), as for the GRU. `cutoffs` chooses
    an adaptive softmax (OutputLayer; None: default_cutoffs)."""

    def __init__(self, vocab_size: int, latent_dim: int, embed_dim: int = 256, hidden: int = 512,
                 z_every_step: bool = True, word_dropout: float = 0.0, cell: str = "gru",
                 cutoffs: list[int] | None = None, use_z: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        check_cell(cell)
        for name, value, low in (("vocab_size", vocab_size, 5), ("latent_dim", latent_dim, 1),
                                 ("embed_dim", embed_dim, 1), ("hidden", hidden, 1)):
            if int(value) < low:
                raise ConfigError(f"{name} must be >= {low}, got {value}")
        for name, value in (("word_dropout", word_dropout), ("dropout", dropout)):
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        self.dropout = nn.Dropout(dropout)  # on the word embeddings and the recurrent outputs (Zaremba et al. 2014)
        self.vocab_size, self.latent_dim, self.hidden = int(vocab_size), int(latent_dim), int(hidden)
        self.use_z = bool(use_z)
        self.z_every_step, self.word_dropout = bool(z_every_step) and self.use_z, float(word_dropout)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.init_state = nn.Linear(latent_dim, hidden)
        self.gru = RNN_CELLS[cell](embed_dim + (latent_dim if self.z_every_step else 0), hidden, batch_first=True)
        self.lstm = cell == "lstm"
        self.out = OutputLayer(hidden, vocab_size, default_cutoffs(vocab_size) if cutoffs is None else cutoffs)

    def _inputs(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """GRU inputs (N, T, E [+ D]) of tokens (N, T), with z (N, D) appended at every step when asked."""
        e = self.dropout(self.embed(tokens))
        if self.z_every_step:
            e = torch.cat([e, z.unsqueeze(1).expand(-1, tokens.shape[1], -1)], dim=-1)
        return e

    def logits(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities (N, T, V) for decoder inputs (N, T) (<bos> w1 .. wk, padded) and codes
        z (N, D)."""
        return self.out.log_probs(self.states(z, inputs))

    def states(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced recurrent outputs (N, T, H) for decoder inputs (N, T) and codes z (N, D)."""
        if self.training and self.word_dropout > 0:
            # keep <bos> and padding; other words become <unk> with probability word_dropout
            drop = (torch.rand(inputs.shape, device=inputs.device) < self.word_dropout)
            drop &= (inputs != BOS_ID) & (inputs != PAD_ID)
            inputs = inputs.masked_fill(drop, UNK_ID)
        # Not packed: on the CPU the fused kernel over the padded batch is as fast, and batches of similar lengths
        # (vaekit.training.train buckets text by length) carry little padding.
        output, _ = self.gru(self._inputs(inputs, z), self.first_state(z))
        return self.dropout(output)

    def first_state(self, z: torch.Tensor):
        """The recurrent state before the first word: h0 = tanh(W z + b) (1, N, H); an LSTM's cell state is 0."""
        h0 = torch.tanh(self.init_state(z if self.use_z else torch.zeros_like(z))).unsqueeze(0)
        return (h0, torch.zeros_like(h0)) if self.lstm else h0

    def step(self, z: torch.Tensor, token: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One generation step: log-probabilities (N, V) of the next token after `token` (N,), and the new state."""
        if state is None:
            state = self.first_state(z)
        output, state = self.gru(self._inputs(token.unsqueeze(1), z), state)
        return self.out.log_probs(self.dropout(output[:, 0])), state


# A sentence distribution has no mean, and its draws are made word by word: array-decoding code meets this message.
TEXT_DECODING = ("this is a text model: its codes decode to sentences, not to arrays or images (in Python: "
                 "vaekit.text.generate.decode_codes; on the command line: vaekit sample, reconstruct --text, latent "
                 "interpolate)")


class AutoregressiveSentence(D.Distribution):
    """p(x|z) over padded token sequences, for codes z with lead (batch) shape (...)."""

    arg_constraints: dict = {}

    def __init__(self, decoder: SentenceDecoder, z: torch.Tensor) -> None:
        self.decoder, self.z = decoder, z
        super().__init__(batch_shape=z.shape[:-1], validate_args=False)

    @property
    def mean(self):
        raise ConfigError(TEXT_DECODING)

    def sample(self, sample_shape=torch.Size()):
        raise ConfigError(TEXT_DECODING)

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log p(ids | z), (...): ids (..., L) or (B, L), <bos> first; the sum over real target tokens."""
        lead = self.batch_shape
        ids = ids.expand(*lead, ids.shape[-1]) if ids.dim() < len(lead) + 1 else ids
        flat_ids = ids.reshape(-1, ids.shape[-1])  # (N, L)
        width = int((flat_ids != PAD_ID).sum(-1).max())  # the padding columns past the longest sentence: no work
        flat_ids = flat_ids[:, : max(width, 2)]
        inputs = flat_ids[:, :-1].masked_fill(flat_ids[:, :-1] == EOS_ID, PAD_ID)  # <bos> w1 .. wk
        targets = flat_ids[:, 1:]  # w1 .. wk <eos>
        states = self.decoder.states(self.z.reshape(-1, self.z.shape[-1]), inputs)  # (N, L-1, H)
        # Only the real target positions reach the output layer (the costly (H, V) matmul): padding adds exactly
        # nothing to the sum, and costs nothing.
        real = targets != PAD_ID  # (N, L-1)
        rows = real.nonzero()[:, 0]  # the sentence of each real position, (M,)
        logp = self.decoder.out.target_log_prob(states[real], targets[real])  # (M,)
        total = torch.zeros(flat_ids.shape[0], dtype=logp.dtype, device=logp.device).index_add_(0, rows, logp)
        return total.reshape(lead)

    @torch.no_grad()
    def generate(self, max_len: int, temperature: float = 1.0, top_p: float | None = None,
                 greedy: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
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
                token = _sample(logits / temperature, top_p, generator)
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

    modality = "text"  # it reads sentences only (vaekit.modalities)
    support = "tokens"  # what it models (vaekit.likelihoods.Likelihood.support)
    params_per_entry = 1

    def __init__(self, vocab_size: int, latent_dim: int, max_len: int = 100, **options) -> None:
        super().__init__()
        if max_len < 1:
            raise ConfigError(f"max_len must be >= 1, got {max_len}")
        self.max_len = int(max_len)  # the most words a generated sentence has
        self.decoder = SentenceDecoder(vocab_size, latent_dim, **options)

    def forward(self, z: torch.Tensor) -> AutoregressiveSentence:
        return AutoregressiveSentence(self.decoder, z)


class PassCode(nn.Module):
    """The decoder network of a text model: z (N, D) passes through to the likelihood (labels are not used)."""

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return z


def _sample(logits: torch.Tensor, top_p: float | None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of logits (N, V), from the whole distribution or its top-p nucleus."""
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep the most probable words until their mass reaches top_p (the first word always stays)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    if generator is not None and generator.device != probs.device:
        generator = None  # a CPU generator cannot drive another device's draws: the global RNG does
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@LIKELIHOODS.register("sentence")
def sentence(
    event_shape: tuple[int, ...],
    latent_dim: int,
    vocab_size: int = 0,
    embed_dim: int = 256,
    hidden: int = 512,
    z_every_step: bool = True,
    word_dropout: float = 0.0,
    cell: str = "gru",
    cutoffs: list[int] | None = None,
    use_z: bool = True,
    dropout: float = 0.0,
) -> nn.Module:
    """Sentences: each next word's categorical over the vocabulary, from a GRU or LSTM decoder fed z.

    Padding scores nothing. `cutoffs`: adaptive-softmax clusters (None: [2000] above 4,000 words, [] a full
    softmax); `use_z=false`: a plain language model, the baseline; `dropout` on embeddings and outputs."""
    if vocab_size < 1 or len(event_shape) != 1:
        raise ConfigError("scores sentences of token ids (text data such as ptb or a .txt file), not data of shape "
                          f"{tuple(event_shape)}")
    return SentenceLikelihood(vocab_size, latent_dim, max_len=event_shape[0] - 2, embed_dim=embed_dim,
                              hidden=hidden, z_every_step=z_every_step, word_dropout=word_dropout, cell=cell,
                              cutoffs=cutoffs, use_z=use_z, dropout=dropout)


sentence.modality = "text"  # sentences only: the builder refuses it for other data, and other likelihoods for text


__all__ = ["SentenceDecoder", "AutoregressiveSentence", "SentenceLikelihood", "PassCode", "sentence"]
