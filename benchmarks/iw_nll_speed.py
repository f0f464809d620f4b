"""Speed of the importance-sampled NLL (vaekit.evaluate.importance_sampled_nll) against the machine's matrix-product
speed, and against the estimator it replaced (kept below as `reference_nll`), interleaved in one process.

The model is the pytorch/examples VAE (MLP 784-400-20, ReLU, Bernoulli likelihood, standard normal prior), trained
for `--epochs` on statically binarized MNIST (0: random weights with a fixed seed). The decoder's FLOPs per image
are counted as 2 * in * out per linear layer for every one of the k samples; the matrix-product peak is the best
speed of torch.matmul on the decoder's layer shapes (both layers in turn, as the decoder runs them) over a few row
counts, at the same thread count. Each round times both estimators over the same images from the same seed (so
they draw the same z and their estimates agree to float rounding), alternating which goes first.

    VAEKIT_DATA=../shared/data python benchmarks/iw_nll_speed.py --threads 2 --k 1000 --images 500
    ... --json benchmarks/results/iw_nll_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import vaekit
from vaekit.core.distributions import log_mean_exp
from vaekit.evaluate import IW_ROWS_PER_CHUNK, importance_sampled_nll, iw_pass_rows


@torch.no_grad()
def reference_nll(model, x, y=None, k=1000, chunk_rows=IW_ROWS_PER_CHUNK):
    """The estimator before the fast one (vaekit 283a10b), verbatim: one decode of chunk_rows rows per chunk and the
    distributions' own log_prob."""
    qz = model.encode(x, y)
    pz = model.prior_for(y, x.shape[0])
    per_chunk = max(1, chunk_rows // x.shape[0])
    log_w = []
    for start in range(0, k, per_chunk):
        z = qz.sample((min(per_chunk, k - start),))  # (s, B, D)
        px = model.decode(z, y)
        log_w.append(px.log_prob(x) + pz.log_prob(z) - qz.log_prob(z))
    return -log_mean_exp(torch.cat(log_w, 0), 0)


def build(epochs: int, seed: int, threads: int):
    """The 784-400-20 Bernoulli VAE and the binarized-MNIST test images."""
    config = vaekit.RunConfig()
    config.data.name = "binarized-mnist"
    config.model.network = "mlp"
    config.model.network.hidden = [400]
    config.model.network.activation = "relu"
    config.model.latent_dim = 20
    config.model.likelihood = "bernoulli"
    config.model.prior = "normal"
    config.train.epochs = max(1, epochs)
    config.train.batch_size = 128
    config.train.lr = 1e-3
    config.train.seed = seed
    config.train.threads = threads
    config.train.progress = False
    data = vaekit.load_data("binarized-mnist")
    if epochs > 0:
        model = vaekit.fit(config, data=data).model
    else:  # random weights: the speed does not depend on them
        torch.manual_seed(seed)
        from vaekit.build import build_model, resolve_model_config

        model = build_model(resolve_model_config(config.model, data), training=False)
    return model.eval(), data.split("test").x


def decoder_flops_per_sample(model) -> int:
    """2 * in * out summed over the decoder's linear layers: the multiply-adds of one decoded code."""
    return sum(2 * m.in_features * m.out_features for m in model.decoder.modules() if isinstance(m, nn.Linear))


def decoder_shapes(model) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.decoder.modules() if isinstance(m, nn.Linear)]


def matmul_peak(shapes: list[tuple[int, int]], row_counts: list[int], repeats: int = 5) -> dict[int, float]:
    """GFLOP/s of torch.matmul through the decoder's layer shapes ((rows, in) @ (in, out), layer after layer),
    best of `repeats` timings of 2e10 FLOPs each (0.1-0.3 s: long enough that a quiet moment of a shared machine
    does not make the peak), for every row count."""
    weights = [torch.randn(n_in, n_out) for n_in, n_out in shapes]
    flops_per_row = sum(2 * n_in * n_out for n_in, n_out in shapes)
    speeds = {}
    for rows in row_counts:
        inputs = [torch.randn(rows, n_in) for n_in, _ in shapes]
        calls = max(1, round(2e10 / (rows * flops_per_row)))
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(calls):
                for a, w in zip(inputs, weights):
                    torch.matmul(a, w)
            best = min(best, time.perf_counter() - started)
        speeds[rows] = calls * rows * flops_per_row / best / 1e9
    return speeds


