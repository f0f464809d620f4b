"""Lossy compression with a trained VAE: quantised posterior means, entropy-coded, decoded with the decoder's mean.

For each image x the encoder's posterior mean mu(x) (D,) is quantised on a uniform grid of step `step` (in units
of the prior's standard deviation): k_d = round(mu_d / step), an integer per latent dimension. The integers are
entropy-coded with `constriction`'s ANS coder under a learned factorised density: one quantised Gaussian per
dimension, whose mean and standard deviation (in steps) are fitted to the symbols of the images being coded and
stored in the header (2 float32 per dimension, base64, counted in the size). Dimensions the model does not use have
means near 0, so their symbols are nearly always 0 and cost almost nothing. When that header costs more than it
saves (a few images), the symbols are coded under the prior N(0, 1) on the step's grid instead, stored as
nothing. Decoding reads the symbols back, z = k * step, and returns the likelihood's mean p(x|z) for each image.

The step sets the rate: a smaller step keeps more of each mean (less distortion) and costs more bits. `rate`
asks for a target size instead: the step is found by bisection on the size the chosen density predicts
(-sum log2 P(k), plus the exact header that step writes), then the images are coded once with that step.
"""

from __future__ import annotations

import base64
import binascii
import math

import numpy as np
import torch

from ..core import limits
from ..core.runtime import to_model
from ..models.vae import VAE
from . import vkz
from .vkz import CompressionError, model_fingerprint

MIN_STEP, MAX_STEP = 1e-4, 10.0  # quantisation steps in prior standard deviations
# Largest posterior mean coded (prior standard deviations): codes of the data stay within a few; far larger ones
# come from inputs unlike the data (and at MIN_STEP they would overflow the coder's 32-bit symbols).
MAX_ABS_LATENT = 1e4
MIN_STD = 0.1  # the fitted density's smallest standard deviation, in steps (a dimension whose symbols all agree)


def _as_unit_values(model: VAE, array: np.ndarray) -> np.ndarray:
    """The images as float32 values in the model's input space: integers are levels of an 8-bit (or, for a
    Bernoulli model, binary) image, floats are taken as they are; non-finite values are refused."""
    x = vkz.as_batch(model, array)
    levels = getattr(model.likelihood, "levels", None)
    if x.dtype.kind == "b":
        return x.astype(np.float32)
    if x.dtype.kind in "iu":
        top = (levels or 256) - 1
        if x.min() < 0 or x.max() > top:
            raise CompressionError(f"integer images for this model hold levels 0..{top}, found {x.min()}..{x.max()}")
        return (x.astype(np.float64) / top).astype(np.float32)
    if x.dtype.kind != "f" or not np.isfinite(x).all():
        raise CompressionError("the images must be finite numbers")
    with np.errstate(over="ignore"):  # overflow is what is checked next
        values = x.astype(np.float32)
    if not np.isfinite(values).all():  # finite in float64, beyond float32's 3.4e38
        raise CompressionError(f"the images hold values up to {np.abs(x).max():.3g}, beyond what the model's float32 "
                               "arithmetic holds")
    return values


