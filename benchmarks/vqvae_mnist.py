"""Benchmark: are a VQ-VAE's samples recognisable, next to a Gaussian VAE's, and does its codebook stay in use?

The runs are trained (unless their folders hold them) with the library's defaults on MNIST, the same number of
autoencoder epochs, and only the model kind differing; the staged VQ-VAE adds PRIOR_EPOCHS epochs of its prior
alone on frozen codes:

    vaekit train --data mnist --epochs E --out OUT/gaussian
    vaekit train --data mnist --epochs E --set model.kind=vqvae --out OUT/vqvae
    vaekit train --data mnist --epochs E+2 --set model.kind=vqvae --set model.kind.prior_epochs=2 --out OUT/vqvae-staged

A fixed judge, the classifier of `vaekit quality` (`vaekit.metrics.sample_quality.train_classifier`, seed 0,
trained on MNIST's training split only), labels 10,000 samples of each model (the likelihood's mean at codes
drawn from the prior). Reported for each: the share of samples it labels with confidence >= 0.9, the share of
the 10,000 test images it labels so (the ceiling), and the KL of the histogram of predicted classes from the data's
class frequencies (0: every class drawn as often as in the data). For the VQ-VAE also the codebook usage and
perplexity on the 10,000 test images.

    VAEKIT_DATA=../shared/data python benchmarks/vqvae_mnist.py --out runs/vq-bench --epochs 6 \
        --save benchmarks/results/vqvae_mnist.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import vaekit
from vaekit.metrics.sample_quality import histogram_kl, train_classifier

CONFIDENCE = 0.9
# name -> (overrides, extra epochs): the staged VQ-VAE trains as many autoencoder epochs as the others, then
# PRIOR_EPOCHS more in which only its prior learns (model.kind.prior_epochs).
PRIOR_EPOCHS = 2
KINDS = {"gaussian": ([], 0), "vqvae": (["model.kind=vqvae"], 0),
         "vqvae-staged": (["model.kind=vqvae", f"model.kind.prior_epochs={PRIOR_EPOCHS}"], PRIOR_EPOCHS)}


def train(run: Path, overrides: list[str], epochs: int, threads: int) -> float:
    config = vaekit.build_run_config(None, ["data.name=mnist", *overrides, f"train.epochs={epochs}",
                                            f"train.threads={threads}", "train.progress=false"])
    started = time.perf_counter()
    vaekit.fit(config, run)
    return time.perf_counter() - started


@torch.no_grad()
def confident_share(classifier, x: torch.Tensor) -> tuple[float, np.ndarray]:
    """Share of images the classifier labels with probability >= CONFIDENCE, and its predicted classes."""
    classifier.eval()
    probs = torch.cat([torch.softmax(classifier(x[i : i + 1000]), -1) for i in range(0, len(x), 1000)])
    top, classes = probs.max(-1)
    return float((top >= CONFIDENCE).float().mean()), classes.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/vq-bench")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-n", type=int, default=10_000, help="samples per model")
    parser.add_argument("--save", help="write the results to this JSON file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    bundle = vaekit.load_data("mnist")
    test = bundle.split("test")
    classifier = train_classifier(bundle, progress=False)
    ceiling, test_classes = confident_share(classifier, test.x)
    freq = np.bincount(test.y.numpy(), minlength=10) / len(test.y)
    report = {"confidence": CONFIDENCE, "samples": args.n, "epochs": args.epochs,
              "classifier_test_accuracy": classifier.info.get("test_accuracy"),
              "test_images_confident": ceiling, "models": {}}
    for name, (overrides, extra) in KINDS.items():
        run = Path(args.out) / name
        seconds = None
        if not (run / "model.safetensors").exists():
            seconds = train(run, overrides, args.epochs + extra, args.threads)
        model = vaekit.load_run(run).model.eval()
        torch.manual_seed(0)
        started = time.perf_counter()
        samples = model.sample(args.n)
        sample_s = time.perf_counter() - started
        share, classes = confident_share(classifier, samples)
        row = {"confident_share": share, "class_histogram_kl": histogram_kl(np.bincount(classes, minlength=10)
                                                                            / len(classes), freq),
               "train_seconds": seconds, "sample_seconds": sample_s}
        if hasattr(model, "codebook_usage"):
            row.update(model.codebook_usage(test.x))
        report["models"][name] = row
        print(name, json.dumps(row), flush=True)
    text = json.dumps(report, indent=1)
    if args.save:
        Path(args.save).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
