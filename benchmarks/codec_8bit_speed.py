"""Benchmark: speed of lossless BB-ANS coding of MNIST's 8-bit grey levels, the codec before the two-step code
(one 256-entry categorical per pixel, kept below as it was) against `vaekit.compress` / `vaekit.decompress`,
interleaved in one process on the same images, with the bits/dim of both files.

    VAEKIT_DATA=../shared/data python benchmarks/codec_8bit_speed.py --run runs/mnist-8bit --threads 1
    VAEKIT_DATA=../shared/data python benchmarks/codec_8bit_speed.py --images 1000    # trains a short model first

The reference run is configs/mnist_8bit.toml trained fully (docs/benchmarks.md); without --run, the same
configuration is trained for --train-epochs epochs (a few minutes), which is enough to compare speed and size.
Each round codes the first --images test images with the old codec, then the new one, each way; the figures are
the medians over --rounds rounds, from wall time and from the process's CPU time (less disturbed by other jobs on
a shared machine). Both files must decode bit-exactly, and the new decoder must also read the old file (format
version 2). A file's size is one draw of the bits-back code length (the latents drawn depend on every earlier
bit), so sizes differ by a few hundredths of a percent between any two codings; --size-seeds N codes the images
N times with different initial words and reports the mean and spread of both codecs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import time

import numpy as np
import torch

import vaekit
from vaekit.apps import vkz
from vaekit.apps.compress import (
    LATENT_BINS,
    MIN_PROBABILITY,
    _bucket_centres,
    _bucket_edges,
    _levels,
    _models,
    _to_values,
    batch_starts,
    compress,
    decompress,
    to_symbols,
)
from vaekit.core.runtime import to_model

# --- the codec before the two-step code, as it was (one 256-level categorical per pixel and per latent) ---
OLD_PROBS_BYTES = 128 * 2**20


def _old_posterior_buckets(model, symbols, levels, edges):
    from scipy.special import ndtr

    x = torch.as_tensor(symbols, dtype=torch.float32) / (levels - 1)
    qz = model.encode(to_model(model, x))
    mu = qz.base_dist.loc.double().cpu().numpy().reshape(-1, 1)
    sigma = qz.base_dist.scale.double().cpu().numpy().reshape(-1, 1)
    cdf = ndtr((edges[None, :] - mu) / sigma)
    probs = np.clip(np.diff(cdf, axis=1), MIN_PROBABILITY, None)
    return probs / probs.sum(axis=1, keepdims=True)


def _old_value_probabilities(model, z_buckets, centres, batch):
    z = torch.as_tensor(centres[z_buckets].reshape(batch, model.latent_dim), dtype=torch.float32)
    probs = model.likelihood.level_probs(model.decode(to_model(model, z))).cpu().numpy()
    probs = np.clip(probs.reshape(-1, probs.shape[-1]), MIN_PROBABILITY, 1.0)
    if probs.shape[-1] == 2:
        return np.clip(probs[:, 1] / probs.sum(axis=1), MIN_PROBABILITY, 1.0 - MIN_PROBABILITY)
    return probs


def old_default_batch(model):
    levels = _levels(model)
    per_image = math.prod(model.event_shape) * (1 if levels == 2 else levels) * 8
    return max(1, min(256, OLD_PROBS_BYTES // per_image))


def old_compress(model, array, batch=None, seed=0):
    import constriction

    levels = _levels(model)
    symbols = to_symbols(model, array)
    batch = old_default_batch(model) if batch is None else batch
    edges, centres = _bucket_edges(LATENT_BINS), _bucket_centres(LATENT_BINS)
    categorical, values, uniform = _models(levels)
    initial = math.ceil(model.latent_dim * math.log2(LATENT_BINS) / 32) + 2
    words = np.random.default_rng(seed).integers(0, 2**32, size=initial, dtype=np.uint64).astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words)
    with vkz.in_eval_mode(model):
        for start, n in batch_starts(len(symbols), batch):
            xb = symbols[start : start + n]
            z = coder.decode(categorical, _old_posterior_buckets(model, xb, levels, edges))
            coder.encode_reverse(xb.reshape(-1).astype(np.int32), values,
                                 _old_value_probabilities(model, z, centres, n))
            coder.encode_reverse(z, uniform)
    source = np.asarray(array)
    header = {"codec": "bb-ans", "model": vkz.model_fingerprint(model), "shape": list(symbols.shape[1:]),
              "input_shape": list(source.shape), "dtype": str(source.dtype), "count": len(symbols),
              "levels": levels, "batch": batch, "bins": LATENT_BINS, "initial_words": initial,
              "data_sha256": hashlib.sha256(symbols.tobytes()).hexdigest()}
    return vkz.write(header, coder.get_compressed(), version=2)


def old_decompress(model, data):
    import constriction

    header, payload = vkz.read(data)
    levels = _levels(model)
    vkz.check_model(header, model)
    count, batch, shape = int(header["count"]), int(header["batch"]), tuple(header["shape"])
    edges, centres = _bucket_edges(LATENT_BINS), _bucket_centres(LATENT_BINS)
    categorical, values, uniform = _models(levels)
    coder = constriction.stream.stack.AnsCoder(payload)
    out = np.empty((count, *shape), dtype=np.uint8)
    with vkz.in_eval_mode(model):
        for start, n in reversed(batch_starts(count, batch)):
            z = coder.decode(uniform, n * model.latent_dim)
            xb = coder.decode(values, _old_value_probabilities(model, z, centres, n)).reshape(n, *shape)
            xb = xb.astype(np.uint8)
            coder.encode_reverse(z, categorical, _old_posterior_buckets(model, xb, levels, edges))
            out[start : start + n] = xb
    assert hashlib.sha256(out.tobytes()).hexdigest() == header["data_sha256"]
    return _to_values(out, levels, np.dtype(header["dtype"])).reshape(header["input_shape"])


# --- the benchmark ---


def _timed(function, *args):
    """The result, the wall seconds and the process's CPU seconds (all threads) of function(*args)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, (time.perf_counter() - started, time.process_time() - cpu)


