"""One-class image anomaly benchmark: which VAE score measures anomaly rather than image complexity (issue 14).

For each class c of a data set in turn: the detectors are fitted on --train (1,000) training images of class c
and score --test (2,000) test images of all classes (the same seeded test images for every class); the images
not of class c are the anomalies; ROC-AUC per class, mean over classes. In the same run, on the same images:
IsolationForest (PyOD defaults, on the raw pixels), PCA reconstruction error (raw pixels, --pca components) and
LOF (scikit-learn, novelty mode, 20 neighbours), and the VAE candidates below.

VAE candidates (`VAEAnomalyDetector` image defaults otherwise: MLP 256-128, latent 16, about 2,000 steps):
    bernoulli|nll          the previous default: importance-sampled NLL, Bernoulli, grey levels as soft targets
    bernoulli|nll-entropy  the same NLL minus the targets' own entropy sum_i H(x_i) (= a KL to the target)
    bernoulli|recon        squared reconstruction error of the same model
    bernoulli|nll-ratio    NLL minus the NLL of a background model (independent Bernoulli pixels with the
                           training images' mean), a likelihood ratio (in the spirit of Ren et al. 2019)
    gaussian-learned|nll   NLL under a Gaussian likelihood with a learned scale per pixel
    gaussian-learned|recon its reconstruction error

Protocol: the image default is the candidate with the best mean on Fashion-MNIST classes 0-4 (`--part choose`),
reported on Fashion-MNIST classes 5-9, MNIST, shapes-32 (the three shape types as classes) and a generated grey-level
set (`--part report`), next to the previous default and the runner-up.

    python benchmarks/anomaly_images.py --part choose --json benchmarks/results/anomaly_images_choose.json
    python benchmarks/anomaly_images.py --part report --candidates "gaussian-learned:nll;bernoulli:nll+nll-entropy" \
        --json benchmarks/results/anomaly_images_report.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_json import emit  # noqa: E402

from vaekit.apps import VAEAnomalyDetector  # noqa: E402
from vaekit.apps.anomaly import anomaly_scores, bernoulli_entropy  # noqa: E402

CANDIDATES = {"bernoulli": ["nll", "nll-entropy", "recon", "nll-ratio"], "gaussian-learned": ["nll", "recon"]}
CHOOSE = {"fashion-mnist": [0, 1, 2, 3, 4]}
REPORT = {"fashion-mnist": [5, 6, 7, 8, 9], "mnist": list(range(10)), "shapes-32": [0, 1, 2], "grey-shapes": [0, 1, 2, 3, 4]}


def grey_shapes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A generated grey-level set, 28x28 in [0, 1], five classes of n // 5 images each (labels 0-4):
    0 a blurred disc, 1 a sinusoidal grating, 2 a filled rectangle, 3 a ring, 4 a cross; each with a random
    grey level (0.3-1), size, position, blur and a dim noisy background, so grey levels are everywhere."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    images, labels = [], []
    for i in range(n):
        c = i % 5
        cx, cy = rng.uniform(9, 19, 2)
        size = rng.uniform(4, 8)
        level = rng.uniform(0.3, 1.0)
        r = np.hypot(xx - cx, yy - cy)
        if c == 0:
            img = 1 / (1 + np.exp((r - size) / rng.uniform(0.5, 2.0)))
        elif c == 1:
            angle, freq = rng.uniform(0, np.pi), rng.uniform(0.3, 0.8)
            img = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 2 * np.pi))
            img *= np.exp(-(r / (2 * size)) ** 2)
        elif c == 2:
            w, h = rng.uniform(3, 8, 2)
            img = ((np.abs(xx - cx) < w) & (np.abs(yy - cy) < h)).astype(float)
        elif c == 3:
            img = np.exp(-((r - size) / rng.uniform(0.8, 1.8)) ** 2)
        else:
            t = rng.uniform(1, 2.5)
            img = (((np.abs(xx - cx) < t) & (np.abs(yy - cy) < size)) | ((np.abs(yy - cy) < t)
                                                                          & (np.abs(xx - cx) < size))).astype(float)
        img = level * img + rng.uniform(0.0, 0.15) * rng.random((28, 28))
        images.append(np.clip(img, 0, 1))
        labels.append(c)
    return np.stack(images)[:, None].astype(np.float32), np.asarray(labels)


def load(name: str, root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images (N, 1, H, W) in [0, 1], train labels, test images, test labels)."""
    if name == "grey-shapes":
        x, y = grey_shapes(10000, seed=1)
        xt, yt = grey_shapes(4000, seed=2)
        return x, y, xt, yt
    from vaekit.data import load_data

    if name == "shapes-32":
        bundle = load_data(name)
        factor = lambda split: split.y[:, 0].numpy() if split.y.ndim == 2 else split.y.numpy()  # noqa: E731
        train, test = bundle.split("train"), bundle.split("test")
        return train.x.numpy(), factor(train), test.x.numpy(), factor(test)
    bundle = load_data(name, root / name)
    train, test = bundle.split("train"), bundle.split("test")
    return train.x.numpy(), train.y.numpy(), test.x.numpy(), test.y.numpy()


