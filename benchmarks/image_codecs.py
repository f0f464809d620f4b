"""Lossy JPEG and WebP baselines for the rate-distortion benchmark on 28x28 grey-level images (MNIST-like).

    from image_codecs import codec_curve, psnr
    rows = codec_curve(images_uint8_n_28_28, "webp", [1, 5, 10, 20, 30, 50, 75, 90])

Every image is its own file, encoded and decoded with Pillow. Two rates are reported per quality:
- `bytes_per_image`: the whole file, every byte counted;
- `stripped_bytes_per_image`: only the bytes that differ between images of the same size at the same quality
  (`strip_headers`); the rest (container, quantisation tables, frame headers) a receiver could know in advance,
  as a VAE decoder knows its weights. This is the fair figure to compare with a learned codec's rate.

Importing this module has no side effects; it needs only numpy, Pillow and tqdm.
"""

from __future__ import annotations

import io
import struct
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

CODECS = ("jpeg", "webp")
PSNR_CAP_DB = 100.0  # PSNR of an exact reconstruction (MSE 0), instead of +inf, so means stay finite


def psnr(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB, shape (N,), of (N, ...) arrays: peak 255 for integer input, 1.0 for floats in
    [0, 1]. Images reconstructed exactly (MSE 0) get PSNR_CAP_DB; every value is capped there."""
    original, decoded = np.asarray(original), np.asarray(decoded)
    if original.shape != decoded.shape:
        raise ValueError(f"shapes differ: {original.shape} vs {decoded.shape}")
    peak = 255.0 if np.issubdtype(original.dtype, np.integer) else 1.0
    diff = original.astype(np.float64) - decoded.astype(np.float64)
    mse = np.mean(diff.reshape(len(diff), -1) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(peak**2 / mse)
    return np.minimum(db, PSNR_CAP_DB)


def _as_uint8(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 1, 28, 28) uint8, or floats in [0, 1] (rounded to x * 255), as (N, H, W) uint8."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"expected (N, H, W) grey images, got shape {images.shape}")
    if images.dtype != np.uint8:
        images = np.clip(np.rint(images.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return images


def _save(image: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L").save(buffer, fmt, **options)
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int, optimize: bool = False) -> bytes:
    """Baseline JPEG of one (H, W) uint8 grey image (one component, so no chroma subsampling).
    optimize=False uses libjpeg's standard Huffman tables, optimize=True image-specific ones (smaller file)."""
    return _save(image, "JPEG", quality=int(quality), optimize=optimize)


def encode_webp(image: np.ndarray, quality: int) -> bytes:
    """Lossy WebP (VP8, method=6: slowest, best) of one (H, W) uint8 grey image."""
    return _save(image, "WEBP", quality=int(quality), lossless=False, method=6)


def decode(data: bytes) -> np.ndarray:
    """Decode a JPEG or WebP file to (H, W) uint8 grey. WebP decodes to RGB (VP8 is YUV 4:2:0 with flat
    chroma, so R, G, B differ by at most 1); Pillow's "L" conversion takes its luma."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """Split a JPEG file into (marker, bytes) pieces that concatenate back to `data`: SOI (0xD8) and EOI
    (0xD9) are 2 bytes, other segments are FF, marker, 2-byte big-endian length (counting itself) and payload.
    The entropy-coded data after each SOS header is its own piece, marker 0: it runs up to the first 0xFF
    not followed by 0x00 (a stuffed data byte) or 0xD0-0xD7 (a restart marker, kept inside the data)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file (no SOI)")
    pieces, i = [(0xD8, data[:2])], 2
    while i < len(data):
        if data[i] != 0xFF:
            raise ValueError(f"expected a marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xD9:
            pieces.append((marker, data[i:i + 2]))
            i += 2
            continue
        end = i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
        pieces.append((marker, data[i:end]))
        i = end
        if marker == 0xDA:  # SOS: entropy-coded scan data follows its header
            while not (data[end] == 0xFF and data[end + 1] != 0x00 and not 0xD0 <= data[end + 1] <= 0xD7):
                end += 1
            pieces.append((0, data[i:end]))
            i = end
    return pieces


@lru_cache(maxsize=1)
def _standard_dht_segments() -> frozenset[bytes]:
    """The DHT segments libjpeg writes with optimize=False (the standard tables of JPEG Annex K, the same for
    every size and quality), taken from an encoding of a blank 8x8 image."""
    return frozenset(seg for marker, seg in jpeg_segments(encode_jpeg(np.zeros((8, 8), np.uint8), 50))
                     if marker == 0xC4)


def strip_headers(codec: str, data: bytes) -> bytes:
    """The bytes of a file that are specific to its image: what is left after removing the parts that are the
    same for every image of one size at one quality.

    JPEG: removed are SOI, APPn (JFIF), DQT (quantisation tables, set by quality), SOFn (size, precision,
    components), SOS headers and EOI, and DHT segments only if they hold the standard tables (optimize=False).
    Optimised tables (optimize=True) are chosen per image, so their DHT segments stay, marker and length
    included. Kept: the entropy-coded scan data, and any other segment (none from Pillow's grey output).

    WebP: removed are the RIFF header (12 bytes: "RIFF", size, "WEBP"), the "VP8 " chunk header (8 bytes:
    tag and size, which follow from the file length) and the 7 bytes of the VP8 key-frame header after the
    frame tag: start code 9d 01 2a and 14-bit width and height with 2-bit scales, fixed for 28x28. Kept: the
    3-byte frame tag (key-frame flag, version, show flag and the 19-bit size of the first partition, which
    varies) and both partitions. A RIFF pad byte after an odd-sized chunk would be removed too (never seen).
    Only simple lossy files (one "VP8 " chunk) are accepted; VP8L (lossless) or VP8X (extended) raise.
    """
    if codec == "jpeg":
        sof = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)}  # C4 DHT, C8 reserved, CC DAC
        drop = {0xD8, 0xD9, 0xDA, 0xDB, *range(0xE0, 0xF0), *sof}  # SOI, EOI, SOS, DQT, APPn, SOFn
        standard = _standard_dht_segments()
        return b"".join(seg for marker, seg in jpeg_segments(data)
                        if marker not in drop and not (marker == 0xC4 and seg in standard))
    if codec == "webp":
        if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
            raise ValueError("not a WebP file")
        if data[12:16] != b"VP8 ":
            raise ValueError(f"expected a simple lossy 'VP8 ' chunk, got {data[12:16]!r}")
        size = struct.unpack("<I", data[16:20])[0]
        if len(data) != 20 + size + (size & 1) or data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("unexpected WebP layout (extra chunks or a bad VP8 key-frame header)")
        frame = data[20:20 + size]
        return frame[:3] + frame[10:]
    raise ValueError(f"unknown codec {codec!r}; expected one of {CODECS}")


