"""Training throughput: vaekit's loop vs a hand-written PyTorch loop vs the pytorch/examples VAE script structure.

All three train the pytorch/examples architecture (784-400-20 MLP, Bernoulli likelihood, batch 128, Adam 1e-3) on
statically binarized MNIST (50,000 training images), one epoch at a time, interleaved in the same process so that
machine load affects them alike; the report quotes medians and ratios.

    VAEKIT_DATA=../shared/data python benchmarks/throughput.py --repeats 5 --threads 2

  vaekit    vaekit.fit with the matching config (the samples/s it logs for each epoch's training pass)
  plain     pre-shuffled tensor slicing, fused Adam, no per-batch host sync: the fastest plain loop
  examples  the structure of pytorch/examples vae/main.py: DataLoader over a TensorDataset, shuffle=True,
            BCE on sigmoid outputs, loss.item() every batch, default (for-each) Adam
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

import vaekit


class ExamplesVAE(nn.Module):
    """pytorch/examples vae/main.py's model, verbatim in structure."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def plain_epoch(model, optimizer, x, batch_size, generator) -> float:
    """Hand-written loop: slices a pre-shuffled tensor, logits-based BCE, fused Adam, no per-batch .item()."""
    start = time.perf_counter()
    order = torch.randperm(x.shape[0], generator=generator)
    total = torch.zeros(())
    for i in range(0, x.shape[0], batch_size):
        xb = x[order[i : i + batch_size]]
        logits, mu, logvar = model(xb)
        bce = F.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = (bce + kld) / xb.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * xb.shape[0]
    float(total)
    return x.shape[0] / (time.perf_counter() - start)


def examples_epoch(model, optimizer, loader, n) -> float:
    """The pytorch/examples training loop structure."""
    start = time.perf_counter()
    train_loss = 0.0
    for data, in loader:
        optimizer.zero_grad()
        logits, mu, logvar = model(data)
        bce = F.binary_cross_entropy(torch.sigmoid(logits), data.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = bce + kld
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    return n / (time.perf_counter() - start)


def vaekit_epoch(config, bundle) -> float:
    result = vaekit.fit(config, data=bundle)
    return result.history[-1]["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="epochs per implementation (interleaved)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    bundle = vaekit.load_data("binarized-mnist")
    x = bundle.split("train").x.flatten(1).contiguous()  # (50000, 784)
    config = vaekit.RunConfig()
    config.model.network.hidden, config.model.latent_dim, config.model.likelihood = [400], 20, "bernoulli"
    config.train.epochs, config.train.batch_size, config.train.lr = 1, 128, 1e-3
    config.train.progress, config.train.threads = False, args.threads

    plain_model = ExamplesVAE()
    plain_opt = torch.optim.Adam(plain_model.parameters(), lr=1e-3, fused=True)
    examples_model = ExamplesVAE()
    examples_opt = torch.optim.Adam(examples_model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=128, shuffle=True)
    generator = torch.Generator().manual_seed(0)

    rates: dict[str, list[float]] = {"vaekit": [], "plain": [], "examples": []}
    vaekit_epoch(config, bundle)  # warm-up: first-call allocations and kernel selection
    plain_epoch(plain_model, plain_opt, x, 128, generator)
    for repeat in range(args.repeats):
        config.train.seed = repeat
        rates["vaekit"].append(vaekit_epoch(config, bundle))
        rates["plain"].append(plain_epoch(plain_model, plain_opt, x, 128, generator))
        rates["examples"].append(examples_epoch(examples_model, examples_opt, loader, x.shape[0]))
        print(f"repeat {repeat + 1}: " + "  ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()), flush=True)

    median = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "threads": args.threads,
        "repeats": args.repeats,
        "median_samples_per_s": {k: round(v) for k, v in median.items()},
        "vaekit_over_plain": round(median["vaekit"] / median["plain"], 3),
        "vaekit_over_examples": round(median["vaekit"] / median["examples"], 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
