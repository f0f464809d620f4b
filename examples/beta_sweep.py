"""beta-VAE sweep on procedural shapes: disentanglement metrics and the rate-distortion trade-off against beta.

beta-VAE (Higgins et al. 2017) weighs the KL term by beta: larger beta squeezes the rate (KL, nats the code
carries about x) at the cost of distortion (reconstruction loss), and was proposed to give more disentangled codes.
This script trains one VAE per beta on a `shapes` data set, measures MIG, the beta-VAE and FactorVAE scores, DCI and
SAP (`vaekit.metrics.disentanglement_report`) and the test-set rate and distortion, and plots them.

    python examples/beta_sweep.py --out runs/beta-sweep           # shapes-32, 5 betas x 20 epochs (~8 min)
    python examples/beta_sweep.py --quick --out runs/beta-quick   # shapes-16, 3 betas x 6 epochs (~1 min)

Writes OUT/beta-<b>/ (run folders: `vaekit disentangle OUT/beta-4` works on them), OUT/sweep.json,
OUT/metrics_vs_beta.png and OUT/rate_distortion.png. The budget is far below the papers' (Locatello et al. 2019
train 300,000 steps on 64x64 dSprites): read the numbers as a demonstration of the tools, not as a replication.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import vaekit
from vaekit.metrics import disentanglement_report

FULL = {"data": "shapes-32", "betas": [1.0, 2.0, 4.0, 8.0, 16.0], "epochs": 20, "batch_size": 64, "lr": 1e-3,
        "n_metric": 1000}
QUICK = {"data": "shapes-16", "betas": [1.0, 4.0, 16.0], "epochs": 6, "batch_size": 32, "lr": 2e-3, "n_metric": 200}
METRICS = [("mig", "MIG"), ("beta_vae", "beta-VAE score"), ("factor_vae", "FactorVAE score"),
           ("dci_disentanglement", "DCI disentanglement"), ("sap", "SAP")]


def sweep_config(plan: dict, beta: float, seed: int, threads: int | None) -> vaekit.RunConfig:
    """A small MLP VAE with 10 latent dimensions (as in Locatello et al. 2019) and the given beta."""
    config = vaekit.RunConfig()
    config.data.name = plan["data"]
    config.model.network = "mlp"
    config.model.network.hidden = [256, 128]
    config.model.latent_dim = 10
    config.objective.beta = beta
    config.train.epochs = plan["epochs"]
    config.train.batch_size = plan["batch_size"]
    config.train.lr = plan["lr"]
    config.train.seed = seed
    config.train.threads = threads
    config.train.progress = False
    return config


def run_one(data: vaekit.DataBundle, plan: dict, beta: float, seed: int, threads: int | None, out: Path) -> dict:
    """Train at one beta; the test-set rate and distortion and the five disentanglement scores."""
    started = time.perf_counter()
    result = vaekit.fit(sweep_config(plan, beta, seed, threads), out / f"beta-{beta:g}", data=data)
    train_s = time.perf_counter() - started
    test = data.split("test")
    ev = vaekit.evaluate(result.model, test.x, iw_samples=1)  # ELBO terms per example, in nats
    report = disentanglement_report(result.model, data, n_train=plan["n_metric"], seed=seed)
    return {"beta": beta, "rate_kl": ev.kl, "distortion_recon": ev.recon, "neg_elbo": ev.neg_elbo,
            "active_units": ev.active_units, **report.scores(), "train_seconds": round(train_s, 1),
            "metric_seconds": report.seconds}


def plot_metrics(rows: list[dict], path: Path, title: str) -> Path:
    """Each disentanglement score against beta (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    betas = [r["beta"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for key, label in METRICS:
        ax.plot(betas, [r[key] for r in rows], "o-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(betas, [f"{b:g}" for b in betas])
    ax.set(xlabel="beta (KL weight)", ylabel="score (1 = disentangled)", ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_rate_distortion(rows: list[dict], path: Path, title: str) -> Path:
    """Distortion (reconstruction nats) against rate (KL nats), one point per beta."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate = [r["rate_kl"] for r in rows]
    distortion = [r["distortion_recon"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.6, 4.0), dpi=120)
    ax.plot(rate, distortion, "o-", color="tab:blue", label="test set, one VAE per beta")
    for r in rows:
        ax.annotate(f"beta={r['beta']:g}", (r["rate_kl"], r["distortion_recon"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.margins(0.15)
    ax.set(xlabel="rate: KL(q(z|x) || p(z)) (nats)", ylabel="distortion: -E_q log p(x|z) (nats)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/beta-sweep", help="output folder (must not hold a sweep yet)")
    parser.add_argument("--quick", action="store_true", help="shapes-16, 3 betas, 6 epochs: about a minute")
    parser.add_argument("--betas", type=float, nargs="+", help="override the betas")
    parser.add_argument("--epochs", type=int, help="override the epochs per beta")
    parser.add_argument("--n-metric", type=int, help="training points per metric (standard: 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these small MLPs gain little from more, and on a busy "
                             "machine extra threads slow training down many times); 0 = torch's choice")
    args = parser.parse_args()
    plan = dict(QUICK if args.quick else FULL)
    for key in ("betas", "epochs", "n_metric"):
        if getattr(args, key) is not None:
            plan[key] = getattr(args, key)
    out = Path(args.out)
    if (out / "sweep.json").exists():
        raise SystemExit(f"{out / 'sweep.json'} exists; choose another --out")
    from tqdm.auto import tqdm

    data = vaekit.load_data(plan["data"])
    rows = []
    started = time.perf_counter()
    for beta in tqdm(plan["betas"], desc="beta sweep", unit="beta"):
        rows.append(run_one(data, plan, beta, args.seed, args.threads or None, out))
    total = time.perf_counter() - started
    title = f"{plan['data']}, {plan['epochs']} epochs per beta"
    figures = [plot_metrics(rows, out / "metrics_vs_beta.png", f"Disentanglement vs beta ({title})"),
               plot_rate_distortion(rows, out / "rate_distortion.png", f"Rate-distortion ({title})")]
    (out / "sweep.json").write_text(json.dumps({"plan": plan, "seed": args.seed, "seconds": round(total, 1),
                                                "rows": rows}, indent=2) + "\n")
    header = ["beta", "rate_kl", "distortion_recon", "active_units"] + [k for k, _ in METRICS]
    widths = [max(8, len(h)) for h in header]
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(f"{r[h]:>{w}.3f}" if isinstance(r[h], float) else f"{r[h]:>{w}}"
                        for h, w in zip(header, widths)))
    print(f"total {total:.0f} s; wrote {out / 'sweep.json'}, " + ", ".join(str(f) for f in figures))


if __name__ == "__main__":
    main()
