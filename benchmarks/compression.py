"""Benchmark: lossless compression of the statically binarized MNIST test set with a trained VAE (BB-ANS) against
general-purpose compressors, all in one run on the same 10,000 images.

    VAEKIT_DATA=../shared/data python benchmarks/compression.py --run RUN           # a trained binarized-MNIST run
    VAEKIT_DATA=../shared/data python benchmarks/compression.py --train-epochs 60   # train one first (into --out)

Every byte of each file is counted, headers included; bits/dim = 8 * bytes / (10,000 * 784). The stream
baselines compress the 0/1 pixels packed 8 to a byte (np.packbits), as their best case: gzip -9, bz2 -9, lzma
preset 9e; the image formats store each image as its own file (Pillow): PNG (1-bit, optimised) and lossless WebP.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained run folder (bernoulli likelihood, normal prior)")
    parser.add_argument("--train-epochs", type=int, default=60, help="without --run: epochs of configs/binarized_mnist.toml")
    parser.add_argument("--out", default="runs/bbans-mnist", help="without --run: where to train")
    parser.add_argument("--time-limit", type=float, default=10.0, help="without --run: training minutes at most")
    args = parser.parse_args()

    if args.run is None:
        config = vaekit.build_run_config("configs/binarized_mnist.toml", [
            f"train.epochs={args.train_epochs}", f"train.time_limit={args.time_limit}", "train.patience=null",
            "train.progress=false", "train.threads=2"])
        started = time.perf_counter()
        vaekit.fit(config, args.out)
        print(f"trained {args.out} in {time.perf_counter() - started:.0f} s", flush=True)
        args.run = args.out
    model = vaekit.load(args.run)
    test = vaekit.load_data("binarized-mnist").split("test").x
    x = test.numpy().astype(np.uint8)  # (10000, 1, 28, 28)
    n_values = x.size
    results = {}

    started = time.perf_counter()
    blob = compress(model, x)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    restored = decompress(model, blob)
    decode_s = time.perf_counter() - started
    assert np.array_equal(restored, x), "round trip failed"
    neg_elbo = float(vaekit.evaluate(model, test, iw_samples=1).neg_elbo)
    results["vaekit BB-ANS (.vkz)"] = {"bytes": len(blob), "encode_images_per_s": len(x) / encode_s,
                                       "decode_images_per_s": len(x) / decode_s}
    packed = np.packbits(x.reshape(len(x), -1), axis=1).tobytes()
    for name, codec in [("gzip -9", lambda b: gzip.compress(b, 9)), ("bz2 -9", lambda b: bz2.compress(b, 9)),
                        ("lzma 9e", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME))]:
        started = time.perf_counter()
        size = len(codec(packed))
        results[name] = {"bytes": size, "encode_images_per_s": len(x) / (time.perf_counter() - started)}
    from PIL import Image

    for name, save in [("PNG (1-bit, per image)", lambda im, f: im.convert("1").save(f, "PNG", optimize=True)),
                       ("WebP lossless (per image)", lambda im, f: im.save(f, "WEBP", lossless=True, quality=100,
                                                                         method=6))]:
        import io as _io

        started, size = time.perf_counter(), 0
        for image in x[:, 0]:
            buffer = _io.BytesIO()
            save(Image.fromarray(image * 255), buffer)
            size += buffer.tell()
        results[name] = {"bytes": size, "encode_images_per_s": len(x) / (time.perf_counter() - started)}
    for name, r in results.items():
        r["bits_per_dim"] = 8 * r["bytes"] / n_values
    elbo_bpd = neg_elbo / (784 * math.log(2))
    print(json.dumps({"test_neg_elbo_nats": neg_elbo, "test_neg_elbo_bits_per_dim": elbo_bpd,
                      "vkz_over_elbo": results["vaekit BB-ANS (.vkz)"]["bits_per_dim"] / elbo_bpd,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
