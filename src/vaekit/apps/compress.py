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

This first version codes binary images with a Bernoulli likelihood and the standard normal prior. The entropy
coder is `constriction` (its ANS stack and categorical/Bernoulli models); nothing here is hand-written coding.

File format (`.vkz`): b"VKZ\\x00", a little-endian uint32 header length, a JSON header (format version, the
model's fingerprint, shape, dtype, image count, batch size, latent buckets, SHA-256 of the payload and of the
original data), then the payload of little-endian uint32 words.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct

import numpy as np
import torch

from ..errors import DataError, VaekitError
from ..likelihoods import BernoulliLikelihood
from ..models.vae import VAE
from ..priors import StandardNormalPrior

MAGIC = b"VKZ\x00"
FORMAT_VERSION = 1
LATENT_BINS = 256  # buckets per latent dimension (8 bits of latent precision, as in the BB-ANS paper)
BATCH = 256  # images coded together
# Probabilities are kept away from 0 and 1 so that every symbol stays codable after quantisation.
MIN_PROBABILITY = 1e-7


class CompressionError(VaekitError):
    """A .vkz file that is damaged, truncated, foreign or made with another model; or input the model cannot code."""


def model_fingerprint(model: VAE) -> str:
    """SHA-256 of the model's structure and weights: a file decodes only with the model that wrote it."""
    digest = hashlib.sha256(repr(model).encode())
    digest.update(json.dumps([list(model.event_shape), model.latent_dim]).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _check_model(model: VAE) -> None:
    if not isinstance(model.likelihood, BernoulliLikelihood) or not isinstance(model.prior, StandardNormalPrior):
        raise CompressionError("lossless compression needs a model with the bernoulli likelihood and the normal "
                               f"prior (this one: {type(model.likelihood).__name__}, {type(model.prior).__name__})")
    if model.conditional:
        raise CompressionError("lossless compression of a conditional model is not supported")


def _binary_images(model: VAE, array: np.ndarray) -> np.ndarray:
    """The input as uint8 (N, *event) in {0, 1}; a CompressionError when it does not fit the model."""
    x = np.asarray(array)
    if x.ndim == len(model.event_shape) and x.shape == tuple(model.event_shape):
        x = x[None]
    if x.ndim == len(model.event_shape) and len(model.event_shape) == 3 and model.event_shape[0] == 1:
        x = x[:, None]  # (N, H, W) for one-channel images
    if tuple(x.shape[1:]) != tuple(model.event_shape) or x.shape[0] == 0:
        raise CompressionError(f"the data have shape {x.shape}, the model codes images of shape "
                               f"{tuple(model.event_shape)}")
    if x.dtype.kind not in "biuf" or not np.isin(x, (0, 1)).all():
        raise CompressionError("a Bernoulli model codes binary data: every value must be 0 or 1")
    return x.astype(np.uint8)


def _bucket_edges(bins: int) -> np.ndarray:
    """Standard normal quantiles 0/bins .. bins/bins: (bins + 1,), with -inf and inf at the ends."""
    from scipy.stats import norm

    return norm.ppf(np.arange(bins + 1) / bins)


def _bucket_centres(bins: int) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf((np.arange(bins) + 0.5) / bins)


@torch.no_grad()
def _posterior_buckets(model: VAE, x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """q(z_d|x) as probabilities over the buckets: (B * D, bins) float64, each row summing to 1."""
    from scipy.special import ndtr

    qz = model.encode(torch.as_tensor(x, dtype=torch.float32))
    mu = qz.base_dist.loc.double().numpy().reshape(-1, 1)  # (B * D, 1)
    sigma = qz.base_dist.scale.double().numpy().reshape(-1, 1)
    cdf = ndtr((edges[None, :] - mu) / sigma)  # (B * D, bins + 1)
    probs = np.clip(np.diff(cdf, axis=1), MIN_PROBABILITY, None)
    return probs / probs.sum(axis=1, keepdims=True)


@torch.no_grad()
def _pixel_probabilities(model: VAE, z_buckets: np.ndarray, centres: np.ndarray, batch: int) -> np.ndarray:
    """p(x_i = 1 | z) for every pixel of the batch: (B * F,) float64."""
    z = torch.as_tensor(centres[z_buckets].reshape(batch, model.latent_dim), dtype=torch.float32)
    logits = model.decode(z).base_dist.logits.double().numpy().reshape(-1)
    return np.clip(1.0 / (1.0 + np.exp(-logits)), MIN_PROBABILITY, 1.0 - MIN_PROBABILITY)


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


def _models():
    import constriction

    family = constriction.stream.model
    return family.Categorical(perfect=False), family.Bernoulli(perfect=False), family.Uniform(LATENT_BINS)


def compress(model: VAE, array: np.ndarray, batch: int = BATCH, seed: int = 0) -> bytes:
    """The images `array` (N, *event) or (N, H, W), values 0/1, as one BB-ANS stream in a .vkz container."""
    import constriction

    _check_model(model)
    x = _binary_images(model, array)
    if batch < 1:
        raise CompressionError(f"batch must be >= 1, got {batch}")
    was_training = model.training
    model.eval()
    edges, centres = _bucket_edges(LATENT_BINS), _bucket_centres(LATENT_BINS)
    categorical, bernoulli, uniform = _models()
    # Random words at the bottom of the stack for the first image's bits-back decode (counted in the size).
    initial = math.ceil(model.latent_dim * math.log2(LATENT_BINS) / 32) + 2
    words = np.random.default_rng(seed).integers(0, 2**32, size=initial, dtype=np.uint64).astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words)
    try:
        for start, n in batch_starts(len(x), batch):
            xb = x[start : start + n]
            q = _posterior_buckets(model, xb, edges)
            z = coder.decode(categorical, q)  # bits back: z ~ q(z|x)
            coder.encode_reverse(xb.reshape(-1).astype(np.int32), bernoulli,
                                 _pixel_probabilities(model, z, centres, len(xb)))
            coder.encode_reverse(z, uniform)  # p(z): uniform over buckets of equal prior mass
    finally:
        model.train(was_training)
    payload = coder.get_compressed().astype("<u4").tobytes()
    header = {"version": FORMAT_VERSION, "model": model_fingerprint(model), "shape": list(x.shape[1:]),
              "input_shape": list(np.asarray(array).shape), "dtype": str(np.asarray(array).dtype), "count": len(x),
              "batch": batch, "bins": LATENT_BINS, "initial_words": initial,
              "payload_sha256": hashlib.sha256(payload).hexdigest(),
              "data_sha256": hashlib.sha256(x.tobytes()).hexdigest()}
    encoded = json.dumps(header).encode()
    return MAGIC + struct.pack("<I", len(encoded)) + encoded + payload


def read_header(data: bytes) -> tuple[dict, bytes]:
    """The header and payload of a .vkz file; a CompressionError when it is not one or is damaged."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise CompressionError("not a vaekit .vkz file (its first bytes are not the .vkz magic)")
    (length,) = struct.unpack("<I", data[4:8])
    if 8 + length > len(data):
        raise CompressionError("the .vkz file is truncated (its header is incomplete)")
    try:
        header = json.loads(data[8 : 8 + length])
        int(header["count"]), list(header["shape"]), int(header["batch"]), int(header["initial_words"])
    except (ValueError, KeyError, TypeError):
        raise CompressionError("the .vkz header is damaged") from None
    if header.get("version") != FORMAT_VERSION:
        raise CompressionError(f"unsupported .vkz format version {header.get('version')!r} (this vaekit reads "
                               f"{FORMAT_VERSION})")
    payload = data[8 + length :]
    if len(payload) % 4 or hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CompressionError("the .vkz payload is damaged or truncated (its checksum does not match)")
    return header, payload


def decompress(model: VAE, data: bytes) -> np.ndarray:
    """The images that `compress` coded into `data`, bit-exact, in their original shape and dtype."""
    import constriction

    _check_model(model)
    header, payload = read_header(data)
    if header["model"] != model_fingerprint(model):
        raise CompressionError("this .vkz file was written with another model (the fingerprints differ)")
    if tuple(header["shape"]) != tuple(model.event_shape) or header["bins"] != LATENT_BINS:
        raise CompressionError("the .vkz header does not fit this model")
    was_training = model.training
    model.eval()
    edges, centres = _bucket_edges(LATENT_BINS), _bucket_centres(LATENT_BINS)
    categorical, bernoulli, uniform = _models()
    count, batch, shape = header["count"], header["batch"], tuple(header["shape"])
    coder = constriction.stream.stack.AnsCoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    out = np.empty((count, *shape), dtype=np.uint8)
    try:
        for start, n in reversed(batch_starts(count, batch)):  # last in, first out
            z = coder.decode(uniform, n * model.latent_dim)
            xb = coder.decode(bernoulli, _pixel_probabilities(model, z, centres, n)).reshape(n, *shape)
            coder.encode_reverse(z, categorical, _posterior_buckets(model, xb.astype(np.uint8), edges))
            out[start : start + n] = xb
    except (ValueError, RuntimeError, AssertionError) as error:
        raise CompressionError(f"the .vkz payload does not decode ({error})") from None
    finally:
        model.train(was_training)
    if hashlib.sha256(out.tobytes()).hexdigest() != header["data_sha256"]:
        raise CompressionError("the decoded data do not match the checksum of the original: refusing wrong output")
    try:
        return out.reshape(header["input_shape"]).astype(np.dtype(header["dtype"]))
    except (ValueError, TypeError):
        raise DataError("the .vkz header names a shape or dtype that does not fit the data") from None


def bits_per_dim(data: bytes, n_values: int) -> float:
    """The code length of a .vkz file in bits per data value, every byte counted (header included)."""
    return 8 * len(data) / n_values


__all__ = ["compress", "decompress", "read_header", "model_fingerprint", "bits_per_dim", "CompressionError"]
