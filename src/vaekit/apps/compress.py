"""Lossless compression with a trained VAE: bits-back coding with asymmetric numeral systems.

BB-ANS (Townsend, Bird & Barber 2019) turns the negative ELBO into a real code length. Per image x, on one ANS
stack (last in, first out):
    encode   z ~ q(z|x)  *decoded* from the stack (this takes bits off it: the "bits back"),
             x encoded with p(x|z), then z encoded with p(z)
    decode   z decoded with p(z), x decoded with p(x|z), z *encoded* back with q(z|x) (returning the bits)
so an image costs -log p(x|z) - log p(z) + log q(z|x) bits on average: the negative ELBO. The latents are
discretised into `bins` buckets of equal mass under the standard normal prior (bucket k spans the prior
quantiles k/bins .. (k+1)/bins and stands for its median), so p(z) is uniform over buckets and q(z|x) is the
mass of the posterior Gaussian in each bucket. Images are coded in batches (every step vectorised over a batch),
which is the same scheme with a batch in place of an image. The batches start at one image and grow with the
images already coded (BATCH_GROWTH), up to `batch` images, so the stack need only start from one image's worth
of random words (counted in the size), and every later batch decodes from the bits the earlier ones wrote.

Any likelihood over discrete levels codes: Bernoulli (binary images, 2 levels) and the discretized logistic
mixture (8-bit images, 256 levels). Binary values are coded one step each: P(x_i = 1 | z) from
`Likelihood.level_probs`, and each latent bucket from its 256-entry table under q(z|x). 8-bit values and their
latent buckets are coded in two steps (GROUP): the symbol's group of 16, then its place in the group, each a
16-entry categorical made from the CDF at the boundaries (`level_cdf` of the likelihood, the normal CDF of
q(z|x)). P(group) P(place | group) is the symbol's probability, so the code length is that of the 256-entry
tables, while a pixel needs the CDF at 2 x 15 boundaries per mixture component instead of a 256-level table
(over ten times faster each way on MNIST). The entropy coder is `constriction` (its ANS stack and categorical,
Bernoulli and uniform models); nothing here is hand-written coding. Encoder and decoder compute the same
probabilities only on the same kind of machine and software (floating point must agree bit for bit): a file
is meant to be decoded where such a model runs, and a mismatch is caught by the data checksum, never returned.

The `.vkz` container is in `vaekit.apps.vkz`; this codec's header adds the batch size, the latent buckets, the
number of random initial words, the number of levels, the SHA-256 of the original data and, for the two-step
code, the group size ("group": 16, in format version 3; files of version 2 hold the one-step code, which is
still read).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from ..core.runtime import to_model
from ..errors import DataError
from ..models.vae import VAE
from . import vkz
from .vkz import CompressionError, model_fingerprint

LATENT_BINS = 256  # buckets per latent dimension (8 bits of latent precision, as in the BB-ANS paper)
BATCH = 256  # images coded together (at most; fewer when their probability tables would not fit PROBS_BYTES)
PROBS_BYTES = 128 * 2**20  # bytes the per-value probability tables of one batch may take
# Probabilities are kept away from 0 and 1 so that every symbol stays codable after quantisation.
MIN_PROBABILITY = 1e-7


def _levels(model: VAE) -> int:
    """The number of discrete levels of the model's likelihood; a CompressionError when it has none."""
    vkz.check_codable(model, "lossless compression")
    levels = getattr(model.likelihood, "levels", None)
    if levels is None:
        raise CompressionError("lossless compression needs a likelihood over discrete levels: bernoulli (binary "
                               "images) or discretized-logistic (8-bit images); this model's is "
                               f"{type(model.likelihood).__name__} (lossy coding works with it: --lossy, or "
                               "lossy=True)")
    return levels


def _support_message(levels: int) -> str:
    if levels == 2:
        return "a Bernoulli model codes binary data: every value must be 0 or 1"
    return (f"a model of {levels} levels codes integers 0..{levels - 1} or the values k/{levels - 1} exactly "
            "(8-bit images: uint8 grey levels)")


