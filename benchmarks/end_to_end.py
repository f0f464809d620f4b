"""End to end: `vaekit train` against a hand-written PyTorch script, as whole processes (start-up, data loading,
training, validation, and for vaekit its diagnostics, checkpoints and figures), interleaved, medians of N rounds.

Both train the pytorch/examples architecture (784-400-20 MLP, Bernoulli likelihood, batch 128, Adam 1e-3) for 5
epochs on statically binarized MNIST (50,000 training images), with a validation pass each epoch:

    VAEKIT_DATA=../shared/data python benchmarks/end_to_end.py --rounds 3

Prints each process's wall time and the ratio plain / vaekit (1.0 = as fast as the plain script).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EPOCHS = 5

# The hand-written script: tensor slicing, fused Adam, a validation ELBO each epoch, nothing else.
PLAIN = r"""
import sys, numpy as np, torch
from torch import nn
from torch.nn import functional as F
data = np.load(sys.argv[1])
x, v = torch.from_numpy(data["train"]).float(), torch.from_numpy(data["valid"]).float()
class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)
    def forward(self, x):
        h = F.relu(self.fc1(x)); mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        logits = self.fc4(F.relu(self.fc3(z)))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return (rec + kl).mean()
torch.manual_seed(0)
model = VAE(); opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
for epoch in range(int(sys.argv[2])):
    model.train()
    for idx in torch.randperm(len(x)).split(128):
        loss = model(x[idx]); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    model.eval()
    with torch.no_grad():
        valid = sum(float(model(b)) * len(b) for b in v.split(1024)) / len(v)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(os.environ.get("VAEKIT_DATA", "../shared/data"))
    npz = root / "binarized-mnist" / "binarized_mnist_static.npz"
    if not npz.is_file():
        raise SystemExit(f"needs {npz} (set VAEKIT_DATA)")
    times: dict[str, list[float]] = {"vaekit": [], "plain": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vaekit", "train", "--data", "binarized-mnist", "--epochs",
                            str(EPOCHS), "--set", "model.network.hidden=[400]", "--set", "model.latent_dim=20",
                            "--set", "model.likelihood=bernoulli", "--set", "train.batch_size=128",
                            "--out", str(Path(tmp) / "run"), "--no-progress"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times["vaekit"].append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", PLAIN, str(npz), str(EPOCHS)], check=True)
        times["plain"].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:<7} median {statistics.median(values):6.1f} s   runs {', '.join(f'{v:.1f}' for v in values)}")
    print(f"plain / vaekit: {statistics.median(times['plain']) / statistics.median(times['vaekit']):.3f}x")


if __name__ == "__main__":
    main()
