"""The `.vkz` container shared by vaekit's codecs, and the input checks both codecs make.

Layout: b"VKZ\\x00", a little-endian uint32 header length, a JSON header, then the payload of little-endian
uint32 words (the ANS stack of `constriction`). The header always holds the format version, the codec
("bb-ans": lossless, "latent": lossy), the model's fingerprint (a hash of its structure and weights), the
image shape, the input's shape and dtype, the image count and the SHA-256 of the payload; each codec adds its
own fields. A file is decoded only by the model that wrote it, and only when its payload checksum matches.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import VaekitError
from ..models.vae import VAE
from ..priors import StandardNormalPrior

MAGIC = b"VKZ\x00"
FORMAT_VERSION = 2
# Lossless files whose symbols are coded in two steps (group, then place in the group: compress.GROUP, the 8-bit
# ones) carry this version, so that a vaekit which reads only FORMAT_VERSION refuses them clearly; both are read.
GROUP_VERSION = 3
READ_VERSIONS = (FORMAT_VERSION, GROUP_VERSION)
CODECS = ("bb-ans", "latent", "vq")


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


def check_codable(model: VAE, what: str) -> None:
    """Refuses models the codecs cannot use: other priors than the standard normal, conditional models."""
    if not isinstance(model.prior, StandardNormalPrior):
        raise CompressionError(f"{what} needs a model with the normal prior (this one: {type(model.prior).__name__})")
    if model.conditional:
        raise CompressionError(f"{what} of a conditional model is not supported")
    if not model.capabilities.entropy_coding:
        raise CompressionError(f"{what} needs a model whose q(z|x) is one diagonal Gaussian (this one has "
                               f"{'several stochastic layers' if model.capabilities.layers else 'a flow posterior'})")


def as_batch(model: VAE, array: np.ndarray) -> np.ndarray:
    """The input as (N, *event): one image alone gets a batch axis, (N, H, W) gets the channel axis of
    one-channel images; any other shape, or no images at all, is a CompressionError."""
    x = np.asarray(array)
    event = tuple(model.event_shape)
    if x.shape == event:
        x = x[None]
    if x.ndim == 2 and len(event) > 1 and x.shape[1] == math.prod(event):  # flattened rows, e.g. (N, 784)
        x = x.reshape(len(x), *event)
    if x.ndim == len(event) and len(event) == 3 and event[0] == 1:
        x = x[:, None]
    if tuple(x.shape[1:]) != event or x.shape[0] == 0:
        raise CompressionError(f"the data have shape {np.asarray(array).shape}, the model codes images of shape "
                               f"{event}")
    return x


def write(header: dict, payload: np.ndarray, version: int | None = None) -> bytes:
    """The .vkz bytes of `header` (JSON-ready) and `payload` (uint32 words); adds the version (FORMAT_VERSION
    unless given) and the payload checksum."""
    words = payload.astype("<u4").tobytes()
    full = {"version": version or FORMAT_VERSION, **header, "payload_sha256": hashlib.sha256(words).hexdigest()}
    encoded = json.dumps(full).encode()
    return MAGIC + struct.pack("<I", len(encoded)) + encoded + words


WHITE = 255  # the white of black-and-white images stored as 8-bit grey levels


def as_two_levels(array: np.ndarray, levels: int | None) -> tuple[np.ndarray, int | None]:
    """Black-and-white images stored as integers 0 and 255 (ordinary PNGs), for a model of two levels: the images
    as 0/1 and 255, the value to scale the decoded ones back by (kept in the header, field "top"); anything else
    unchanged, with None."""
    x = np.asarray(array)
    if levels == 2 and x.dtype.kind in "iu" and x.size and x.max() == WHITE and np.isin(x, (0, WHITE)).all():
        return (x // WHITE).astype(x.dtype), WHITE
    return x, None


def scaled_back(values: np.ndarray, header: dict) -> np.ndarray:
    """Decoded 0/1 integer images times the header's "top" (255 for black-and-white images coded as 0/1)."""
    top = header.get("top")
    if top is None:
        return values
    if top != WHITE or values.dtype.kind not in "iu":
        raise CompressionError("the .vkz header's 'top' field is damaged")
    return (values * WHITE).astype(values.dtype)


