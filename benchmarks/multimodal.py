"""Multi-modal data, made visible: which prior lets a VAE generate every mode of a 2-D mixture, and how sharply.

For each data set (ring8: 8 Gaussians of std 0.1 on a circle of radius 2; pinwheel: 5 curved arms) and each prior
(normal, mog with 10 components, vamp with 50 pseudo-inputs, and the normal prior with an inverse autoregressive
flow posterior, "iaf": 4 steps of 64 hidden units), one VAE is trained with the same settings: latent 2,
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

With `--mnist E`, dynamically binarized MNIST (labelled, unlike the static set) with its ten classes as the
modes, instead: the same priors and the flow posterior
(mog 10 components, vamp 500 pseudo-inputs, iaf 4 steps of 256 hidden units; latent 32, MLP [400], Bernoulli likelihood, E epochs). A sample
x = E[p(x | z)] is "near a mode" when the in-domain classifier of vaekit.metrics.sample_quality (trained on the
training split) gives one class probability >= 0.9; a class is covered when it gets at least 10% of its fair
share of those samples. Also reported: KL(class histogram || data's class frequencies) and the classifier-feature
Frechet distance, over 10,000 samples, and the test NLL (k = `--k`).

    VAEKIT_DATA=../shared/data python benchmarks/multimodal.py --mnist 10 --k 100 \
        --out benchmarks/results/multimodal_mnist.json
"""

from __future__ import annotations

import argparse
import time

import torch

import vaekit
from report_json import emit  # (benchmarks/report_json.py, beside this script)
from vaekit.evaluate import evaluate
from vaekit.metrics.modes import mode_report

DATASETS = ("ring8", "pinwheel")
# Each model: its prior (and posterior) settings. "iaf" is the standard prior with a flow posterior q(z|x):
# 4 inverse autoregressive flow steps of 64 hidden units on the diagonal Gaussian.
PRIORS = {"normal": [], "mog": ["model.prior.components=10"], "vamp": ["model.prior.components=50"],
          "iaf": ["model.posterior=iaf", "model.posterior.steps=4", "model.posterior.hidden=64"]}
PRIOR_OF = {"iaf": "normal"}  # the models whose prior is not their name
SAMPLES = 5000


def train(data: str, prior: str, epochs: int, threads: int):
    config = vaekit.build_run_config(None, [
        f"data.name={data}", "model.latent_dim=2", "model.network=mlp", "model.network.hidden=[128,128]",
        "model.likelihood=gaussian-learned", f"model.prior={PRIOR_OF.get(prior, prior)}", *PRIORS[prior],
        f"train.epochs={epochs}",
        "train.progress=false", f"train.threads={threads}", "train.seed=0"])
    return vaekit.fit(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--k", type=int, default=500, help="importance samples of the test NLL")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--figure", help="write the samples figure here (PNG)")
    parser.add_argument("--out", help="write the report as JSON here")
    parser.add_argument("--mnist", type=int, metavar="EPOCHS", help="binarized MNIST instead (see the docstring)")
    parser.add_argument("--models", help="with --mnist: a comma-separated subset of " + ", ".join(MNIST_PRIORS))
    args = parser.parse_args()
    if args.mnist:
        return mnist(args)
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
    emit(report, args.out)
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
                label = "normal prior, IAF posterior" if name == "iaf" else name + " prior"
                title = f"{data}: {'training data' if name == 'data' else label}"
                detail = f"near {100 * r['near_fraction']:.0f}%, {r['modes_covered']}/{r['modes']} modes"
                if name != "data":
                    detail += f", NLL {r['test_nll']:.2f}"
                ax.set_title(f"{title}\n{detail}", fontsize=9)
                ax.set_xlim(-3, 3)
                ax.set_ylim(-3, 3)
                ax.set_aspect("equal")
                ax.tick_params(labelsize=7)
        fig.savefig(args.figure, dpi=110)


MNIST_PRIORS = {"normal": [], "mog": ["model.prior.components=10"], "vamp": ["model.prior.components=500"],
                "iaf": ["model.posterior=iaf", "model.posterior.steps=4", "model.posterior.hidden=256"]}
CONFIDENT = 0.9


def mnist(args) -> None:
    """The ten classes of binarized MNIST as the modes (see the module docstring)."""
    import numpy as np
    from torch.nn import functional as F

    from vaekit.metrics.sample_quality import sample_quality, train_classifier

    torch.set_num_threads(args.threads)
    bundle = vaekit.load_data("mnist", binarize="dynamic")  # (static binarized MNIST has no labels)
    torch.manual_seed(0)
    classifier = train_classifier(bundle)
    classifier.eval()

    def confident_classes(x: torch.Tensor) -> np.ndarray:
        """The class of each image whose top class probability is >= CONFIDENT, else -1."""
        with torch.no_grad():
            p = torch.cat([F.softmax(classifier.head(classifier.features(x[i : i + 1000])), -1)
                           for i in range(0, x.shape[0], 1000)])
        top, cls = p.max(-1)
        return torch.where(top >= CONFIDENT, cls, torch.full_like(cls, -1)).numpy()

    def coverage(classes: np.ndarray) -> dict:
        counts = np.bincount(classes[classes >= 0], minlength=10)
        return {"near_fraction": round(float((classes >= 0).mean()), 4),
                "modes_covered": int((counts >= 0.1 * len(classes) / 10).sum()), "modes": 10,
                "counts": counts.tolist()}

    test = bundle.split("test")
    report = {"data": "mnist, dynamically binarized", "epochs": args.mnist, "k": args.k, "confident": CONFIDENT,
              "results": {"test images": coverage(confident_classes(test.x))}}
    chosen = args.models.split(",") if args.models else list(MNIST_PRIORS)
    unknown = sorted(set(chosen) - set(MNIST_PRIORS))
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MNIST_PRIORS)}")
    for prior in chosen:
        options = MNIST_PRIORS[prior]
        config = vaekit.build_run_config(None, [
            "data.name=mnist", "data.binarize=dynamic", "model.latent_dim=32", "model.network=mlp", "model.network.hidden=[400]",
            "model.likelihood=bernoulli", f"model.prior={PRIOR_OF.get(prior, prior)}", *options, f"train.epochs={args.mnist}",
            "train.progress=false", f"train.threads={args.threads}", "train.seed=0"])
        started = time.perf_counter()
        model = vaekit.fit(config, data=bundle).model
        seconds = time.perf_counter() - started
        with torch.random.fork_rng():
            torch.manual_seed(1)
            samples = torch.cat([model.sample(1000) for _ in range(10)])
        quality = sample_quality(model, bundle, classifier, n=10_000, seed=1)
        metrics = evaluate(model, test.x, iw_samples=args.k)
        report["results"][prior] = {"test_nll": round(metrics.nll, 3), "kl": round(metrics.kl, 3),
                                    "active_units": metrics.active_units, "train_seconds": round(seconds, 1),
                                    **coverage(confident_classes(samples)),
                                    "kl_class_histogram_to_data": round(quality.kl_to_data, 4),
                                    "frechet_distance": round(quality.frechet_distance, 3)}
        print(prior, report["results"][prior], flush=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
