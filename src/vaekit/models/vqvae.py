"""The vector-quantised VAE (VQ-VAE, van den Oord et al. 2017) with a learned autoregressive prior over its codes.

    encoder      z_e(x): L vectors of D entries (a g x g grid for images, L = g^2; L codes of a vector otherwise)
    quantiser    k_l = argmin_j ||z_e,l - e_j||^2, z_q,l = e_{k_l}, over a codebook e_1 .. e_K      (K x D)
    decoder      p(x | z_q) with the configured likelihood; gradients pass z_q -> z_e straight through:
                 z = z_e + sg(z_q - z_e)
    codebook     exponential moving averages of the encoder outputs assigned to each code (Razavi et al. 2019):
                     N_j <- g N_j + (1 - g) n_j,   m_j <- g m_j + (1 - g) sum_{l: k_l = j} z_e,l,   e_j = m_j / N_j
                 (N_j Laplace-smoothed); a code whose N_j falls below `restart_threshold` is dead and is restarted
                 at a random encoder output of the batch (as in Dhariwal et al. 2020), the failure users meet
                 otherwise: a codebook of which a handful of codes are used.
    prior        p(k) = prod_l p(k_l | k_<l, y): a small causal Transformer over the L code indices (raster order).
    loss         the ELBO with q(k|x) a point mass on the nearest codes: -log p(x|z_q) + KL, where
                     KL(q(k|x) || p(k)) = -log p(k(x))       (q has no entropy)
                 so the KL term of `vaekit.objectives.ELBO` is the prior's negative log-likelihood of the codes
                 (the rate of the code in nats), and minimising it trains the prior on the codes the encoder
                 gives; no gradient reaches the encoder through it (the indices are discrete). The commitment
                 loss beta * ||z_e - sg(z_q)||^2 is added to the total as the model's `penalty`.

Training the prior in the same loop as the autoencoder is the second stage of the original recipe run
alongside the first: the prior sees the codes of the current encoder (detached), so resuming a run and several
processes work for it as for any model; with a class-conditional model (model.conditional), the label selects
the prior's start token, so that `vaekit sample --label 3` draws codes of that class (the encoder and the
decoder do not read labels).

Shapes: x (B, *event); codes k (B, L) int64; code vectors z (B, L * D) (L vectors of D, concatenated: the
latent space the analysis tools see); z (S, B, L * D) for several samples.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.distributed as dist
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from ..core import limits
from ..core.distributions import Masked
from ..errors import ConfigError
from ..nets.conv import _halved_sizes
from .base import MODEL_KINDS, Capabilities, ModelParts
from .vae import VAE, VAEOutput

log = logging.getLogger(__name__)

# Largest codebook and code grid a config may ask for (a 4096-code codebook of 2^20 positions is already absurd).
MAX_CODEBOOK = 65536
MAX_CODES = 4096
# Laplace smoothing of the EMA counts (keeps e_j = m_j / N_j finite for unused codes).
EMA_EPSILON = 1e-5
# Below this share of the codebook used on validation data (after USAGE_WARNING_AFTER steps), training warns of a codebook
# collapse.
USAGE_WARNING = 0.25
USAGE_WARNING_AFTER = 200  # codebook updates (training steps) before the warning can fire: restarts need a few


class VectorQuantizer(nn.Module):
    """Nearest-code lookup with an EMA-updated codebook and restarts of dead codes (see the module docstring).

    The codebook and its statistics are buffers, not parameters: the optimiser never touches them, and a
    checkpoint keeps them. Several processes (DDP) add up their counts and sums before the update, so the
    codebook follows the global batch; DDP then broadcasts rank 0's buffers (its restarts) every step."""

    def __init__(self, codebook_size: int, code_dim: int, decay: float, restart_threshold: float) -> None:
        super().__init__()
        self.codebook_size, self.code_dim = codebook_size, code_dim
        self.decay, self.restart_threshold = decay, restart_threshold
        codebook = torch.randn(codebook_size, code_dim) / math.sqrt(code_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", codebook.clone())
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.int64))

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of each vector (N, D) -> (N,): argmin ||z||^2 - 2 z.e + ||e||^2."""
        book = self.codebook.to(z_e.dtype)
        distances = torch.addmm(book.pow(2).sum(1)[None, :], z_e, book.T, alpha=-2.0)  # (N, K), less ||z||^2
        return distances.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors of indices (...) -> (..., D)."""
        return F.embedding(codes, self.codebook)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) encoder outputs -> their codes (N,) and code vectors (N, D); in training mode, updates the
        codebook from them (unless `frozen`: the prior-only stage)."""
        with torch.no_grad():
            codes = self.nearest(z_e.detach())
        if self.training and not self.__dict__.get("frozen", False):
            self._update(z_e.detach(), codes)
        return codes, self.lookup(codes).to(z_e.dtype)

    @torch.no_grad()
    def _update(self, z_e: torch.Tensor, codes: torch.Tensor) -> None:
        z_e = z_e.float()
        counts = torch.bincount(codes, minlength=self.codebook_size).float()  # (K,)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, z_e)  # (K, D)
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if distributed:
            stats = torch.cat([counts[:, None], sums], 1)
            dist.all_reduce(stats)
            counts, sums = stats[:, 0], stats[:, 1:]
        g = self.decay
        self.ema_count.mul_(g).add_(counts, alpha=1 - g)
        self.ema_sum.mul_(g).add_(sums, alpha=1 - g)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + EMA_EPSILON) / (total + self.codebook_size * EMA_EPSILON) * total
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        self.updates += 1
        dead = self.ema_count < self.restart_threshold
        n_dead = int(dead.sum())
        if n_dead:  # the same on every process: the statistics are
            # Restart dead codes at encoder outputs of this batch (of the global batch, with several processes),
            # drawn from a generator seeded by the update count (the same draws when a run is resumed, or split
            # over processes); they keep a count of the threshold, so that a restarted code has a few steps to
            # attract vectors before it counts as dead again.
            if distributed:
                z_e = _global_rows(z_e)
            generator = torch.Generator(device=z_e.device).manual_seed(int(self.updates))
            rows = torch.randint(0, z_e.shape[0], (n_dead,), generator=generator, device=z_e.device)
            fresh = z_e[rows]
            self.codebook[dead] = fresh
            self.ema_count[dead] = self.restart_threshold
            self.ema_sum[dead] = fresh * self.restart_threshold
            self.restarts += n_dead


def _global_rows(rows: torch.Tensor) -> torch.Tensor:
    """The rows (n_r, D) of every process, in rank order: the global batch's, since each process holds a contiguous
    shard of it (`vaekit.training.distributed.shard_rows`)."""
    world = dist.get_world_size()
    count = torch.tensor([rows.shape[0]], device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    most = int(max(int(c) for c in counts))
    padded = torch.zeros((most, rows.shape[1]), dtype=rows.dtype, device=rows.device)
    padded[: rows.shape[0]] = rows
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(c)] for g, c in zip(gathered, counts)])


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), as in van den Oord et al. 2017."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GridEncoder(nn.Module):
    """Images (B, C, H, W) -> (B, D, g, g'): stride-2 convolutions down to the grid, residual blocks, a 1x1 to D."""

    def __init__(self, event_shape: tuple[int, ...], halvings: int, hidden: int, code_dim: int, blocks: int) -> None:
        super().__init__()
        # The first layer halves at once (as in van den Oord et al.): no wide convolution at the full resolution.
        layers: list[nn.Module] = []
        channels = event_shape[0]
        for _ in range(halvings):
            layers += [nn.Conv2d(channels, hidden, 3, stride=2, padding=1), nn.ReLU()]
            channels = hidden
        layers += [nn.Conv2d(channels, hidden, 3, padding=1)]
        layers += [ResidualBlock(hidden) for _ in range(blocks)]
        layers += [nn.ReLU(), nn.Conv2d(hidden, code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GridDecoder(nn.Module):
    """Code vectors (N, L * D) -> likelihood parameters (N, P, C, H, W), retracing the encoder's sizes exactly."""

    def __init__(self, event_shape: tuple[int, ...], halvings: int, hidden: int, code_dim: int, blocks: int,
                 params: int) -> None:
        super().__init__()
        c_data, h, w = event_shape
        sizes = _halved_sizes((h, w), halvings)
        self.grid = (code_dim, *sizes[-1])
        self.out_shape = (params, c_data, h, w)
        layers: list[nn.Module] = [nn.Conv2d(code_dim, hidden, 3, padding=1)]
        layers += [ResidualBlock(hidden) for _ in range(blocks)]
        for i in range(halvings):
            (h_in, w_in), (h_out, w_out) = sizes[-1 - i], sizes[-2 - i]
            pad = (h_out - (2 * h_in - 1), w_out - (2 * w_in - 1))  # hits the encoder's size exactly
            out = params * c_data if i == halvings - 1 else hidden  # the last one gives the likelihood's parameters
            layers += [nn.ReLU(), nn.ConvTranspose2d(hidden, out, 3, stride=2, padding=1, output_padding=pad)]
        if halvings == 0:
            layers += [nn.ReLU(), nn.Conv2d(hidden, params * c_data, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        n = z.shape[0]
        return self.net(z.view(n, self.grid[1], self.grid[2], self.grid[0]).permute(0, 3, 1, 2)).view(n, *self.out_shape)


class VectorEncoder(nn.Module):
    """Any data -> (B, L * D) through the configured network's encoder and a linear map of its output."""

    def __init__(self, encoder: nn.Module, n_codes: int, code_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(2 * n_codes * code_dim, n_codes * code_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.encoder(x, None) if mask is None else self.encoder(x, None, mask)
        return self.head(h)


class VectorDecoder(nn.Module):
    """(N, L * D) -> the configured network's decoder (it ignores labels: only the prior reads them)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z, None)


class CausalBlock(nn.Module):
    """A pre-norm Transformer block with causal self-attention; with a `cache` (a dict per block) it takes the
    new positions only and attends to the keys and values of the earlier ones, which it keeps (incremental
    decoding: one position at a time costs one position's work)."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.ReLU(), nn.Linear(4 * width, width))

    def forward(self, h: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        b, t, w = h.shape  # (B, T, W)
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:  # (B, heads, T_past + T, W / heads) after the earlier positions
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        drop = self.dropout if self.training else 0.0
        # causal over the whole sequence; a cached step's new position sees every earlier one
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=cache is None and t > 1)
        h = h + F.dropout(self.proj(a.transpose(1, 2).reshape(b, t, w)), drop, self.training)
        return h + F.dropout(self.ff(self.norm2(h)), drop, self.training)


class CodePrior(nn.Module):
    """p(k | y) = prod_l p(k_l | k_<l, y): a causal Transformer over the L code indices.

    Input: a start token (one per class for a conditional model) followed by k_1 .. k_{L-1}, each token's
    embedding plus a learned position embedding; output: logits over the K codes at every position (B, L, K).
    Training scores whole sequences at once (`logits`); sampling and the codec go one position at a time with
    cached keys and values (`step`)."""

    def __init__(self, n_codes: int, codebook_size: int, n_starts: int, width: int, layers: int, heads: int,
                 dropout: float) -> None:
        super().__init__()
        self.n_codes, self.codebook_size = n_codes, codebook_size
        self.tokens = nn.Embedding(codebook_size + n_starts, width)
        self.positions = nn.Parameter(torch.randn(n_codes, width) * 0.02)
        self.blocks = nn.ModuleList(CausalBlock(width, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, codebook_size)

    def logits(self, codes: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """Logits (B, L', K) of positions 1 .. L' given codes (B, L' - 1) before them and start tokens (B,)."""
        tokens = torch.cat([(starts + self.codebook_size)[:, None], codes], 1)  # (B, L')
        h = self.tokens(tokens) + self.positions[: tokens.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.out(self.norm(h))

    def step(self, token: torch.Tensor, position: int, caches: list[dict]) -> torch.Tensor:
        """Logits (B, K) of position `position` given the token before it (B,): the start token (code index +
        K) at position 0, else the code at position - 1; `caches` (one dict per block, empty at position 0)
        hold the earlier positions and are extended."""
        h = self.tokens(token)[:, None] + self.positions[position]  # (B, 1, W)
        for block, cache in zip(self.blocks, caches):
            h = block(h, cache)
        return self.out(self.norm(h))[:, 0]

    def log_prob(self, codes: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """log p(k) (B,) of codes (B, L)."""
        logits = self.logits(codes[:, :-1], starts)  # (B, L, K)
        return -F.cross_entropy(logits.transpose(1, 2), codes, reduction="none").sum(1)

    def walk(self, starts: torch.Tensor, choose) -> torch.Tensor:
        """Codes (n, L) chosen position by position: `choose(position, probabilities (n, K) float64)` returns
        the codes (n,) of that position (a draw, or the codes being coded)."""
        caches: list[dict] = [{} for _ in self.blocks]
        token = starts + self.codebook_size
        codes = []
        for position in range(self.n_codes):
            probs = torch.softmax(self.step(token, position, caches).double(), -1)
            token = choose(position, probs).to(starts.device).long()
            codes.append(token)
        return torch.stack(codes, 1)

    @torch.no_grad()
    def sample(self, starts: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes (n, L) drawn position by position from p(k | y) for start tokens (n,)."""
        return self.walk(starts, lambda _, probs: torch.multinomial(probs.float(), 1, generator=generator)[:, 0])


class CodePosterior(D.Distribution):
    """q(k|x): a point mass on the nearest codes, as a distribution over code vectors z (B, L * D).

    Its draws are the code vectors with the straight-through gradient to the encoder's outputs, its log
    density is 0 (q(k|x) = 1 at its codes; it has no entropy), and `deterministic` tells the importance-sampled
    NLL that one draw is exact."""

    arg_constraints: dict = {}
    has_rsample = True
    deterministic = True

    def __init__(self, z_e: torch.Tensor, z_q: torch.Tensor, codes: torch.Tensor) -> None:
        self.z_e, self.z_q, self.codes = z_e, z_q, codes  # (B, L*D), (B, L*D), (B, L)
        super().__init__(z_q.shape[:-1], z_q.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.z_q

    @property
    def base_dist(self) -> D.Normal:
        """The code vectors as a Normal of the smallest spread (what the latent tools read as q's spread)."""
        return D.Normal(self.z_q, torch.full_like(self.z_q, 1e-5), validate_args=False)

    def rsample(self, sample_shape: torch.Size = torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        z = self.z_e + (self.z_q - self.z_e).detach()  # straight-through
        return z.expand(*sample_shape, *z.shape)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.z_q.detach().expand(*sample_shape, *self.z_q.shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)


class CodePriorDistribution(D.Distribution):
    """p(z) over code vectors: log p(z) = log p(k(z) | y), k(z) the nearest codes of z's L vectors (B, L * D).

    `known` = (z, codes) of the posterior that drew z spares the nearest-code search for the training step."""

    arg_constraints: dict = {}

    def __init__(self, model: "VQVAE", starts: torch.Tensor | None, known: tuple | None = None) -> None:
        self.model, self.starts, self.known = model, starts, known
        super().__init__(torch.Size(() if starts is None else starts.shape), torch.Size([model.latent_dim]),
                         validate_args=False)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """Code vectors (*sample_shape, *batch, L * D) of codes drawn from the prior."""
        shape = torch.Size(sample_shape) + self.batch_shape
        n = math.prod(shape)
        labels = None if self.starts is None else torch.as_tensor(self.starts).reshape(-1).repeat(n // max(
            1, math.prod(self.batch_shape)))
        return self.model.prior_codes(n, labels).view(*shape, self.model.latent_dim)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        if self.known is not None and z.shape[-2:] == self.known[0].shape:
            codes = self.known[1].expand(*lead, self.known[1].shape[-1])
        else:
            codes = self.model.codes_of(z.detach())  # (..., L)
        flat = codes.reshape(-1, self.model.n_codes)
        starts = self.model.start_tokens(self.starts, flat.shape[0], lead)
        return self.model.code_prior.log_prob(flat, starts).view(lead)


class VQPrior(nn.Module):
    """The prior slot of the model (`VAE.prior`): p(z) over code vectors through the code prior; its KL is
    log q - log p = -log p(k(x)), the code's rate in nats (Prior's Monte Carlo rule, exact here)."""

    analytic_kl = False
    factorised = False
    label_conditional = False

    def __init__(self) -> None:
        super().__init__()
        self.owner: list = []  # the model, outside the module tree (no cycle in state_dict)

    def attach(self, model: nn.Module) -> None:
        self.owner[:] = [model]

    def init_from_data(self, x, generator=None, labels=None) -> None:
        """Nothing to start from the data."""

    def forward(self, c: torch.Tensor | None = None) -> CodePriorDistribution:
        return CodePriorDistribution(self.owner[0], None)

    def kl(self, qz: D.Distribution, z: torch.Tensor, pz: D.Distribution | None = None) -> torch.Tensor:
        pz = self() if pz is None else pz
        return qz.log_prob(z) - pz.log_prob(z)

    def marginal_kl_per_dim(self, qz, generator=None) -> torch.Tensor:
        """No per-dimension KL exists for a discrete code: zeros (B, D) (the codebook diagnostics say more)."""
        return torch.zeros(qz.mean.shape, dtype=qz.mean.dtype, device=qz.mean.device)


class VQVAE(VAE):
    """Encoder, vector quantiser, decoder with the configured likelihood, and a code prior (module docstring)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood, event_shape: tuple[int, ...],
                 n_codes: int, codebook_size: int, code_dim: int, quantizer: VectorQuantizer, code_prior: CodePrior,
                 commitment: float, num_classes: int = 0, grid: tuple[int, int] | None = None,
                 prior_epochs: int = 0) -> None:
        super().__init__(encoder, decoder, likelihood, VQPrior(), n_codes * code_dim, event_shape, num_classes,
                         posterior=nn.Identity())
        self.quantizer, self.code_prior = quantizer, code_prior
        self.n_codes, self.codebook_size, self.code_dim = n_codes, codebook_size, code_dim
        self.commitment = commitment
        self.grid = grid  # (g, g') for images, None for a vector of codes
        self.prior_epochs = prior_epochs
        self.prior_only = False  # the second stage: the autoencoder and codebook frozen, the prior trained

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the training loop before each epoch: the last `prior_epochs` epochs of a run train the prior
        alone, on the codes of the frozen encoder and codebook (the original recipe's second stage)."""
        self.prior_only = self.prior_epochs > 0 and epoch >= epochs - self.prior_epochs
        self.quantizer.__dict__["frozen"] = self.prior_only
        if self.prior_epochs >= epochs and not self.__dict__.get("_stage_warned"):
            self.__dict__["_stage_warned"] = True
            log.warning("model.kind.prior_epochs (%d) is not less than train.epochs (%d): every epoch trains only the "
                        "prior, and the autoencoder keeps its initial (or resumed) weights", self.prior_epochs, epochs)

    # A conditional VQ-VAE's label reaches its prior only (the start token): what needs a decoder that reads the
    # label (style transfer, a class grid of shared styles) refuses it.
    label_in_prior_only = True

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(density=True, kl_per_dimension=False, entropy_coding=False)

    def _encoder_outputs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """z_e (B, L * D), position-major: the L vectors of D entries one after another."""
        if self.grid is not None:
            h = self.encoder(x if mask is None else x * mask)  # (B, D, g, g')
            return h.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.encoder(x if mask is None else x * mask, mask)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> CodePosterior:
        """q(k|x) as a point mass on the code vectors (`CodePosterior`)."""
        if self.conditional and y is not None:
            self.condition(y, x.shape[0])  # checks the labels
        z_e = self._encoder_outputs(x, mask)
        codes, z_q = self.quantizer(z_e.reshape(-1, self.code_dim))
        b = x.shape[0]
        return CodePosterior(z_e, z_q.view(b, -1), codes.view(b, self.n_codes))

    def codes(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The code indices of each input (B, L), without updating the codebook."""
        with torch.no_grad():
            z_e = self._encoder_outputs(x, mask)
            return self.quantizer.nearest(z_e.reshape(-1, self.code_dim)).view(x.shape[0], self.n_codes)

    def codes_of(self, z: torch.Tensor) -> torch.Tensor:
        """The nearest codes (..., L) of code vectors z (..., L * D)."""
        lead = z.shape[:-1]
        return self.quantizer.nearest(z.reshape(-1, self.code_dim)).view(*lead, self.n_codes)

    def vectors_of(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors (..., L * D) of code indices (..., L)."""
        return self.quantizer.lookup(codes).flatten(-2)

    def start_tokens(self, y: torch.Tensor | None, n: int, lead: tuple = ()) -> torch.Tensor:
        """The prior's start token of each of n rows: the class for a conditional model given labels, else 0."""
        device = self.quantizer.codebook.device
        if not self.conditional or y is None:
            return torch.zeros(n, dtype=torch.long, device=device)
        y = torch.as_tensor(y, device=device).long().reshape(-1)
        if y.numel() == 1:
            return y.expand(n)
        return y.expand(*lead[:-1], y.shape[0]).reshape(-1) if lead else y

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> D.Distribution:
        """p(x|z) for code vectors z (..., L * D) (labels are not read: only the prior depends on them)."""
        lead = z.shape[:-1]
        params = self.decoder(z.reshape(-1, self.latent_dim))  # (N, P, *event)
        return self.likelihood(params.view(*lead, *params.shape[1:]))

    def prior_for(self, y: torch.Tensor | None, batch_size: int) -> CodePriorDistribution:
        if self.conditional and y is not None:
            self.condition(y, batch_size)
        return CodePriorDistribution(self, y if self.conditional else None)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, n_samples: int = 1,
                mask: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> VAEOutput:
        """Encode and quantise, decode the straight-through code vectors (one draw: q is a point mass; `noise`
        is not read), and the commitment penalty beta * ||z_e - sg(z_q)||^2 per example."""
        if self.prior_only and self.training:  # second stage: no gradient reaches the autoencoder
            with torch.no_grad():
                qz = self.encode(x, y, mask)
                z = qz.sample((n_samples,))
                px = self.decode(z, y)
            pz = CodePriorDistribution(self, y if self.conditional else None, known=(qz.z_q, qz.codes))
            return VAEOutput(qz=qz, z=z, px=px, pz=pz, penalty=None)
        qz = self.encode(x, y, mask)
        z = qz.rsample((n_samples,))  # (S, B, L*D), identical draws
        px = self.decode(z, y)
        if mask is not None:
            px = Masked(px, mask)
        pz = CodePriorDistribution(self, y if self.conditional else None, known=(qz.z_q, qz.codes))
        penalty = self.commitment * (qz.z_e - qz.z_q.detach()).pow(2).sum(-1)  # (B,)
        return VAEOutput(qz=qz, z=z, px=px, pz=pz, penalty=penalty)

    def prior_codes(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """n code vectors (n, L * D) of codes drawn from the prior (of the labels' classes, if given)."""
        was = self.code_prior.training
        self.code_prior.eval()
        try:
            starts = self.start_tokens(labels, n)
            return self.vectors_of(self.code_prior.sample(starts))
        finally:
            self.code_prior.train(was)

    def _prior_sample_bytes(self) -> int:
        """Bytes per sample of drawing codes: the Transformer's activations over L positions (every step
        recomputes the sequence so far) and the logits."""
        width = self.code_prior.out.in_features
        return self.n_codes * (8 * width + 2 * self.codebook_size) * limits.FLOAT_BYTES

    @torch.no_grad()
    def codebook_usage(self, x: torch.Tensor, batch_size: int = 1024) -> dict[str, float]:
        """Codebook diagnostics on data x: the share of the K codes used at least once, the perplexity
        exp(H) of the code frequencies (K when all are used equally), and the number of codes used."""
        counts = torch.zeros(self.codebook_size, dtype=torch.float64)
        device = self.quantizer.codebook.device
        for start in range(0, x.shape[0], batch_size):
            xb = torch.as_tensor(x[start : start + batch_size]).to(device=device, dtype=self.quantizer.codebook.dtype)
            counts += torch.bincount(self.codes(xb).reshape(-1), minlength=self.codebook_size).double().cpu()
        p = counts / counts.sum().clamp_min(1)
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        used = int((counts > 0).sum())
        return {"codebook_usage": used / self.codebook_size, "codebook_perplexity": math.exp(entropy),
                "codes_used": used}

    def diagnostics(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """The model kind's own per-epoch diagnostics (logged with the validation terms): codebook usage, with a
        warning (once per process) when less than USAGE_WARNING of the codebook is in use."""
        usage = self.codebook_usage(x)
        settled = int(self.quantizer.updates) >= USAGE_WARNING_AFTER
        if settled and usage["codebook_usage"] < USAGE_WARNING and not self.__dict__.get("_usage_warned"):
            self.__dict__["_usage_warned"] = True
            restart = self.quantizer.restart_threshold
            log.warning("codebook collapse: only %d of %d codes are used on the validation data (perplexity %.1f); "
                        "dead codes are restarted %s; a smaller model.kind.codebook_size or a lower model.kind.decay "
                        "also help (docs/failure_modes.md)", usage["codes_used"], self.codebook_size,
                        usage["codebook_perplexity"],
                        f"below an EMA count of {restart:g}" if restart > 0 else
                        "never (model.kind.restart_threshold = 0: set it to 1 to restart them)")
        return usage


def _grid_halvings(event_shape: tuple[int, ...], grid: int | None) -> int:
    """Stride-2 layers that bring an image to a code grid of side `grid` (None: two halvings, 28 -> 7)."""
    h, w = event_shape[-2:]
    sizes = _halved_sizes((h, w), 12)
    if grid is None:
        return 2 if min(h, w) >= 8 else 0
    for n, (gh, gw) in enumerate(sizes):
        if max(gh, gw) == grid:
            return n
        if max(gh, gw) < grid:
            break
    choices = sorted({max(s) for s in sizes}, reverse=True)
    raise ConfigError(f"model.kind.grid {grid} cannot be reached by halving {h}x{w} images; choose one of "
                      f"{', '.join(map(str, choices))}")


@MODEL_KINDS.register("vqvae")
def vqvae(parts: ModelParts, codebook_size: int = 512, grid: int | None = None, codes: int | None = None,
          commitment: float = 0.25, decay: float = 0.99, restart_threshold: float = 1.0, hidden: int = 64,
          blocks: int = 2, prior_width: int = 128, prior_layers: int = 2, prior_heads: int = 4,
          prior_dropout: float = 0.0, prior_epochs: int = 0) -> VQVAE:
    """Vector-quantised VAE: model.latent_dim-sized codes from a codebook, and a Transformer prior over them.

    `codebook_size` K codes of model.latent_dim entries each; images (C, H, W): a code grid of side `grid` (reached
    by stride-2 layers of `hidden` channels and `blocks` residual blocks; default: a quarter of the side, 28 -> 7);
    other data, or images when `codes` is set: `codes` code vectors (default 8) from the configured model.network. `commitment` beta, codebook EMA
    `decay`, `restart_threshold` (EMA count below which a code is restarted), the prior's size, and
    `prior_epochs`: the run's last epochs that train the prior alone on frozen codes (0: none).
    """
    if parts.sequence_data:
        raise ConfigError("model.kind 'vqvae' needs data of a fixed size; for sentences use model.kind 'vae'")
    if parts.prior_name != "normal" or parts.posterior_name != "gaussian":
        raise ConfigError("model.kind 'vqvae' has its own prior (a Transformer over the codes) and posterior (the "
                          "nearest codes): leave model.prior and model.posterior unset")
    if not 2 <= codebook_size <= MAX_CODEBOOK:
        raise ConfigError(f"model.kind.codebook_size must be 2 to {MAX_CODEBOOK:,}, got {codebook_size}")
    if not 0.0 <= commitment <= 100.0 or not math.isfinite(commitment):
        raise ConfigError(f"model.kind.commitment must be in [0, 100], got {commitment}")
    if not 0.0 < decay < 1.0:
        raise ConfigError(f"model.kind.decay must be in (0, 1), got {decay}")
    if not 0.0 <= restart_threshold <= 1e6 or not math.isfinite(restart_threshold):
        raise ConfigError(f"model.kind.restart_threshold must be in [0, 1e6] (0: never restart), got "
                          f"{restart_threshold}")
    for name, value, top in (("hidden", hidden, 4096), ("blocks", blocks, 32), ("prior_width", prior_width, 4096),
                             ("prior_layers", prior_layers, 32), ("prior_heads", prior_heads, 64)):
        if not (0 if name == "blocks" else 1) <= value <= top:
            raise ConfigError(f"model.kind.{name} must be {0 if name == 'blocks' else 1} to {top}, got {value}")
    if prior_width % prior_heads:
        raise ConfigError(f"model.kind.prior_width ({prior_width}) must be a multiple of prior_heads ({prior_heads})")
    if not 0 <= prior_epochs <= 1_000_000:
        raise ConfigError(f"model.kind.prior_epochs must be 0 to 1,000,000, got {prior_epochs}")
    if not 0.0 <= prior_dropout < 1.0:
        raise ConfigError(f"model.kind.prior_dropout must be in [0, 1), got {prior_dropout}")
    code_dim, event = parts.latent_dim, tuple(parts.event_shape)
    image = len(event) == 3 and min(event[-2:]) >= 2 and codes is None
    if image:
        halvings = _grid_halvings(event, grid)
        gh, gw = _halved_sizes(event[-2:], halvings)[-1]
        n_codes, grid_shape = gh * gw, (gh, gw)
        encoder = GridEncoder(event, halvings, hidden, code_dim, blocks)
        decoder = GridDecoder(event, halvings, hidden, code_dim, blocks, parts.likelihood.params_per_entry)
    else:
        if grid is not None:
            raise ConfigError("model.kind.grid is the code grid of images (C, H, W) and model.kind.codes a number "
                              "of code vectors from model.network: set one of them")
        n_codes, grid_shape = 8 if codes is None else codes, None
        if not 1 <= n_codes <= MAX_CODES:
            raise ConfigError(f"model.kind.codes must be 1 to {MAX_CODES:,}, got {n_codes}")
        nets = parts.networks(n_codes * code_dim)
        encoder = VectorEncoder(nets.encoder, n_codes, code_dim)
        decoder = VectorDecoder(nets.decoder)
    if n_codes > MAX_CODES:
        raise ConfigError(f"a code grid of {n_codes:,} positions is more than {MAX_CODES:,}; choose a smaller "
                          "model.kind.grid")
    quantizer = VectorQuantizer(codebook_size, code_dim, decay, restart_threshold)
    prior = CodePrior(n_codes, codebook_size, max(1, parts.num_classes), prior_width, prior_layers, prior_heads,
                      prior_dropout)
    return VQVAE(encoder, decoder, parts.likelihood, event, n_codes, codebook_size, code_dim, quantizer, prior,
                 commitment, parts.num_classes, grid_shape, prior_epochs)
