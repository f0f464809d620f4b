"""Lossy compression with a VQ-VAE: each image's code indices, entropy-coded under the model's learned prior.

An image becomes its L code indices k (the nearest codes of the encoder's outputs, `vaekit.models.vqvae`); they
are coded with `constriction`'s ANS coder, position by position in raster order, each under the prior's
categorical p(k_l | k_<l), so that an image costs about -log2 p(k(x)) bits: the KL term the model was trained to
make small. Decoding pops the indices back in the same order and returns the decoder's mean at their code
vectors. The rate is fixed by the model (its codebook size K and code grid); there is no quantisation step.

Exactness: the decoder must see the very same probabilities as the encoder, bit for bit. Both compute them with
the same calls: for each chunk of CHUNK images, the prior's walk over the positions with cached keys and
values (`CodePrior.walk`), on CODEC_THREADS threads (`vkz.in_eval_mode`), never a single pass over the whole
sequence (whose sums could round differently). The file records the chunk size, and the checksum of the codes catches any mismatch.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from ..core import limits
from ..core.runtime import to_model
from . import vkz
from .lossy import _as_unit_values, _from_unit_values
from .vkz import CompressionError, model_fingerprint

# Images whose codes are coded together (one prior call per position covers them all).
CHUNK = 256


def is_vq(model) -> bool:
    """True for a model whose latents are code indices (a VQ-VAE)."""
    return hasattr(model, "codebook_size") and hasattr(model, "code_prior")


def _walk(model, count: int, choose) -> torch.Tensor:
    """The prior's walk over the L positions of `count` images (CodePrior.walk): the same calls when coding and
    decoding, so the same probabilities bit for bit."""
    starts = torch.zeros(count, dtype=torch.long, device=model.quantizer.codebook.device)
    return model.code_prior.walk(starts, choose)


def _chunks(count: int) -> list[tuple[int, int]]:
    return [(start, min(CHUNK, count - start)) for start in range(0, count, CHUNK)]


def _categorical():
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


def compress_codes(model, array: np.ndarray) -> bytes:
    """Lossy .vkz of the images: their VQ-VAE code indices under the learned prior (module docstring)."""
    import constriction

    _check(model)
    source = np.asarray(array)
    array, top = vkz.as_two_levels(source, getattr(model.likelihood, "levels", None))
    x = _as_unit_values(model, array)
    n = len(x)
    with vkz.in_eval_mode(model):
        rows = limits.chunk_rows(n, 64 * math.prod(model.event_shape) * limits.FLOAT_BYTES)
        codes = torch.cat([model.codes(to_model(model, x[i : i + rows])).cpu() for i in range(0, n, rows)])
        coder = constriction.stream.stack.AnsCoder()
        # Decoding pops chunk 0 first, position 0 first: push the chunks last to first, each in decode order.
        for start, count in reversed(_chunks(n)):
            part = codes[start : start + count]
            probs: list[np.ndarray] = []

            def record(position: int, p: torch.Tensor, part=part, probs=probs) -> torch.Tensor:
                probs.append(p.cpu().numpy())
                return part[:, position]

            _walk(model, count, record)
            symbols = part.T.reshape(-1).numpy().astype(np.int32)  # position-major: (L, n) flattened
            coder.encode_reverse(symbols, _categorical(), np.concatenate(probs))  # (L * n, K)
    header = {"codec": "vq", "model": model_fingerprint(model), "shape": list(model.event_shape),
              "input_shape": list(source.shape), "dtype": str(source.dtype), "count": n, "chunk": CHUNK,
              "codes": model.n_codes, "range": [float(x.min()), float(x.max())],
              "codes_sha256": hashlib.sha256(codes.numpy().astype("<i4").tobytes()).hexdigest()}
    if top:
        header["top"] = top
    return vkz.write(header, coder.get_compressed(), version=vkz.GROUP_VERSION)


def decode_codes(model, header: dict, payload: np.ndarray) -> np.ndarray:
    """The images of a VQ .vkz file (header and payload read by vkz.read): the decoder's means at the codes."""
    import constriction

    vkz.check_model(header, model)  # first: a file of another model says so, whatever that model is
    _check(model)
    try:
        n, chunk, dtype = int(header["count"]), int(header["chunk"]), np.dtype(header["dtype"])
        low_value, high_value = (float(v) for v in header["range"])
        ok = n > 0 and chunk == CHUNK and int(header["codes"]) == model.n_codes and low_value <= high_value
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CompressionError("the .vkz header does not fit this model")
    limits.check_allocation(n * (model.latent_dim + math.prod(model.event_shape)) * limits.FLOAT_BYTES,
                            f"decoding {n:,} images")
    coder = constriction.stream.stack.AnsCoder(payload)
    codes = torch.empty((n, model.n_codes), dtype=torch.long)
    with vkz.in_eval_mode(model):
        try:
            for start, count in _chunks(n):
                def pop(position: int, p: torch.Tensor) -> torch.Tensor:
                    return torch.as_tensor(coder.decode(_categorical(), p.cpu().numpy()).astype(np.int64))

                codes[start : start + count] = _walk(model, count, pop).cpu()
        except (ValueError, RuntimeError, AssertionError) as error:
            raise CompressionError(f"the .vkz payload does not decode ({error})") from None
        if hashlib.sha256(codes.numpy().astype("<i4").tobytes()).hexdigest() != header.get("codes_sha256"):
            raise CompressionError("the decoded codes do not match the checksum of the original: refusing wrong "
                                   "output")
        values = model.generate(model.vectors_of(to_model(model, codes).long()),
                                what=f"decoding {n:,} images").cpu().numpy()
    try:
        return vkz.scaled_back(_from_unit_values(values, model, dtype, (low_value, high_value)),
                               header).reshape(header["input_shape"])
    except (ValueError, TypeError):
        raise CompressionError("the .vkz header names a shape or dtype that does not fit the data") from None


def _check(model) -> None:
    if not is_vq(model):
        raise CompressionError("code compression needs a VQ-VAE (model.kind 'vqvae')")
    if model.conditional:
        raise CompressionError("code compression of a class-conditional VQ-VAE is not supported (its prior needs "
                               "each image's label)")


__all__ = ["compress_codes", "decode_codes", "is_vq"]
