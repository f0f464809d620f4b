"""Priors and likelihoods against two VAE failure modes, on MNIST.

1. `priors`: multi-modality. The same MLP VAE (configs/binarized_mnist.toml: gated [300, 300], 40 latent dimensions,
   batch 100, lr 5e-4) on statically binarized MNIST with the standard normal prior, the VampPrior (K = 500
   pseudo-inputs; Tomczak & Welling 2018) and a learnable mixture of 10 Gaussians, each for the same number of
   epochs; test NLL by importance sampling (IWAE bound, k samples) on the test set. Published, for context:
   VampPrior 85.57 nats, standard prior 88.56 nats (Tomczak & Welling 2018, one stochastic layer, far longer
   training and k = 5000).
2. `blur`: blurry reconstructions. A small MLP VAE ([300, 300], 20 latent dimensions) on MNIST grey levels (a
   training subset) with the bernoulli, gaussian (fixed sigma 0.1), gaussian-learned and discretized-logistic
   likelihoods; the sharpness ratio (mean gradient magnitude of reconstructions / of the data) on test images, of
   the likelihood's mean and, for the discretized logistic, also of its mode; and a figure of the reconstructions.

    VAEKIT_DATA=../shared/data python benchmarks/priors_mnist.py priors --epochs 20 --warmup-epochs 5 \
        --iw-samples 1000            # ~11 min of training + ~11 min of full-test-set NLL on a shared 2-core CPU
    VAEKIT_DATA=../shared/data python benchmarks/priors_mnist.py blur --epochs 8 --train-limit 10000 \
        --iw-samples 100 --test-limit 1000
Writes a run folder per model and results.json under --out, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

# On a shared machine, OpenMP threads that spin while waiting for a descheduled sibling make 2 threads 10-20x
# slower than 1; passive waiting avoids that. It must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import vaekit  # noqa: E402
from vaekit.evaluate import importance_sampled_nll, sharpness  # noqa: E402
from vaekit.figures.plots import save_image_grid  # noqa: E402
from vaekit.training.train import load_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = {"normal": 88.56, "vamp": 85.57}  # Tomczak & Welling 2018, Table 1 (VAE, one stochastic layer)


def _config(overrides: list[str], file: Path | None = None) -> vaekit.RunConfig:
    return vaekit.build_run_config(file, overrides)


def _train(config: vaekit.RunConfig, out: Path):
    """Trains into `out` (the best validation weights are kept); returns the fit result, the data and seconds."""
    data = load_bundle(config)
    started = time.perf_counter()
    result = vaekit.fit(config, out, data=data)
    return result, data, time.perf_counter() - started


def _load(out: Path):
    """An existing run folder as a fit result (best weights, its metrics), its data and no training time."""
    run = vaekit.load_run(out)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return vaekit.FitResult(run.model, run.config, history, out), load_bundle(run.config), None


def _test_images(data, test_limit: int | None) -> torch.Tensor:
    x = data.split("test").x
    if test_limit is not None and test_limit < len(x):
        # A fixed random subset: the binarized-MNIST test split is sorted by label, so its head is not a sample.
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:test_limit]]
    return x


def _summary(result, train_s: float) -> dict:
    last = result.history[-1]
    return {"epochs": last["epoch"], "train_s": None if train_s is None else round(train_s),
            "s_per_epoch": round(sum(r["seconds"] for r in result.history) / len(result.history), 2),
            "final_valid_neg_elbo": last["valid_loss"], "final_active_units": last["active_units"]}


@torch.no_grad()
def _per_image_nll(model, x: torch.Tensor, k: int, batch_size: int = 100) -> torch.Tensor:
    """-log p(x) per image (IWAE bound with k samples), (N,)."""
    torch.manual_seed(0)
    batches = range(0, x.shape[0], batch_size)
    return torch.cat([importance_sampled_nll(model, x[i : i + batch_size], k=k)
                      for i in tqdm(batches, desc=f"NLL (k={k})", unit="batch")])


def run_priors(args) -> dict:
    results, nlls = {}, {}
    for prior in args.priors:
        overrides = [f"train.epochs={args.epochs}", f"objective.warmup_epochs={args.warmup_epochs}",
                     "train.patience=null", "train.time_limit=null", f"train.threads={args.threads}",
                     f"model.prior={prior}", "train.progress=false", f"train.seed={args.seed}"]
        config = _config(overrides + args.overrides, ROOT / "configs" / "binarized_mnist.toml")
        print(f"== prior {prior}: {args.epochs} epochs", flush=True)
        if args.skip_train:
            result, data, train_s = _load(args.out / f"prior-{prior}")
        else:
            result, data, train_s = _train(config, args.out / f"prior-{prior}")
        x = _test_images(data, args.test_limit)
        started = time.perf_counter()
        nlls[prior] = _per_image_nll(result.model, x, args.iw_samples)
        ev = vaekit.evaluate(result.model, x, iw_samples=1)  # ELBO, active units (its k=1 "NLL" is unused)
        results[prior] = {**_summary(result, train_s), "eval_s": round(time.perf_counter() - started),
                          "n_test": x.shape[0], "iw_samples": args.iw_samples, "test_nll": float(nlls[prior].mean()),
                          "test_neg_elbo": ev.neg_elbo, "test_kl": ev.kl, "test_active_units": ev.active_units}
        torch.save(nlls[prior], args.out / f"prior-{prior}" / f"test_nll_k{args.iw_samples}_n{x.shape[0]}.pt")
        print(json.dumps(results[prior]), flush=True)
    print(f"\n| prior | epochs | test NLL (k={args.iw_samples}) | vs normal (paired, +- s.e.) | test -ELBO | KL | "
          f"active units | s/epoch | published NLL |")
    print("|---|---|---|---|---|---|---|---|---|")
    for prior, r in results.items():
        diff = ""
        if "normal" in nlls and prior != "normal":
            d = nlls[prior] - nlls["normal"]
            diff = f"{float(d.mean()):+.2f} +- {float(d.std() / math.sqrt(len(d))):.2f}"
            r["nll_minus_normal"], r["nll_minus_normal_se"] = float(d.mean()), float(d.std() / math.sqrt(len(d)))
        published = PUBLISHED.get(prior, "")
        print(f"| {prior} | {r['epochs']} | {r['test_nll']:.2f} | {diff} | {r['test_neg_elbo']:.2f} | "
              f"{r['test_kl']:.2f} | {r['test_active_units']}/40 | {r['s_per_epoch']} | {published} |")
    return results


def run_blur(args) -> dict:
    results, recons = {}, {}
    x_show = None
    for likelihood in ("bernoulli", "gaussian", "gaussian-learned", "discretized-logistic"):
        overrides = ["data.name=\"mnist\"", f"data.limit={args.train_limit}", "model.network.hidden=[300, 300]",
                     "model.latent_dim=20", f"model.likelihood=\"{likelihood}\"", f"train.epochs={args.epochs}",
                     "train.batch_size=100", f"train.threads={args.threads}", "train.progress=false",
                     f"train.seed={args.seed}"]
        config = _config(overrides + args.overrides)
        print(f"== likelihood {likelihood}: {args.epochs} epochs on {args.train_limit} training images", flush=True)
        result, data, train_s = _train(config, args.out / f"lik-{likelihood}")
        model = result.model
        x_test = _test_images(data, args.test_limit)
        started = time.perf_counter()
        ev = vaekit.evaluate(model, x_test, iw_samples=args.iw_samples, batch_size=100, progress=True)
        results[likelihood] = {**_summary(result, train_s), "eval_s": round(time.perf_counter() - started),
                               "test": ev.to_dict()}
        x_show = data.split("test").x[:12]
        recons[likelihood] = model.reconstruct(x_show)
        if likelihood == "discretized-logistic":
            # The mixture mean averages the modes of an uncertain pixel; the mode picks one.
            with torch.no_grad():
                mode = model.decode(model.encode(x_test).mean).mode
            results[likelihood]["mode_sharpness_ratio"] = float(sharpness(mode).mean() / sharpness(x_test).mean())
            recons[f"{likelihood} (mode)"] = model.decode(model.encode(x_show).mean).mode
        print(json.dumps({k: v for k, v in results[likelihood].items() if k != "test"}), flush=True)
    rows = [x_show] + [recons[k] for k in recons]
    labels = ["data"] + list(recons)
    save_image_grid(torch.cat(rows), args.out / "blur_reconstructions.png", ncol=len(x_show),
                    title="MNIST test images and reconstructions (the likelihood mean; last row: its mode)",
                    row_labels=labels)
    print("\n| likelihood | epochs | sharpness recon | sharpness data | ratio | test -ELBO (nats) | bits/dim |")
    print("|---|---|---|---|---|---|---|")
    for likelihood, r in results.items():
        t = r["test"]
        print(f"| {likelihood} | {r['epochs']} | {t['sharpness_recon']:.4f} | {t['sharpness_data']:.4f} | "
              f"{t['sharpness_ratio']:.3f} | {t['neg_elbo']:.1f} | {t['bits_per_dim']:.3f} |")
        if "mode_sharpness_ratio" in r:
            print(f"| {likelihood} (mode) | {r['epochs']} | | | {r['mode_sharpness_ratio']:.3f} | | |")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["priors", "blur"])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-priors"), help="folder for the runs")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--warmup-epochs", type=float, default=10, help="KL warm-up (priors part)")
    parser.add_argument("--priors", nargs="+", default=["normal", "vamp", "mog"])
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--test-limit", type=int, help="evaluate on a fixed random subset of N test images "
                        "(default: all)")
    parser.add_argument("--train-limit", type=int, default=10000, help="blur part: images per split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true", help="priors part: evaluate the runs already in --out")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    results = run_priors(args) if args.part == "priors" else run_blur(args)
    name = f"results-{args.part}{'-eval' if args.skip_train else ''}.json"
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}
    (args.out / name).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