def _to_values(symbols: np.ndarray, levels: int, dtype: np.dtype) -> np.ndarray:
    """Symbols k back in the input's dtype: integers as they were, booleans, or floats k / (levels - 1)."""
    if dtype.kind in "biu":
        return symbols.astype(dtype)
    return (symbols.astype(np.float64) / (levels - 1)).astype(dtype)


def to_symbols(model: VAE, array: np.ndarray) -> np.ndarray:
    """The input as level indices, uint8 (N, *event); a CompressionError when it does not fit the model.

    Integers (and booleans) are the level indices themselves; floats must be exactly k / (levels - 1) in their
    dtype (as data loaders make them: uint8 / 255), so that decoding returns the very same values.
    """
    levels = _levels(model)
    x = vkz.as_batch(model, array)
    if x.dtype.kind not in "biuf" or (x.dtype.kind == "b" and levels != 2):
        raise CompressionError(_support_message(levels))
    if x.dtype.kind in "biu":
        if x.size and (x.min() < 0 or x.max() > levels - 1):
            raise CompressionError(_support_message(levels))
        return x.astype(np.uint8)
    with np.errstate(invalid="ignore"):
        k = np.rint(x.astype(np.float64) * (levels - 1))
    if not np.isfinite(k).all() or k.min() < 0 or k.max() > levels - 1:
        raise CompressionError(_support_message(levels))
    symbols = k.astype(np.uint8)
    if not np.array_equal(_to_values(symbols, levels, x.dtype), x):
        raise CompressionError(_support_message(levels))
    return symbols


def _bucket_edges(bins: int) -> np.ndarray:
    """Standard normal quantiles 0/bins .. bins/bins: (bins + 1,), with -inf and inf at the ends."""
    from scipy.stats import norm

    return norm.ppf(np.arange(bins + 1) / bins)


def _bucket_centres(bins: int) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf((np.arange(bins) + 0.5) / bins)