def _train(out: str, epochs: int) -> str:
    config = vaekit.build_run_config("configs/mnist_8bit.toml", [
        f"train.epochs={epochs}", f"objective.warmup_epochs={max(1, epochs // 2)}", "train.patience=null",
        "train.progress=false", "train.threads=1"])
    started = time.perf_counter()
    vaekit.fit(config, out)
    print(f"trained {out} ({epochs} epochs of configs/mnist_8bit.toml) in {time.perf_counter() - started:.0f} s",
          flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained 8-bit run (discretized-logistic likelihood, normal prior)")
    parser.add_argument("--images", type=int, default=10000, help="test images coded (the first N; all: 10000)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (docs/benchmarks.md used 1)")
    parser.add_argument("--size-seeds", type=int, default=1,
                        help="code the images with this many seeds of the initial words (sizes only; mean, stdev)")
    parser.add_argument("--train-epochs", type=int, default=3, help="without --run: epochs of the short model")
    parser.add_argument("--out", default="runs/codec8-short", help="without --run: where to train it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run or _train(args.out, args.train_epochs)
    model = vaekit.load(run)
    test = vaekit.load_data("mnist").split("test").x[: args.images]
    x = np.rint(test.numpy() * 255).astype(np.uint8)  # (N, 1, 28, 28)
    old_compress(model, x[:20]), compress(model, x[:20])  # warm-up: imports, first calls

    times = {key: [] for key in ("old encode", "new encode", "old decode", "new decode")}
    for _ in range(args.rounds):
        old_blob, seconds = _timed(old_compress, model, x)
        times["old encode"].append(seconds)
        new_blob, seconds = _timed(compress, model, x)
        times["new encode"].append(seconds)
        restored, seconds = _timed(old_decompress, model, old_blob)
        times["old decode"].append(seconds)
        assert np.array_equal(restored, x), "old round trip failed"
        restored, seconds = _timed(decompress, model, new_blob)
        times["new decode"].append(seconds)
        assert np.array_equal(restored, x), "new round trip failed"
    assert np.array_equal(decompress(model, old_blob), x), "the new decoder does not read the old file"

    # wall time, and CPU time, which other jobs on a shared machine disturb less (with 1 thread, the same)
    rate = {key: len(x) / statistics.median(wall for wall, _ in values) for key, values in times.items()}
    cpu_rate = {key: len(x) / statistics.median(cpu for _, cpu in values) for key, values in times.items()}
    neg_elbo = float(vaekit.evaluate(model, test, iw_samples=1).neg_elbo)
    result = {
        "run": run, "images": len(x), "threads": args.threads, "rounds": args.rounds,
        "images_per_s": {key: round(value, 1) for key, value in rate.items()},
        "speed-up": {"encode": rate["new encode"] / rate["old encode"],
                     "decode": rate["new decode"] / rate["old decode"]},
        "images_per_cpu_s": {key: round(value, 1) for key, value in cpu_rate.items()},
        "cpu speed-up": {"encode": cpu_rate["new encode"] / cpu_rate["old encode"],
                         "decode": cpu_rate["new decode"] / cpu_rate["old decode"]},
        "bytes": {"old": len(old_blob), "new": len(new_blob)},
        "bits_per_dim": {"old": 8 * len(old_blob) / x.size, "new": 8 * len(new_blob) / x.size,
                         "test neg-ELBO (1 sample)": neg_elbo / (math.prod(x.shape[1:]) * math.log(2))},
        "new / old size": len(new_blob) / len(old_blob),
        "batch": {"old": old_default_batch(model), "new": vkz.read(new_blob)[0]["batch"]},
    }
    if args.size_seeds > 1:
        # A file's size is one draw of the bits-back code length (the latents decoded depend on every bit before):
        # both codecs over several seeds of the initial random words, mean and spread.
        sizes = {"old": [len(old_blob)], "new": [len(new_blob)]}
        for seed in range(1, args.size_seeds):
            sizes["old"].append(len(old_compress(model, x, None, seed)))
            sizes["new"].append(len(compress(model, x, seed=seed)))
        result["bits_per_dim over seeds"] = {
            key: {"mean": 8 * statistics.mean(v) / x.size, "stdev": 8 * statistics.stdev(v) / x.size}
            for key, v in sizes.items()}
        result["new / old size over seeds"] = statistics.mean(sizes["new"]) / statistics.mean(sizes["old"])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
