"""torch.compile: vaekit's compiled training step against its eager one, beside a hand-written loop of the same
model (eager and compiled), and the share of the machine's matmul FLOP/s that training reaches.

The model is pytorch/examples' VAE (784-400-20 MLP, Bernoulli likelihood, Adam 1e-3) on statically binarized
MNIST (50,000 training images). Each round trains one epoch with each of the four loops, interleaved, and times a
1024 x 1024 float32 matmul (best of 20) in between: the peak that the FLOP share is quoted against. Compilation
happens in a warm-up epoch that is not timed (its duration is reported). vaekit's eager and compiled loops start
from the same seed; the report gives the largest relative difference of their warm-up epoch's losses.

    VAEKIT_DATA=../shared/data python benchmarks/compile_speed.py --threads 2 --rounds 3 --batch-sizes 128 1024

With `--device cuda` the same comparison runs on a GPU (data moved there once; the matmul peak is the GPU's):
the "vaekit eager / hand eager" ratio is then the GPU claim (vaekit within 10% of a hand-written GPU loop).

FLOP per training example: 3 x the forward pass's 2 * sum(fan_in * fan_out) of the linear layers (the backward
pass costs about twice the forward one); elementwise work is not counted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from report_json import emit  # (benchmarks/report_json.py, beside this script)
from torch import nn
from torch.nn import functional as F

import vaekit
from vaekit.training.train import _train_epoch, setup

LAYERS = [(784, 400), (400, 40), (20, 400), (400, 784)]  # (the encoder's 400 -> 2 x 20 is one 400 x 40 layer)
FORWARD_FLOP = sum(2 * a * b for a, b in LAYERS)
TRAIN_FLOP = 3 * FORWARD_FLOP


class ExamplesVAE(nn.Module):
    """pytorch/examples vae/main.py's model."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def examples_loss(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    logits, mu, logvar = model(xb)
    bce = F.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / xb.shape[0]


class HandLoop:
    """Pre-shuffled tensor slicing, fused Adam, no per-batch host sync; `compiled` compiles the loss function."""

    def __init__(self, x: torch.Tensor, batch_size: int, compiled: bool) -> None:
        torch.manual_seed(0)
        self.x, self.batch_size = x, batch_size
        self.model = ExamplesVAE().to(x.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=True)
        self.loss = torch.compile(examples_loss) if compiled else examples_loss
        self.generator = torch.Generator().manual_seed(0)

    def epoch(self) -> float:
        start = time.perf_counter()
        order = torch.randperm(self.x.shape[0], generator=self.generator).to(self.x.device)
        for i in range(0, self.x.shape[0], self.batch_size):
            loss = self.loss(self.model, self.x[order[i : i + self.batch_size]])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        float(loss)
        return self.x.shape[0] / (time.perf_counter() - start)


class VaekitLoop:
    """vaekit's own loop (`vaekit.training.train._train_epoch`), eager or with train.compile."""

    def __init__(self, bundle, batch_size: int, compiled: bool, device: str = "cpu") -> None:
        config = vaekit.build_run_config(None, [
            "data.name=binarized-mnist", "model.latent_dim=20", "model.network=mlp", "model.network.hidden=[400]",
            "model.likelihood=bernoulli", f"train.batch_size={batch_size}", "train.progress=false",
            f"train.compile={'true' if compiled else 'false'}", "train.epochs=1000", f"train.device={device}"])
        self.run = setup(config, data=bundle, validate=False)
        self.epochs = 0
        self.terms: dict = {}

    def epoch(self) -> float:
        from tqdm import tqdm

        start = time.perf_counter()
        terms, step = _train_epoch(self.run, self.epochs, tqdm(disable=True))  # (ends reading the terms: synced)
        self.run.state["step"] = step
        self.epochs += 1
        self.terms = self.terms or terms  # the first (warm-up) epoch's terms: compared eager vs compiled
        return len(self.run.train) / (time.perf_counter() - start)


def matmul_flops(device: torch.device, size: int = 1024, repeats: int = 20) -> float:
    """Best-of-`repeats` FLOP/s of a size x size float32 matmul (on a GPU: 4096, timed to completion)."""
    size = 4096 if device.type == "cuda" else size
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bundle = vaekit.load_data("binarized-mnist")
    x = bundle.split("train").x.reshape(-1, 784).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    report = {"machine": name, "device": args.device, "threads": args.threads,
              "torch": torch.__version__, "train_flop_per_example": TRAIN_FLOP, "batch_sizes": {}}
    for batch_size in args.batch_sizes:
        loops = {"vaekit eager": VaekitLoop(bundle, batch_size, False, args.device),
                 "vaekit compiled": VaekitLoop(bundle, batch_size, True, args.device),
                 "hand eager": HandLoop(x, batch_size, False), "hand compiled": HandLoop(x, batch_size, True)}
        warmup = {}
        for name, loop in loops.items():  # compiles happen here, untimed
            start = time.perf_counter()
            loop.epoch()
            warmup[name] = round(time.perf_counter() - start, 2)
        rates: dict[str, list[float]] = {name: [] for name in loops}
        peaks = []
        for round_ in range(args.rounds):
            peaks.append(matmul_flops(device))
            for name, loop in loops.items():
                rates[name].append(loop.epoch())
            print(f"batch {batch_size} round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()),
                  flush=True)
        peak = statistics.median(peaks)
        median = {name: statistics.median(v) for name, v in rates.items()}
        eager, compiled = loops["vaekit eager"].terms, loops["vaekit compiled"].terms
        report["batch_sizes"][batch_size] = {
            "samples_per_s": {k: round(v, 1) for k, v in median.items()},
            "vaekit compiled / vaekit eager": round(median["vaekit compiled"] / median["vaekit eager"], 3),
            "hand compiled / hand eager": round(median["hand compiled"] / median["hand eager"], 3),
            "vaekit eager / hand eager": round(median["vaekit eager"] / median["hand eager"], 3),
            "matmul_peak_gflops": round(peak / 1e9, 2),
            "share_of_matmul_peak": {k: round(v * TRAIN_FLOP / peak, 4) for k, v in median.items()},
            "first_epoch_losses": {"eager": eager, "compiled": compiled},
            "max_relative_loss_difference": max(abs(eager[k] - compiled[k]) / abs(eager[k]) for k in eager),
            "warmup_epoch_seconds": warmup,
        }
    emit(report, args.out)


if __name__ == "__main__":
    main()