def _posterior(model: VAE, symbols: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation of q(z|x) for each latent of the batch: (B * D, 1) float64 each."""
    x = torch.as_tensor(symbols, dtype=torch.float32) / (levels - 1)
    qz = model.encode(to_model(model, x))
    mu = qz.base_dist.loc.double().cpu().numpy().reshape(-1, 1)  # (B * D, 1)
    return mu, qz.base_dist.scale.double().cpu().numpy().reshape(-1, 1)


def _posterior_row(model: VAE, symbols: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation of q(z|x) for each latent of the batch: (1, B * D) float64 each."""
    mu, sigma = _posterior(model, symbols, levels)
    return mu.reshape(1, -1), sigma.reshape(1, -1)


def _posterior_buckets(model: VAE, symbols: np.ndarray, levels: int, edges: np.ndarray) -> np.ndarray:
    """q(z_d|x) as probabilities over the buckets: (B * D, bins) float64, each row summing to 1."""
    from scipy.special import ndtr

    mu, sigma = _posterior(model, symbols, levels)
    cdf = ndtr((edges[None, :] - mu) / sigma)  # (B * D, bins + 1)
    probs = np.clip(np.diff(cdf, axis=1), MIN_PROBABILITY, None)
    return probs / probs.sum(axis=1, keepdims=True)


def _value_probabilities(model: VAE, z_buckets: np.ndarray, centres: np.ndarray, batch: int) -> np.ndarray:
    """p(x_i = k | z) for every value of the batch: (B * F, levels) float64 (for 2 levels: (B * F,), P(x_i = 1))."""
    probs = model.likelihood.level_probs(_decode(model, z_buckets, centres, batch)).cpu().numpy()
    probs = np.clip(probs.reshape(-1, probs.shape[-1]), MIN_PROBABILITY, 1.0)  # (B * F, levels)
    if probs.shape[-1] == 2:
        return np.clip(probs[:, 1] / probs.sum(axis=1), MIN_PROBABILITY, 1.0 - MIN_PROBABILITY)
    return probs


def _decode(model: VAE, z_buckets: np.ndarray, centres: np.ndarray, batch: int):
    """p(x|z) of the batch, z at the centres of its latent buckets."""
    z = torch.as_tensor(centres[z_buckets].reshape(batch, model.latent_dim), dtype=torch.float32)
    return model.decode(to_model(model, z))


# Two-step coding (files of format version 3, header field "group"): a symbol s of n levels (a latent bucket, or an
# 8-bit value) is coded as its group s // GROUP, then its place s % GROUP in the group. The group's mass is a
# difference of the CDF at two group boundaries, the place's a difference of the CDF at two boundaries inside
# the group, divided by the group's mass; so P(group) P(place | group) = P(s), the code length is that of one
# n-level categorical, and a symbol needs the CDF at 2 x (GROUP - 1) inner boundaries instead of an n-entry table.
# The CDFs are laid out boundary by boundary, (boundaries, symbols), so that each step vectorises over the symbols.
GROUP = 16


def _rows(low, inner: torch.Tensor, high, normalise: bool = True) -> np.ndarray:
    """Probabilities from a CDF at consecutive boundaries, laid out boundary by boundary: `inner` (G - 1, ...)
    and the ends `low` and `high` (1, ...) or scalars. Returns (R, G) float64 rows, each at least MIN_PROBABILITY
    and normalised (without `normalise`, rows from 0 to 1 are taken as they are; a row without mass, a far tail
    emptied by rounding, becomes uniform)."""
    masses = torch.empty((inner.shape[0] + 1, *inner.shape[1:]), dtype=inner.dtype)  # the CDF's differences
    torch.sub(inner[:1], low, out=masses[:1])
    torch.sub(inner[1:], inner[:-1], out=masses[1:-1])
    torch.sub(high, inner[-1:], out=masses[-1:])
    masses = masses.reshape(len(masses), -1)
    if normalise:
        masses = masses.clamp_min_(0.0).div_(masses.sum(0, keepdim=True).clamp_min_(torch.finfo(masses.dtype).tiny))
    return np.ascontiguousarray(masses.clamp_min_(MIN_PROBABILITY).numpy().T, dtype=np.float64)


def _split(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symbols (any shape) as flat int32 groups and places."""
    flat = symbols.reshape(-1).astype(np.int32)
    return flat // GROUP, flat % GROUP


def _value_group_cdf(model: VAE, px, levels: int) -> torch.Tensor:
    """P(k < g * GROUP | z) at the inner group boundaries g = 1 .. levels / GROUP - 1: (G - 1, B, *event)."""
    return model.likelihood.level_cdf(px, torch.arange(GROUP, levels, GROUP)).movedim(-1, 0).cpu()


def _value_group_rows(group_cdf: torch.Tensor) -> np.ndarray:
    return _rows(torch.zeros(()), group_cdf, torch.ones(()), normalise=False)


def _value_place_rows(model: VAE, px, group_cdf: torch.Tensor, groups: np.ndarray) -> np.ndarray:
    """P(k % GROUP = j | k // GROUP = g, z) for each value's group g: (B * F, GROUP) float64."""
    g = torch.from_numpy(groups.astype(np.int64)).reshape(group_cdf.shape[1:])  # (B, *event)
    inner = model.likelihood.level_cdf(px, torch.arange(1, GROUP), first=g * GROUP).movedim(-1, 0).cpu()
    padded = torch.empty((len(group_cdf) + 2, *group_cdf.shape[1:]))  # the CDF at every group boundary, 0 .. G
    padded[0], padded[1:-1], padded[-1] = 0.0, group_cdf, 1.0
    g = g.unsqueeze(0)
    return _rows(padded.gather(0, g), inner, padded.gather(0, g + 1))


def _latent_cdf(mu: np.ndarray, sigma: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The posterior Gaussian's CDF at latent bucket edges (E, 1) or (E, B * D): (E, B * D) float64."""
    from scipy.special import ndtr

    return ndtr((edges - mu) / sigma)


def _latent_group_rows(latent_cdf: np.ndarray) -> np.ndarray:
    cdf = torch.from_numpy(latent_cdf)
    return _rows(cdf[:1], cdf[1:-1], cdf[-1:])


def _latent_place_rows(mu, sigma, latent_cdf: np.ndarray, groups: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """q(z % GROUP = j | z // GROUP = g, x) for each latent's bucket group g: (B * D, GROUP) float64."""
    inner = _latent_cdf(mu, sigma, edges[groups * GROUP + np.arange(1, GROUP)[:, None]])  # (GROUP - 1, B * D)
    columns = np.arange(len(groups))
    return _rows(*(torch.from_numpy(c) for c in (latent_cdf[groups, columns][None], inner,
                                                 latent_cdf[groups + 1, columns][None])))


def _push_grouped(coder, family, model: VAE, xb: np.ndarray, levels: int, edges: np.ndarray,
                  centres: np.ndarray) -> np.ndarray:
    """Codes one batch in two steps: z ~ q(z|x) decoded from the stack (bits back), then x under p(x|z) pushed;
    returns the latent buckets z (the caller pushes them under p(z))."""
    mu, sigma = _posterior_row(model, xb, levels)
    latent_cdf = _latent_cdf(mu, sigma, edges[::GROUP, None])  # at the group edges, (LATENT_BINS / GROUP + 1, B * D)
    z_groups = coder.decode(family, _latent_group_rows(latent_cdf))
    z_places = coder.decode(family, _latent_place_rows(mu, sigma, latent_cdf, z_groups, edges))
    z = z_groups * GROUP + z_places
    px = _decode(model, z, centres, len(xb))
    groups, places = _split(xb)
    group_cdf = _value_group_cdf(model, px, levels)
    # decoded group first, then the place in it: pushed in the opposite order
    coder.encode_reverse(places, family, _value_place_rows(model, px, group_cdf, groups))
    coder.encode_reverse(groups, family, _value_group_rows(group_cdf))
    return z


def _pop_grouped(coder, family, model: VAE, z: np.ndarray, levels: int, edges: np.ndarray,
                 centres: np.ndarray) -> np.ndarray:
    """Undoes `_push_grouped` once the caller has decoded z: x decoded under p(x|z), then z pushed back under
    q(z|x); returns x as uint8 (B, *event)."""
    n = len(z) // model.latent_dim
    px = _decode(model, z, centres, n)
    group_cdf = _value_group_cdf(model, px, levels)
    groups = coder.decode(family, _value_group_rows(group_cdf))
    places = coder.decode(family, _value_place_rows(model, px, group_cdf, groups))
    xb = (groups * GROUP + places).astype(np.uint8).reshape(n, *model.event_shape)
    mu, sigma = _posterior_row(model, xb, levels)
    latent_cdf = _latent_cdf(mu, sigma, edges[::GROUP, None])
    z_groups, z_places = _split(z)
    coder.encode_reverse(z_places, family, _latent_place_rows(mu, sigma, latent_cdf, z_groups, edges))
    coder.encode_reverse(z_groups, family, _latent_group_rows(latent_cdf))
    return xb


def _group(model: VAE, levels: int) -> int:
    """GROUP when this model's values and latent buckets are coded in two steps, 0 when each is one categorical:
    two steps need a likelihood with a CDF at level boundaries (`level_cdf`: the discretized logistic mixture),
    so binary data keep the one-step code."""
    if levels > GROUP and levels % GROUP == 0 and LATENT_BINS % GROUP == 0 and hasattr(model.likelihood,
                                                                                        "level_cdf"):
        return GROUP
    return 0


# A batch holds at most this fraction of the images coded before it: its bits-back decode then finds enough bits
# on the stack (decoding a batch takes about H(q) bits per image, while each earlier image left its net code
# length; a stack that runs dry costs extra bits: 44 instead of 27 bits per digit when batches doubled).
BATCH_GROWTH = 0.25


def batch_starts(count: int, batch: int) -> list[tuple[int, int]]:
    """(start, size) of each coded batch: one image at first, then at most BATCH_GROWTH of the images coded so
    far, up to `batch`, covering `count` images."""
    spans, start = [], 0
    while start < count:
        n = min(batch, max(1, int(BATCH_GROWTH * start)), count - start)
        spans.append((start, n))
        start += n
    return spans


def _models(levels: int):
    import constriction

    family = constriction.stream.model
    values = family.Bernoulli(perfect=False) if levels == 2 else family.Categorical(perfect=False)
    return family.Categorical(perfect=False), values, family.Uniform(LATENT_BINS)


def default_batch(model: VAE) -> int:
    """The largest batch (up to BATCH) whose probability tables fit PROBS_BYTES, counting a table of `levels`
    entries per value (the one-step code's; the two-step code's 2 x 16 entries fit easily, and keeping the batch
    keeps the files of both codes alike)."""
    levels = _levels(model)
    per_image = math.prod(model.event_shape) * (1 if levels == 2 else levels) * 8
    return max(1, min(BATCH, PROBS_BYTES // per_image))


def compress(model: VAE, array: np.ndarray, batch: int | None = None, seed: int = 0, *, lossy: bool = False,
             step: float | None = None, rate: float | None = None) -> bytes:
    """The images `array` (N, *event) or (N, H, W) as one BB-ANS stream in a .vkz container: binary values for a
    Bernoulli model, 8-bit grey levels (uint8, or floats k/255) for a discretized-logistic one.

    `lossy=True` codes quantised latents instead (`vaekit.apps.lossy`, any likelihood): `step` in prior standard
    deviations, or a target `rate` in bytes per image.
    """
    import constriction

    from .vq_codec import compress_codes, is_vq

    if is_vq(model):  # its latents are code indices: lossy by nature, at the rate its codebook and prior give
        if not lossy or step is not None or rate is not None:
            raise CompressionError("a VQ-VAE codes its images' code indices, at the rate its codebook and prior give: "
                                   "compress lossy (lossy=True, or --lossy), with no step or rate")
        return compress_codes(model, array)
    if lossy:
        from .lossy import compress_latents

        return compress_latents(model, array, step=step, rate=rate)
    if step is not None or rate is not None:
        raise CompressionError("a step or a rate applies to lossy compression only (lossy=True, or --lossy)")
    levels = _levels(model)
    source = np.asarray(array)
    array, top = vkz.as_two_levels(array, levels)  # black-and-white 0/255 images for a Bernoulli model
    symbols = to_symbols(model, array)
    batch = default_batch(model) if batch is None else batch
    if batch < 1:
        raise CompressionError(f"batch must be >= 1, got {batch}")
    edges, centres = _bucket_edges(LATENT_BINS), _bucket_centres(LATENT_BINS)
    categorical, values, uniform = _models(levels)
    group = _group(model, levels)
    # Random words at the bottom of the stack for the first image's bits-back decode (counted in the size).
    initial = math.ceil(model.latent_dim * math.log2(LATENT_BINS) / 32) + 2
    words = np.random.default_rng(seed).integers(0, 2**32, size=initial, dtype=np.uint64).astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words)
    with vkz.in_eval_mode(model):
        for start, n in batch_starts(len(symbols), batch):
            xb = symbols[start : start + n]
            if group:
                z = _push_grouped(coder, categorical, model, xb, levels, edges, centres)
            else:
                z = coder.decode(categorical, _posterior_buckets(model, xb, levels, edges))  # bits back: z ~ q(z|x)
                coder.encode_reverse(xb.reshape(-1).astype(np.int32), values,
                                     _value_probabilities(model, z, centres, n))
            coder.encode_reverse(z, uniform)  # p(z): uniform over buckets of equal prior mass
    header = {"codec": "bb-ans", "model": model_fingerprint(model), "shape": list(symbols.shape[1:]),
              "input_shape": list(source.shape), "dtype": str(source.dtype), "count": len(symbols),
              "levels": levels, "batch": batch, "bins": LATENT_BINS, "initial_words": initial,
              "data_sha256": hashlib.sha256(symbols.tobytes()).hexdigest()}
    if group:  # a new field, in a new format version: older readers refuse the file instead of misreading it
        header["group"] = group
    if top:  # likewise: an older reader would return 0/1 where the images held 0/255
        header["top"] = top
    return vkz.write(header, coder.get_compressed(), version=vkz.GROUP_VERSION if group or top else None)


def read_header(data: bytes) -> tuple[dict, bytes]:
    """The header and payload bytes of a .vkz file; a CompressionError when it is not one or is damaged."""
    header, payload = vkz.read(data)
    return header, payload.astype("<u4").tobytes()


def decompress(model: VAE, data: bytes) -> np.ndarray:
    """The images that `compress` (or the lossy `compress_latents`) coded into `data`, in their original shape
    and dtype: bit-exact for a lossless file, the decoder's reconstructions for a lossy one."""
    import constriction

    header, payload = vkz.read(data)
    if header["codec"] == "vq":
        from .vq_codec import decode_codes

        return decode_codes(model, header, payload)
    if header["codec"] == "latent":
        from .lossy import decode_latents

        return decode_latents(model, header, payload)
    levels = _levels(model)
    vkz.check_model(header, model)
    try:
        count, batch, shape = int(header["count"]), int(header["batch"]), tuple(header["shape"])
        dtype = np.dtype(header["dtype"])
        group = header.get("group", 0)  # format version 2: no groups (one categorical per symbol)
        ok = header["bins"] == LATENT_BINS and header["levels"] == levels and count > 0 and batch > 0
        ok = ok and (group == 0 or (group == _group(model, levels) and header["version"] == vkz.GROUP_VERSION))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CompressionError("the .vkz header does not fit this model")
    edges, centres = _bucket_edges(LATENT_BINS), _bucket_centres(LATENT_BINS)
    categorical, values, uniform = _models(levels)
    coder = constriction.stream.stack.AnsCoder(payload)
    out = np.empty((count, *shape), dtype=np.uint8)
    try:
        with vkz.in_eval_mode(model):
            for start, n in reversed(batch_starts(count, batch)):  # last in, first out
                z = coder.decode(uniform, n * model.latent_dim)
                if group:
                    xb = _pop_grouped(coder, categorical, model, z, levels, edges, centres)
                else:
                    xb = coder.decode(values, _value_probabilities(model, z, centres, n)).reshape(n, *shape)
                    xb = xb.astype(np.uint8)
                    coder.encode_reverse(z, categorical, _posterior_buckets(model, xb, levels, edges))
                out[start : start + n] = xb
    except (ValueError, RuntimeError, AssertionError) as error:
        raise CompressionError(f"the .vkz payload does not decode ({error})") from None
    if hashlib.sha256(out.tobytes()).hexdigest() != header["data_sha256"]:
        raise CompressionError("the decoded data do not match the checksum of the original: refusing wrong output")
    try:
        return vkz.scaled_back(_to_values(out, levels, dtype), header).reshape(header["input_shape"])
    except (ValueError, TypeError):
        raise DataError("the .vkz header names a shape or dtype that does not fit the data") from None


def bits_per_dim(data: bytes, n_values: int) -> float:
    """The code length of a .vkz file in bits per data value, every byte counted (header included)."""
    return 8 * len(data) / n_values


__all__ = ["compress", "decompress", "read_header", "model_fingerprint", "bits_per_dim", "CompressionError",
           "to_symbols"]