def _from_unit_values(values: np.ndarray, model: VAE, dtype: np.dtype,
                      value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Decoded means back in the input's dtype: rounded to the nearest level for integer images, to 0/1 for
    boolean ones; float ones clipped to the range the original values had (`value_range`)."""
    if dtype.kind == "b":
        return values >= 0.5
    if dtype.kind in "iu":
        top = (getattr(model.likelihood, "levels", None) or 256) - 1
        return np.rint(np.clip(values, 0.0, 1.0) * top).astype(dtype)
    if value_range is not None:  # a Gaussian's mean may overshoot the data's range: never beyond the original
        values = np.clip(values, *value_range)
    return values.astype(dtype)


@torch.no_grad()
def posterior_means(model: VAE, x: np.ndarray) -> np.ndarray:
    """mu(x) for every image, (N, D) float64, encoded in chunks that fit the memory budget."""
    rows = limits.chunk_rows(len(x), 64 * math.prod(model.event_shape) * limits.FLOAT_BYTES)
    parts = [model.embed(to_model(model, x[i : i + rows])).double().cpu().numpy() for i in range(0, len(x), rows)]
    return np.concatenate(parts)


def _fit_density(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation of the symbols (N, D), as float32 (what the header stores)."""
    mean = symbols.mean(axis=0).astype(np.float32)
    std = np.maximum(symbols.std(axis=0), MIN_STD).astype(np.float32)
    return mean, std


def predicted_bits(symbols: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """-sum log2 P(k) of the symbols under the per-dimension quantised Gaussians (the ideal code length)."""
    from scipy.special import ndtr

    lo = ndtr((symbols - 0.5 - mean) / std)
    hi = ndtr((symbols + 0.5 - mean) / std)
    return float(-np.log2(np.clip(hi - lo, 1e-300, None)).sum())


def density_bytes(latent_dim: int) -> int:
    """Header bytes of a stored density: 2 float32 per dimension, in base64."""
    return 4 * math.ceil(8 * latent_dim / 3)


def choose_density(symbols: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """The density to code the symbols (N, D) under: the one fitted to them (stored in the header) or the prior
    N(0, 1) on the step's grid (std 1/step in steps; nothing stored), whichever makes the smaller file.
    Returns mean (D,), std (D,) and whether they are stored. Few images favour the prior, many the fit."""
    mean, std = _fit_density(symbols)
    fitted = predicted_bits(symbols, mean, std) / 8 + density_bytes(symbols.shape[1])
    prior_mean = np.zeros(symbols.shape[1], dtype=np.float32)
    prior_std = np.full(symbols.shape[1], 1.0 / step, dtype=np.float32)
    if predicted_bits(symbols, prior_mean, prior_std) / 8 < fitted:
        return prior_mean, prior_std, False
    return mean, std, True


def _quantise(means: np.ndarray, step: float) -> np.ndarray:
    return np.rint(means / step).astype(np.int64)


def _plan(means: np.ndarray, step: float) -> tuple[np.ndarray, int, int, np.ndarray, np.ndarray, bool]:
    """Symbols (N, D) of the means at `step`, their range low..high (two symbols at least), and the density."""
    symbols = _quantise(means, step)
    low, high = int(symbols.min()), int(symbols.max())
    high = max(high, low + 1)  # the coder's alphabet needs two symbols at least
    mean, std, stored = choose_density(symbols, step)
    return symbols, low, high, mean, std, stored


def _header(fixed: dict, step: float, low: int, high: int, mean: np.ndarray, std: np.ndarray, stored: bool) -> dict:
    """The lossy header: the fields that do not depend on the step (`fixed`) plus the step's own."""
    density = base64.b64encode(np.concatenate([mean, std]).astype("<f4").tobytes()).decode() if stored else None
    return {**fixed, "step": step, "low": low, "high": high, "density": density}


def step_for_rate(means: np.ndarray, bytes_per_image: float, fixed: dict) -> float:
    """The step whose predicted code length comes closest to `bytes_per_image` (the header that step writes,
    with the step-independent fields `fixed`, included), by bisection
    on log(step); a CompressionError when even the coarsest step is over it. A rate above what the finest step
    (MIN_STEP) costs gets the finest step: the means are then kept to about 1e-4 prior standard deviations."""
    n = len(means)

    def size(step: float) -> float:
        symbols, low, high, mean, std, stored = _plan(means, step)
        # the header this step writes, exactly (measured with an empty payload)
        header = len(vkz.write(_header(fixed, step, low, high, mean, std, stored), np.zeros(0, np.uint32)))
        return (predicted_bits(symbols, mean, std) / 8 + header) / n

    if size(MAX_STEP) > bytes_per_image:
        raise CompressionError(f"a rate of {bytes_per_image:g} bytes per image is below what this model can reach "
                               f"for {n:,} images ({size(MAX_STEP):.1f} at the coarsest step)")
    lo, hi = math.log(MIN_STEP), math.log(MAX_STEP)
    for _ in range(40):  # the size falls as the step grows
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if size(math.exp(mid)) <= bytes_per_image else (mid, hi)
    return math.exp(hi)


def compress_latents(model: VAE, array: np.ndarray, step: float | None = None, rate: float | None = None) -> bytes:
    """Lossy .vkz of the images: posterior means quantised with `step` (prior standard deviations), or with
    the step that meets `rate` bytes per image; exactly one of the two (neither: step 0.1)."""
    import constriction

    vkz.check_codable(model, "latent compression")
    if step is not None and rate is not None:
        raise CompressionError("give either a step or a rate, not both")
    if step is not None and not (MIN_STEP <= step <= MAX_STEP):
        raise CompressionError(f"the step must be in [{MIN_STEP:g}, {MAX_STEP:g}], got {step}")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise CompressionError(f"the rate must be a positive number of bytes per image, got {rate}")
    source = np.asarray(array)
    array, top = vkz.as_two_levels(source, getattr(model.likelihood, "levels", None))  # 0/255 black-and-white
    x = _as_unit_values(model, array)
    with vkz.in_eval_mode(model):
        means = posterior_means(model, x)
    largest = float(np.abs(means).max()) if np.isfinite(means).all() else math.inf
    if largest > MAX_ABS_LATENT:  # e.g. images of 1e30: the encoder overflows, or nearly
        raise CompressionError(f"the model's latent codes of these images reach {largest:.3g} (the data it was trained "
                               f"on stay within a few prior standard deviations); their values span "
                               f"{float(x.min()):.3g} to {float(x.max()):.3g}")
    fixed = {"codec": "latent", "model": model_fingerprint(model), "shape": list(model.event_shape),
             "input_shape": list(source.shape), "dtype": str(source.dtype), "count": len(means),
             "range": [float(x.min()), float(x.max())]}
    if top:  # written in the format version whose fields older readers do not know: they refuse the file
        fixed["top"] = top
    if rate is not None:
        step = step_for_rate(means, rate, fixed)
    step = 0.1 if step is None else float(step)
    symbols, low, high, mean, std, stored = _plan(means, step)
    if high - low > 2**24:
        raise CompressionError(f"the step {step:g} is too fine for these latents (symbols span {high - low:,})")
    n, d = symbols.shape
    model_k = constriction.stream.model.QuantizedGaussian(low, high)
    coder = constriction.stream.stack.AnsCoder()
    # symbols (N, D) row-major; the density's parameters repeat per image
    coder.encode_reverse(symbols.reshape(-1).astype(np.int32), model_k, np.tile(mean.astype(np.float64), n),
                         np.tile(std.astype(np.float64), n))
    return vkz.write(_header(fixed, step, low, high, mean, std, stored), coder.get_compressed(),
                     version=vkz.GROUP_VERSION if top else None)


def decode_latents(model: VAE, header: dict, payload: np.ndarray) -> np.ndarray:
    """The images of a lossy .vkz file (header and payload read by vkz.read): the decoder's means at the
    quantised latents, in the input's shape and dtype."""
    import constriction

    vkz.check_codable(model, "latent decompression")
    vkz.check_model(header, model)
    d = model.latent_dim
    try:
        n, step, low, high = int(header["count"]), float(header["step"]), int(header["low"]), int(header["high"])
        if header["density"] is None:  # the prior on the step's grid
            mean, std = np.zeros(d), np.full(d, float(np.float32(1.0 / step)))
        else:
            density = np.frombuffer(base64.b64decode(header["density"], validate=True), dtype="<f4")
            mean, std = density[: len(density) // 2].astype(np.float64), density[len(density) // 2 :].astype(np.float64)
        dtype = np.dtype(header["dtype"])
        low_value, high_value = (float(v) for v in header["range"])
        ok = math.isfinite(low_value) and math.isfinite(high_value) and low_value <= high_value
        ok = ok and n > 0 and MIN_STEP <= step <= MAX_STEP and low < high and mean.shape == std.shape == (d,)
    except (KeyError, TypeError, ValueError, binascii.Error):
        ok = False
    if not ok or not (std > 0).all():
        raise CompressionError("the .vkz header does not fit this model")
    limits.check_allocation(n * (d + math.prod(model.event_shape)) * limits.FLOAT_BYTES,
                            f"decoding {n:,} images")
    coder = constriction.stream.stack.AnsCoder(payload)
    try:
        symbols = coder.decode(constriction.stream.model.QuantizedGaussian(low, high), np.tile(mean, n),
                               np.tile(std, n))
    except (ValueError, RuntimeError, AssertionError) as error:
        raise CompressionError(f"the .vkz payload does not decode ({error})") from None
    z = torch.as_tensor(symbols.reshape(n, d) * step, dtype=torch.float32)
    with vkz.in_eval_mode(model):
        values = model.generate(to_model(model, z), what=f"decoding {n:,} images").cpu().numpy()
    try:
        return vkz.scaled_back(_from_unit_values(values, model, dtype, (low_value, high_value)),
                               header).reshape(header["input_shape"])
    except (ValueError, TypeError):
        raise CompressionError("the .vkz header names a shape or dtype that does not fit the data") from None


__all__ = ["compress_latents", "decode_latents", "posterior_means", "step_for_rate"]
