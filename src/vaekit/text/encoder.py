"""q(z|x) for sentences: a (bidirectional) GRU over the token ids, its final states mapped to [mu, pre-scale].

It keeps the network contract of `vaekit.nets.base`: encoder(x (B, L), c (B, C) or None) -> (B, 2 * latent_dim).
x holds token ids as `Vocabulary.encode_batch` makes them (<bos> w1 .. wk <eos> <pad> ...); the GRU reads each
sentence up to its last real token (packed sequences), so padding changes nothing.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..errors import ConfigError, DataError
from .vocab import PAD_ID


RNN_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


def check_cell(cell: str) -> None:
    """A ConfigError unless `cell` names a recurrent cell ("gru" or "lstm")."""
    if cell not in RNN_CELLS:
        raise ConfigError(f"unknown cell {cell!r}; choose one of: {', '.join(RNN_CELLS)}")


class SentenceEncoder(nn.Module):
    """Embedding -> GRU or LSTM (both directions by default) -> Linear to (B, 2 * latent_dim)."""

    def __init__(self, vocab_size: int, latent_dim: int, embed_dim: int = 256, hidden: int = 256,
                 bidirectional: bool = True, cond_dim: int = 0, cell: str = "gru") -> None:
        super().__init__()
        check_cell(cell)
        for name, value, low in (("vocab_size", vocab_size, 5), ("latent_dim", latent_dim, 1),
                                 ("embed_dim", embed_dim, 1), ("hidden", hidden, 1), ("cond_dim", cond_dim, 0)):
            if int(value) < low:
                raise ConfigError(f"{name} must be >= {low}, got {value}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.gru = RNN_CELLS[cell](embed_dim, hidden, batch_first=True, bidirectional=bidirectional)
        directions = 2 if bidirectional else 1
        self.out = nn.Linear(directions * hidden + cond_dim, 2 * latent_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        ids = x.long()
        lengths = (ids != PAD_ID).sum(1)  # real tokens, <bos> and <eos> included
        if bool((lengths == 0).any()):
            raise DataError("a sentence of padding only cannot be encoded (every row starts with <bos>)")
        ids = ids[:, : int(lengths.max())]  # the padding columns past the longest sentence: no work
        packed = pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # (directions, B, H): the last state of each direction
        if isinstance(h, tuple):  # an LSTM's (hidden, cell) states: the hidden one
            h = h[0]
        h = h.transpose(0, 1).reshape(ids.shape[0], -1)
        if c is not None:
            h = torch.cat([h, c], dim=-1)
        return self.out(h)


__all__ = ["SentenceEncoder"]