def estimate(function, model, x: torch.Tensor, k: int, batch_size: int, seed: int) -> tuple[float, torch.Tensor]:
    """Seconds and the per-image NLL (N,) of `function` over x, batch_size images at a time (as vaekit.evaluate)."""
    torch.manual_seed(seed)
    started = time.perf_counter()
    nll = torch.cat([function(model, x[i : i + batch_size], k=k) for i in range(0, x.shape[0], batch_size)])
    return time.perf_counter() - started, nll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=1000, help="importance samples per image")
    parser.add_argument("--images", type=int, default=500, help="test images (a fixed random subset)")
    parser.add_argument("--batch-size", type=int, default=100, help="images per call (vaekit.evaluate's default)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timings of each estimator")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (0: random weights)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model, test = build(args.epochs, args.seed, args.threads)
    torch.set_num_threads(args.threads)  # (fit sets its own)
    index = torch.randperm(test.shape[0], generator=torch.Generator().manual_seed(args.seed))[: args.images]
    x = test[index.sort().values]
    flops_per_image = args.k * decoder_flops_per_sample(model)
    pass_rows = iw_pass_rows(model)
    rows = sorted({pass_rows, 1024, 4096, IW_ROWS_PER_CHUNK})

    estimators = {"old": reference_nll, "new": importance_sampled_nll}
    times: dict[str, list[float]] = {name: [] for name in estimators}
    peaks: list[dict[int, float]] = []
    results = {}
    estimate(importance_sampled_nll, model, x[: args.batch_size], min(args.k, 50), args.batch_size, 0)  # warm-up
    for r in range(args.rounds):
        peaks.append(matmul_peak(decoder_shapes(model), rows))
        order = list(estimators) if r % 2 == 0 else list(reversed(estimators))
        for name in order:
            seconds, nll = estimate(estimators[name], model, x, args.k, args.batch_size, args.seed + 1)
            times[name].append(seconds)
            results[name] = nll
            print(f"round {r + 1}: {name} {seconds:.2f} s", flush=True)

    peak_by_rows = {n: max(p[n] for p in peaks) for n in rows}
    peak = max(peak_by_rows.values())
    report = {"threads": args.threads, "k": args.k, "images": args.images, "batch_size": args.batch_size,
              "epochs": args.epochs, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "decoder_layers": decoder_shapes(model), "pass_rows": pass_rows,
              "decoder_flops_per_image": flops_per_image, "matmul_gflops_by_rows": peak_by_rows,
              "matmul_peak_gflops": peak, "estimators": {}}
    print(f"\nthreads {args.threads}, k = {args.k}, {args.images} binarized-MNIST test images in batches of "
          f"{args.batch_size}, decoder {decoder_shapes(model)}: {flops_per_image / 1e9:.3f} GFLOP per image; "
          f"new estimator's pass {pass_rows} rows (OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')})")
    print("torch.matmul on the decoder's shapes: " + ", ".join(f"{n} rows {g:.1f}" for n, g in peak_by_rows.items())
          + f" GFLOP/s; peak {peak:.1f}")
    print("\n| estimator | best s | median s | images/s | GFLOP/s (decoder) | of matmul peak | mean NLL (nats) |")
    print("|---|---|---|---|---|---|---|")
    for name in estimators:
        best, median = min(times[name]), statistics.median(times[name])
        gflops = flops_per_image * args.images / best / 1e9
        entry = {"seconds": times[name], "best_seconds": best, "median_seconds": median,
                 "images_per_second": args.images / best, "gflops": gflops, "fraction_of_peak": gflops / peak,
                 "mean_nll": float(results[name].mean())}
        report["estimators"][name] = entry
        print(f"| {name} | {best:.2f} | {median:.2f} | {args.images / best:.1f} | {gflops:.1f} | "
              f"{gflops / peak:.0%} | {entry['mean_nll']:.4f} |")
    ratios = [o / n for o, n in zip(times["old"], times["new"])]
    difference = (results["old"] - results["new"]).abs()
    report.update(speedup_per_round=ratios, speedup_median=statistics.median(ratios),
                  max_abs_difference=float(difference.max()), mean_abs_difference=float(difference.mean()))
    print(f"\nold / new time, per round: {', '.join(f'{r:.2f}' for r in ratios)} (median "
          f"{statistics.median(ratios):.2f}x); estimates: max |old - new| {float(difference.max()):.2e} nats, "
          f"means {float(results['old'].mean()):.4f} and {float(results['new'].mean()):.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