def with_names(data: bytes, names: Sequence[str]) -> bytes:
    """The .vkz `data` keeping the file names of its images (a folder of PNGs) in its header, so that decoding to
    a folder restores them: newline-separated, zlib-compressed, base64 (sorted names share their prefixes and
    cost a few bytes each). An older vaekit ignores the field."""
    header, payload = read(data)
    if len(names) != int(header["count"]):
        raise CompressionError(f"{len(names)} file names for {header['count']} images")
    version = header.pop("version")
    header.pop("payload_sha256")
    header["names"] = base64.b64encode(zlib.compress("\n".join(names).encode(), 9)).decode()
    return write(header, payload, version=version)


def names_of(header: dict) -> list[str] | None:
    """The file names a .vkz header keeps (`with_names`), checked: one per image, each a plain PNG file name
    (never a path: a crafted file cannot write outside the output folder); None when it keeps none."""
    if "names" not in header:
        return None
    try:
        names = zlib.decompress(base64.b64decode(header["names"], validate=True)).decode().split("\n")
    except (ValueError, TypeError, zlib.error, UnicodeDecodeError):
        raise CompressionError("the .vkz header's file names are damaged") from None
    plain = all(name.lower().endswith(".png") and not name.startswith(".") and "\0" not in name
                and Path(name).name == name and name not in (".", "..") for name in names)
    if len(names) != int(header["count"]) or len(set(names)) != len(names) or not plain:
        raise CompressionError("the .vkz header's file names are not one plain, distinct .png name per image")
    return names


def read(data: bytes) -> tuple[dict, np.ndarray]:
    """The header and payload words of a .vkz file; a CompressionError when it is not one or is damaged."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise CompressionError("not a vaekit .vkz file (its first bytes are not the .vkz magic)")
    (length,) = struct.unpack("<I", data[4:8])
    if 8 + length > len(data):
        raise CompressionError("the .vkz file is truncated (its header is incomplete)")
    try:
        header = json.loads(data[8 : 8 + length])
        if not isinstance(header, dict):
            raise TypeError("not a JSON object")
        int(header["count"]), list(header["shape"]), list(header["input_shape"]), str(header["dtype"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise CompressionError("the .vkz header is damaged") from None
    if header.get("version") not in READ_VERSIONS:
        raise CompressionError(f"unsupported .vkz format version {header.get('version')!r} (this vaekit reads "
                               f"{' and '.join(map(str, READ_VERSIONS))})")
    if header.get("codec") not in CODECS:
        raise CompressionError(f"unknown .vkz codec {header.get('codec')!r}")
    payload = data[8 + length :]
    if len(payload) % 4 or hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CompressionError("the .vkz payload is damaged or truncated (its checksum does not match)")
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def check_model(header: dict, model: VAE) -> None:
    """Refuses to decode with another model than the one that wrote the file."""
    if header["model"] != model_fingerprint(model):
        raise CompressionError("this .vkz file was written with another model (the fingerprints differ)")
    if tuple(header["shape"]) != tuple(model.event_shape):
        raise CompressionError("the .vkz header does not fit this model")


# Torch threads the codecs compute with. A matrix product's sums are split over the threads, so its last bits
# depend on their number: a file encoded with 2 threads failed the checksum when decoded with 1. One fixed count
# makes a file decode wherever the same software runs, whatever the caller's thread setting.
CODEC_THREADS = 1


@contextmanager
def in_eval_mode(model: VAE) -> Iterator[None]:
    """The model in eval mode (dropout off, batch norm frozen), without gradients and on CODEC_THREADS torch
    threads, all restored afterwards."""
    was_training, threads = model.training, torch.get_num_threads()
    model.eval()
    try:
        torch.set_num_threads(CODEC_THREADS)
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)
