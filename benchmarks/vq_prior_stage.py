"""Measurement: what do extra epochs of the code prior alone, on frozen codes, add to a trained VQ-VAE?

vaekit trains a VQ-VAE's prior in the same loop as its autoencoder, on codes that move while the encoder learns
(docs/vqvae.md). This script takes a trained run, freezes its encoder and codebook, and trains only the prior on
the codes of the training split for a few more epochs (Adam, lr 1e-3, batch 128, a fresh optimiser). After each
epoch it reports the prior's NLL of the codes of 2,000 validation images (the rate, in nats) and the share of
3,000 samples that the fixed MNIST classifier of `vaekit quality` labels with confidence >= 0.9
(benchmarks/vqvae_mnist.py). Nothing is written to the run.

    VAEKIT_DATA=../shared/data python benchmarks/vq_prior_stage.py RUN --epochs 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import vaekit
from vaekit.metrics.sample_quality import train_classifier

sys.path.insert(0, str(Path(__file__).parent))
from vqvae_mnist import confident_share  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = vaekit.load_data("mnist")
    classifier = train_classifier(bundle, progress=False)
    model = vaekit.load_run(args.run).model.eval()
    x, valid = bundle.split("train").x, bundle.split("valid").x[:2000]
    with torch.no_grad():
        codes = torch.cat([model.codes(x[i : i + 1000]) for i in range(0, len(x), 1000)])
        valid_codes = model.codes(valid)
    prior = model.code_prior
    optimizer = torch.optim.Adam(prior.parameters(), 1e-3)
    generator = torch.Generator().manual_seed(0)

    def report(epoch: int, seconds: float) -> None:
        prior.eval()
        with torch.no_grad():
            nll = -prior.log_prob(valid_codes, torch.zeros(len(valid_codes), dtype=torch.long)).mean()
        torch.manual_seed(0)
        share = confident_share(classifier, model.sample(3000))[0]
        print(f"prior epochs {epoch}: valid NLL of the codes {float(nll):.1f} nats, confident samples {share:.3f} "
              f"({seconds:.0f} s)", flush=True)

    report(0, 0.0)
    for epoch in range(args.epochs):
        started = time.perf_counter()
        prior.train()
        order = torch.randperm(len(codes), generator=generator)
        for start in range(0, len(codes), 128):
            batch = codes[order[start : start + 128]]
            loss = -prior.log_prob(batch, torch.zeros(len(batch), dtype=torch.long)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        report(epoch + 1, time.perf_counter() - started)


if __name__ == "__main__":
    main()