def codec_curve(images: np.ndarray, codec: str, qualities: Sequence[int], progress: bool = True) -> list[dict]:
    """Rate-distortion points of `codec` ("jpeg" or "webp") on grey images (N, H, W), one dict per quality:
    codec, quality, bytes_per_image (mean whole-file size), stripped_bytes_per_image (mean of strip_headers)
    and psnr (mean over images of the per-image PSNR in dB of the decoded whole file, see `psnr`).

    JPEG: Huffman coding is lossless, so optimize=True and optimize=False files decode to the same pixels
    (checked here); each rate is taken from the variant that is smaller under its own accounting. Whole file:
    optimize=True (its tables cost about 60 bytes, the standard ones 216). Stripped: optimize=False, whose
    standard tables are fixed and removed; optimised tables would have to be counted and cost more than the
    scan bytes they save on 28x28 images."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {CODECS}")
    images = _as_uint8(images)
    rows = []
    for quality in tqdm(qualities, desc=f"{codec} qualities", delay=2.0, disable=not progress):
        full, stripped, decoded = [], [], []
        for image in images:
            if codec == "jpeg":
                smallest, standard = encode_jpeg(image, quality, optimize=True), encode_jpeg(image, quality)
                pixels = decode(smallest)
                if not np.array_equal(pixels, decode(standard)):
                    raise AssertionError("JPEG optimize=True and optimize=False decoded differently")
                full.append(len(smallest))
                stripped.append(len(strip_headers("jpeg", standard)))
            else:
                data = encode_webp(image, quality)
                pixels = decode(data)
                full.append(len(data))
                stripped.append(len(strip_headers("webp", data)))
            decoded.append(pixels)
        rows.append({"codec": codec, "quality": int(quality), "bytes_per_image": float(np.mean(full)),
                     "stripped_bytes_per_image": float(np.mean(stripped)),
                     "psnr": float(np.mean(psnr(images, np.stack(decoded))))})
    return rows