def run(name: str, classes: list[int], root: Path, n_train: int, n_test: int, pca_components: int, seed: int,
        candidates: dict) -> dict:
    x_train, y_train, x_test_all, y_test_all = load(name, root)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_test_all), min(n_test, len(x_test_all)), replace=False)
    x_test, y_test = x_test_all[pick].astype(np.float32), y_test_all[pick]
    flat_test = x_test.reshape(len(x_test), -1).astype(np.float64)
    out: dict = {"classes": {}, "seconds": {}, "n_test": int(len(x_test)), "shape": list(x_test.shape[1:])}
    for c in classes:
        normal = np.flatnonzero(y_train == c)
        x_fit = x_train[rng.choice(normal, min(n_train, len(normal)), replace=False)].astype(np.float32)
        flat_fit = x_fit.reshape(len(x_fit), -1).astype(np.float64)
        labels = (y_test != c).astype(int)
        row, seconds = {}, {}

        def timed(key, fn):
            start = time.perf_counter()
            row[key] = float(roc_auc_score(labels, fn()))
            seconds[key] = time.perf_counter() - start

        from pyod.models.iforest import IForest

        timed("IForest (raw pixels)", lambda: IForest(random_state=seed).fit(flat_fit).decision_function(flat_test))

        def pca():
            model = PCA(n_components=pca_components, random_state=seed).fit(flat_fit)
            return ((model.inverse_transform(model.transform(flat_test)) - flat_test) ** 2).sum(1)

        timed(f"PCA recon ({pca_components})", pca)
        timed("LOF (raw pixels)", lambda: -LocalOutlierFactor(n_neighbors=20, novelty=True).fit(flat_fit)
              .score_samples(flat_test))
        for likelihood, scores in candidates.items():
            start = time.perf_counter()
            det = VAEAnomalyDetector(likelihood=likelihood, score="nll", random_state=seed).fit(x_fit)
            xt = torch.from_numpy(x_test)
            cache = {}
            for score in scores:
                t0 = time.perf_counter()
                if score == "nll-ratio":
                    nll = cache.get("nll")
                    if nll is None:
                        nll = anomaly_scores(det.model_, xt, "nll", det.k, seed=seed)
                    p = np.clip(flat_fit.mean(0), 1e-3, 1 - 1e-3)
                    background = -(flat_test * np.log(p) + (1 - flat_test) * np.log(1 - p)).sum(1)
                    s = nll - background
                elif score == "nll-entropy" and "nll" in cache:  # the same importance samples, minus sum_i H(x_i)
                    s = cache["nll"] - bernoulli_entropy(xt).numpy()
                else:
                    s = anomaly_scores(det.model_, xt, score, det.k if score != "recon" else 1, seed=seed)
                    cache[score] = s
                key = f"VAE {likelihood}|{score}"
                row[key] = float(roc_auc_score(labels, s))
                seconds[key] = time.perf_counter() - t0
            seconds[f"VAE {likelihood} training"] = time.perf_counter() - start - sum(
                seconds[f"VAE {likelihood}|{s}"] for s in scores)
        out["classes"][str(c)] = row
        for k, v in seconds.items():
            out["seconds"][k] = out["seconds"].get(k, 0.0) + v
        print(f"{name} class {c}: " + "  ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
    methods = list(next(iter(out["classes"].values())))
    out["mean"] = {m: float(np.mean([r[m] for r in out["classes"].values()])) for m in methods}
    return out


def markdown(results: dict) -> str:
    lines = []
    for name, res in results.items():
        methods = list(res["mean"])
        header = [m.replace("|", ", ") for m in methods]  # a "|" would split a markdown cell
        lines += [f"\n{name} (test {res['n_test']} images)\n", "| class | " + " | ".join(header) + " |",
                  "|---:|" + "---:|" * len(methods)]
        for c, row in res["classes"].items():
            best = max(row.values())
            lines.append(f"| {c} | " + " | ".join(f"**{row[m]:.3f}**" if row[m] == best else f"{row[m]:.3f}"
                                                  for m in methods) + " |")
        best = max(res["mean"].values())
        lines.append("| **mean** | " + " | ".join(f"**{v:.3f}**" if v == best else f"{v:.3f}"
                                                for v in res["mean"].values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("VAEKIT_DATA") or str(Path(__file__).resolve().parents[2]
                                                                              / "shared" / "data"))
    parser.add_argument("--part", choices=["choose", "report"], default="choose")
    parser.add_argument("--sets", help="comma-separated subset of the part's data sets")
    parser.add_argument("--classes", help="comma-separated classes (default: the part's)")
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--pca", type=int, default=16, help="PCA components (the VAE's latent size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", help="likelihood:score+score;... (default: all candidates)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plan = CHOOSE if args.part == "choose" else REPORT
    if args.sets:
        plan = {s: plan[s] for s in args.sets.split(",")}
    if args.classes:
        plan = {s: [int(c) for c in args.classes.split(",")] for s in plan}
    candidates = CANDIDATES
    if args.candidates:
        candidates = {part.split(":")[0]: part.split(":")[1].split("+") for part in args.candidates.split(";")}
    results = {name: run(name, classes, Path(args.data), args.train, args.test, args.pca, args.seed, candidates)
               for name, classes in plan.items()}
    print(markdown(results))
    emit({"part": args.part, "settings": vars(args), "results": results}, args.json)


if __name__ == "__main__":
    main()
