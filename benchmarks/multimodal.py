"""Multi-modal data, made visible: which prior lets a VAE generate every mode of a 2-D mixture, and how sharply.

For each data set (ring8: 8 Gaussians of std 0.1 on a circle of radius 2; pinwheel: 5 curved arms) and each prior
(normal, mog with 10 components, vamp with 50 pseudo-inputs), one VAE is trained with the same settings: latent 2,
MLP [128, 128], the learned-scale Gaussian likelihood, Adam 1e-3, batch 128, `--epochs` epochs, seed 0. Then, on
the test split and from 5,000 generated samples x ~ p(x | z), z ~ p(z):
    test NLL         importance-sampled (k = `--k`), nats per point
    near a mode      the share of samples within 3 standard deviations of some mode (vaekit.metrics.modes)
    modes covered    modes receiving at least 10% of their fair share of samples
and one figure: the data and each model's samples, a panel each.

The settings were fixed before looking at any result (they are the library's defaults for small data, apart from
the latent size of 2, the data's own dimension); nothing is tuned on these numbers.

    python benchmarks/multimodal.py --epochs 60 --k 500 --figure docs/figures/multimodal.png \
        --out benchmarks/results/multimodal.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import vaekit
from vaekit.evaluate import evaluate
from vaekit.metrics.modes import mode_report

DATASETS = ("ring8", "pinwheel")
PRIORS = {"normal": [], "mog": ["model.prior.components=10"], "vamp": ["model.prior.components=50"]}
SAMPLES = 5000


def train(data: str, prior: str, epochs: int, threads: int):
    config = vaekit.build_run_config(None, [
        f"data.name={data}", "model.latent_dim=2", "model.network=mlp", "model.network.hidden=[128,128]",
        "model.likelihood=gaussian-learned", f"model.prior={prior}", *PRIORS[prior], f"train.epochs={epochs}",
        "train.progress=false", f"train.threads={threads}", "train.seed=0"])
    return vaekit.fit(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--k", type=int, default=500, help="importance samples of the test NLL")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--figure", help="write the samples figure here (PNG)")
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args()
    report: dict = {"epochs": args.epochs, "k": args.k, "samples": SAMPLES, "results": {}}
    drawn: dict = {}
    for data in DATASETS:
        bundle = vaekit.load_data(data)
        test = bundle.split("test")
        report["results"][data] = {"data": mode_report(bundle.split("train").x.numpy()[:SAMPLES],
                                                       bundle.meta["modes"])}
        drawn[(data, "data")] = bundle.split("train").x[:SAMPLES].numpy()
        for prior in PRIORS:
            started = time.perf_counter()
            result = train(data, prior, args.epochs, args.threads)
            seconds = time.perf_counter() - started
            model = result.model
            with torch.random.fork_rng():
                torch.manual_seed(1)
                samples = model.sample(SAMPLES, mean=False).numpy()
            metrics = evaluate(model, test.x, iw_samples=args.k)
            modes = mode_report(samples, bundle.meta["modes"])
            report["results"][data][prior] = {"test_nll": round(metrics.nll, 4), "neg_elbo": round(metrics.neg_elbo, 4),
                                              "kl": round(metrics.kl, 4), "train_seconds": round(seconds, 1), **modes}
            drawn[(data, prior)] = samples
            print(f"{data} {prior}: NLL {metrics.nll:.3f}, near {modes['near_fraction']:.3f}, "
                  f"covered {modes['modes_covered']}/{modes['modes']} ({seconds:.0f} s)", flush=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        columns = ["data", *PRIORS]
        fig, axes = plt.subplots(len(DATASETS), len(columns), figsize=(3.2 * len(columns), 3.3 * len(DATASETS)),
                                 constrained_layout=True)
        for row, data in enumerate(DATASETS):
            for col, name in enumerate(columns):
                ax = axes[row, col]
                points = drawn[(data, name)]
                ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.3, color="C0" if name == "data" else f"C{col}")
                r = report["results"][data][name]
                title = f"{data}: {'training data' if name == 'data' else name + ' prior'}"
                detail = f"near {100 * r['near_fraction']:.0f}%, {r['modes_covered']}/{r['modes']} modes"
                if name != "data":
                    detail += f", NLL {r['test_nll']:.2f}"
                ax.set_title(f"{title}\n{detail}", fontsize=9)
                ax.set_xlim(-3, 3)
                ax.set_ylim(-3, 3)
                ax.set_aspect("equal")
                ax.tick_params(labelsize=7)
        fig.savefig(args.figure, dpi=110)


if __name__ == "__main__":
    main()
