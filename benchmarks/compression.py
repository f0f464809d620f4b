"""Benchmark: lossless compression of the MNIST test set with a trained VAE (BB-ANS) against general-purpose
compressors and image formats, all in one run on the same 10,000 images: statically binarized MNIST (a Bernoulli
model) or MNIST's 8-bit grey levels (a discretized-logistic model).

    VAEKIT_DATA=../shared/data python benchmarks/compression.py --run RUN           # a trained binarized-MNIST run
    VAEKIT_DATA=../shared/data python benchmarks/compression.py --train-epochs 60   # train one first (into --out)
    VAEKIT_DATA=../shared/data python benchmarks/compression.py --data mnist --run RUN   # 8-bit, a trained run

Every byte of each file is counted, headers included; bits/dim = 8 * bytes / (10,000 * 784). The stream
baselines compress the whole test set as one stream (binary pixels packed 8 to a byte, np.packbits, their best
case; 8-bit pixels as raw bytes): gzip -9, bz2 -9, lzma preset 9e; the image formats store each image as its own
file (Pillow): PNG (optimised; 1-bit for binary images) and lossless WebP. Times are per image, both ways.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import lzma
import math
import time

import numpy as np

import vaekit
from vaekit.apps.compress import compress, decompress


def _time(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def _stream_baselines(raw: bytes, n: int) -> dict:
    results = {}
    for name, pack, unpack in [
            ("gzip -9", lambda b: gzip.compress(b, 9), gzip.decompress),
            ("bz2 -9", lambda b: bz2.compress(b, 9), bz2.decompress),
            ("lzma 9e", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME), lzma.decompress)]:
        packed, encode_s = _time(pack, raw)
        restored, decode_s = _time(unpack, packed)
        assert restored == raw
        results[name] = {"bytes": len(packed), "encode_ms_per_image": 1e3 * encode_s / n,
                         "decode_ms_per_image": 1e3 * decode_s / n}
    return results


def _image_baselines(images: np.ndarray, binary: bool) -> dict:
    """PNG and lossless WebP, one file per (H, W) uint8 image; binary images as 1-bit PNG."""
    import io as _io

    from PIL import Image

    def png(image, f):
        (Image.fromarray(image * 255).convert("1") if binary else Image.fromarray(image)).save(f, "PNG",
                                                                                             optimize=True)

    def webp(image, f):
        Image.fromarray(image * 255 if binary else image).save(f, "WEBP", lossless=True, quality=100, method=6)

    results = {}
    for name, save in [(f"PNG ({'1-bit' if binary else '8-bit'}, per image)", png),
                       ("WebP lossless (per image)", webp)]:
        files, started = [], time.perf_counter()
        for image in images:
            buffer = _io.BytesIO()
            save(image, buffer)
            files.append(buffer.getvalue())
        encode_s, started = time.perf_counter() - started, time.perf_counter()
        for data, image in zip(files, images):
            with Image.open(_io.BytesIO(data)) as decoded:
                pixels = np.asarray(decoded.convert("L"))
            assert np.array_equal(pixels // 255 if binary else pixels, image)
        results[name] = {"bytes": sum(map(len, files)), "encode_ms_per_image": 1e3 * encode_s / len(images),
                         "decode_ms_per_image": 1e3 * (time.perf_counter() - started) / len(images)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained run folder (bernoulli or discretized-logistic likelihood, normal prior)")
    parser.add_argument("--data", choices=("binarized-mnist", "mnist"), default="binarized-mnist")
    parser.add_argument("--train-epochs", type=int, default=60, help="without --run: epochs of configs/binarized_mnist.toml")
    parser.add_argument("--out", default="runs/bbans-mnist", help="without --run: where to train")
    parser.add_argument("--time-limit", type=float, default=10.0, help="without --run: training minutes at most")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for coding (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    if args.run is None:
        if args.data != "binarized-mnist":
            parser.error("give --run: a trained 8-bit model (see docs/benchmarks.md for its configuration)")
        config = vaekit.build_run_config("configs/binarized_mnist.toml", [
            f"train.epochs={args.train_epochs}", f"train.time_limit={args.time_limit}", "train.patience=null",
            "train.progress=false", "train.threads=2"])
        started = time.perf_counter()
        vaekit.fit(config, args.out)
        print(f"trained {args.out} in {time.perf_counter() - started:.0f} s", flush=True)
        args.run = args.out
    model = vaekit.load(args.run)
    test = vaekit.load_data(args.data).split("test").x
    binary = args.data == "binarized-mnist"
    x = (test.numpy() if binary else np.rint(test.numpy() * 255)).astype(np.uint8)  # (10000, 1, 28, 28)
    n_values = x.size
    results = {}

    blob, encode_s = _time(compress, model, x)
    restored, decode_s = _time(decompress, model, blob)
    assert np.array_equal(restored, x), "round trip failed"
    neg_elbo = float(vaekit.evaluate(model, test, iw_samples=1).neg_elbo)
    results["vaekit BB-ANS (.vkz)"] = {"bytes": len(blob), "encode_images_per_s": len(x) / encode_s,
                                       "decode_images_per_s": len(x) / decode_s,
                                       "encode_ms_per_image": 1e3 * encode_s / len(x),
                                       "decode_ms_per_image": 1e3 * decode_s / len(x)}
    raw = np.packbits(x.reshape(len(x), -1), axis=1).tobytes() if binary else x.tobytes()
    results.update(_stream_baselines(raw, len(x)))
    results.update(_image_baselines(x[:, 0], binary))
    for name, r in results.items():
        r["bits_per_dim"] = 8 * r["bytes"] / n_values
    elbo_bpd = neg_elbo / (784 * math.log(2))
    print(json.dumps({"test_neg_elbo_nats": neg_elbo, "test_neg_elbo_bits_per_dim": elbo_bpd,
                      "vkz_over_elbo": results["vaekit BB-ANS (.vkz)"]["bits_per_dim"] / elbo_bpd,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
