"""Clustering MNIST in a VAE's latent space vs raw pixels vs PCA, and the time of t-SNE / UMAP on 10k codes.

Trains an MLP VAE on MNIST (grey levels, Bernoulli likelihood, 10-D latent) for a few minutes, encodes the 10,000
test images to posterior means, and clusters them with k-means and a Gaussian mixture (k = 10). The same
clusterers run on the raw 784 pixels and on a 10-component PCA of the pixels. Scores: ARI, NMI, Hungarian
accuracy (see vaekit.analysis.clustering). Then it times t-SNE and UMAP of the 10,000 codes and writes their
figures (PNG + interactive HTML).

    VAEKIT_DATA=/work/shared/data python benchmarks/latent_clustering.py --out /tmp/latent-bench
    ... --run /tmp/latent-bench/run     # reuse a trained run instead of training

Reference points: k-means on raw MNIST pixels ~0.50 NMI / ~0.53 accuracy; VaDE (Jiang et al. 2017, a VAE with
a mixture-of-Gaussians prior trained for clustering) 94.5% accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import vaekit
from vaekit.analysis import (
    compare_clusterings,
    confusion_figure,
    encode_dataset,
    matched_confusion,
    project,
    scatter_figure,
    scatter_html,
)
from vaekit.training.train import load_bundle
from vaekit.training.writer import write_output


def train(out: Path, minutes: float, latent_dim: int, threads: int) -> Path:
    """An MLP VAE on MNIST with a training-time budget; returns the run folder."""
    config = vaekit.build_run_config(overrides=[
        "data.name=mnist", f"model.latent_dim={latent_dim}", "model.network.hidden=[512,256]", "train.epochs=100",
        f"train.time_limit={minutes}", "train.batch_size=128", "train.lr=0.001", f"train.threads={threads}",
        "train.progress=true",
    ])
    run_dir = out / "run"
    result = vaekit.fit(config, run_dir)
    last = result.history[-1]
    print(f"trained {last['epoch']} epochs in {sum(r['seconds'] for r in result.history):.0f} s; "
          f"valid -ELBO {last['valid_loss']:.2f} nats")
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/latent-bench", help="folder for the run, figures and results")
    parser.add_argument("--run", help="use this trained run folder instead of training one")
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget (minutes)")
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and scikit-learn")
    parser.add_argument("--skip-embeddings", action="store_true", help="no t-SNE / UMAP timing")
    parser.add_argument("--skip-clustering", action="store_true", help="only the t-SNE / UMAP timing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
                                f"{args.threads} threads used", "threads": args.threads}
    started = time.perf_counter()
    run_dir = Path(args.run) if args.run else train(out, args.minutes, args.latent_dim, args.threads)
    results["train_seconds"] = round(time.perf_counter() - started, 1)
    run = vaekit.load_run(run_dir)
    data = load_bundle(run.config)
    test = data.split("test")
    emb = encode_dataset(run.model, test.x, test.y, progress=True)
    results["kl_per_dim"] = [round(float(v), 3) for v in emb.kl_per_dim]
    print("KL per dim (nats):", " ".join(f"{v:.2f}" for v in emb.kl_per_dim))

    with threadpool_limits(limits=args.threads):
        if not args.skip_clustering:
            cluster_mnist(emb, test, data, out, args.seed, results)
        if not args.skip_embeddings:
            time_embeddings(emb, data, out, args.seed, args.threads, results)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out / 'results.json'} and figures in {out}")


def cluster_mnist(emb, test, data, out: Path, seed: int, results: dict) -> None:
    """k-means and GMM on latent means, raw pixels and PCA; prints a markdown table; saves the best confusion."""
    t0 = time.perf_counter()
    rows = compare_clusterings(emb.mean, test.x.numpy(), emb.labels, k=10, seed=seed, progress=True)
    results["clustering_seconds"] = round(time.perf_counter() - t0, 1)
    results["clustering"] = [r.to_dict() for r in rows]
    print("\n| features | method | ARI | NMI | accuracy | seconds |\n|---|---|---|---|---|---|")
    for r in rows:
        s = r.scores
        print(f"| {r.features} | {r.method} | {s.ari:.3f} | {s.nmi:.3f} | {s.accuracy:.3f} | {r.seconds:.1f} |")
    best = max((r for r in rows if r.features == "latent means"), key=lambda r: r.scores.accuracy)
    matrix, clusters = matched_confusion(emb.labels, best.assignments)
    write_output(confusion_figure(matrix, list(data.class_names),
                                  f"{best.method} on VAE latent means, MNIST test: accuracy {best.scores.accuracy:.3f}",
                                  col_names=[f"c{c}" for c in clusters]), out / f"confusion_{best.method}.png")


def time_embeddings(emb, data, out: Path, seed: int, threads: int, results: dict) -> None:
    """Wall-clock and CPU seconds of t-SNE and UMAP of the codes (UMAP's first call includes numba compiling)."""
    timings = {}
    for method in ("tsne", "umap"):
        cpu = time.process_time()  # CPU time of all threads of this process
        proj = project(emb.mean, 2, method, seed=seed, n_jobs=threads)
        cpu = time.process_time() - cpu
        timings[method] = {"wall_s": round(proj.seconds, 1), "cpu_s": round(cpu, 1)}
        print(f"{method} of {len(emb)} codes: {proj.seconds:.1f} s wall, {cpu:.1f} s CPU")
        title = f"MNIST test: {method.upper().replace('TSNE', 't-SNE')} of 10,000 VAE posterior means"
        write_output(scatter_figure(proj.coords, emb.labels, data.class_names, proj.axis_names, title),
                     out / f"{method}.png")
        write_output(scatter_html(proj.coords, emb.labels, emb.index, data.class_names, proj.axis_names, title),
                     out / f"{method}.html")
    results["embedding_seconds"] = timings


if __name__ == "__main__":
    main()
