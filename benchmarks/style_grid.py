"""Style transfer across classes with a conditional VAE: does the decoder read the label at every latent size?

A style grid encodes R test images with their own labels and decodes each code with all 10 labels; the fixed
classifier of `vaekit.metrics.sample_quality` labels every cell, and the cell accuracy is the share it labels as
the cell's column class (`vaekit.metrics.style_transfer`). Without help, a large code carries the class itself
and the decoder ignores the label. The label adversary (`[model.kind] label_adversary = w`,
`vaekit.models.label_adversary`) trains a classifier of the label from z against the encoder.

Two stages, kept apart so that nothing reported is chosen on the data it is reported on:
  --stage tune    latent 16, the adversary weights of --weights; style images from the VALIDATION split
  --stage report  latents --latents, no adversary and the weight chosen in tuning (--weight); style images from
                  the TEST split; plus the class-sampling accuracy of `sample_quality` (10,000 samples)

    VAEKIT_DATA=/work/shared/data python benchmarks/style_grid.py --stage tune --runs /tmp/style
    VAEKIT_DATA=/work/shared/data python benchmarks/style_grid.py --stage report --weight W --runs /tmp/style

Same network and budget as benchmarks/conditional_mnist.py (MLP 784-512-256-D, Bernoulli, Adam 1e-3, batch
128, 10 epochs, seed 0, normal prior unless --prior). Prints a markdown table; --json writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from conditional_mnist import analogies, config

import vaekit
from vaekit.commands.outputs import save_classifier
from vaekit.metrics.sample_quality import load_classifier, sample_quality, train_classifier
from vaekit.metrics.style_transfer import style_grid_accuracy


def classifier_for(bundle, runs: Path):
    """The fixed judge: trained once on the training images, then loaded."""
    path = runs / f"{bundle.name}-classifier.safetensors"
    if path.is_file():
        return load_classifier(path)
    classifier = train_classifier(bundle, progress=False)
    save_classifier(classifier, path)
    return classifier


def valid_neg_elbo(out: Path) -> float:
    """The last epoch's validation -ELBO of a run folder, in nats."""
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["valid_loss"]


def run(bundle, latent: int, weight: float, epochs: int, prior: str, runs: Path, seed: int):
    """A conditional run (trained, or loaded when its folder holds one), its training seconds and folder."""
    out = runs / f"{bundle.name}-z{latent}-adv{weight:g}-{prior}-s{seed}"
    if (out / "model.safetensors").is_file():
        return vaekit.load(out), None, out
    c = config(bundle.name, True, epochs, latent, prior)
    c.train.seed = seed
    if weight > 0:
        c.model.kind = {"name": "vae", "label_adversary": weight}
    started = time.perf_counter()
    result = vaekit.fit(c, out, data=bundle)
    return result.model, round(time.perf_counter() - started, 1), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["tune", "report"], required=True)
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.3, 1.0, 3.0],
                        help="tune: adversary weights tried at latent 16")
    parser.add_argument("--weight", type=float, help="report: the weight the tuning chose")
    parser.add_argument("--latents", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--prior", default="normal", choices=["normal", "vamp"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--styles", type=int, default=1000, help="style images per grid")
    parser.add_argument("-n", type=int, default=10_000, help="report: samples for the class-sampling accuracy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", required=True, help="folder for runs and the classifier (reused when present)")
    parser.add_argument("--json")
    parser.add_argument("--figures", help="report: write the latent-16 analogy grids (with and without the adversary) "
                                          "here")
    args = parser.parse_args()
    if args.stage == "report" and args.weight is None:
        parser.error("--stage report needs --weight (the weight the tuning stage chose)")
    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    bundle = vaekit.load_data(args.data)
    classifier = classifier_for(bundle, runs)
    split = bundle.split("valid" if args.stage == "tune" else "test")
    if args.stage == "tune":
        grid = [(16, w) for w in args.weights]
    else:
        grid = [(d, w) for d in args.latents for w in sorted({0.0, args.weight})]
    rows = []
    for latent, weight in grid:
        model, seconds, out = run(bundle, latent, weight, args.epochs, args.prior, runs, args.seed)
        styles = style_grid_accuracy(model, classifier, split.x, split.y, n_styles=args.styles, seed=0)
        row = {"latent": latent, "weight": weight, "split": "valid" if args.stage == "tune" else "test",
               "train_seconds": seconds, "valid_neg_elbo": round(valid_neg_elbo(out), 2), **styles.to_dict()}
        if args.stage == "report":
            quality = sample_quality(model, bundle, classifier, n=args.n, seed=0)
            row["class_sampling_accuracy"] = quality.conditional_accuracy
            row["frechet_distance"] = quality.frechet_distance
        if args.figures and args.stage == "report" and latent == 16:
            row["figure"] = str(analogies(model, bundle, Path(args.figures) / f"style16_adversary{weight:g}.png",
                                      f"{bundle.name}, latent 16, label adversary weight {weight:g}: "
                                      "each row's style drawn in every class"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| latent | adversary weight | style images | cell accuracy | transfer (c' != c) | class-sampling accuracy "
          "| valid -ELBO | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        sampling = r.get("class_sampling_accuracy")
        print(f"| {r['latent']} | {r['weight']:g} | {r['split']} | {r['cell_accuracy']:.4f} | "
              f"{r['transfer_accuracy']:.4f} | {'-' if sampling is None else f'{sampling:.4f}'} | {r['valid_neg_elbo']:.2f} | "
              f"{r['train_seconds'] if r['train_seconds'] is not None else 'reused'} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
