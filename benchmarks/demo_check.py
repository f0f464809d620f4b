"""Quality check of the README's demo: is the VAE that `configs/digits.toml` trains any good?

Trains the shipped demo config on scikit-learn's 8x8 digits (vaekit's own train/valid/test split), times the
training, then asks a fixed judge whether the reconstructions still look like the right digit:

    judge      a logistic regression fitted on the *training* originals (flattened pixels) only
    accuracy   the judge's accuracy on the reconstructions (decoded posterior means) of the test split, next to
               its accuracy on the test originals; the gap is originals - reconstructions, in points
    target     reconstruction accuracy >= 93% on the test split (within about 3 points of the originals, ~96%)
    samples    the share of 1,000 prior samples (decoded means, seed 0) that the judge labels with probability >= 0.9,
               next to the same share of the test originals (what `samples.png` shows a new user); target >= 50%

It also prints the valid-split numbers (the split the demo's settings were chosen on), the KL term of the ELBO
and the active units on the test split (vaekit.evaluate's definition: Cov_x(E_q[z_d]) > 0.01).

    python benchmarks/demo_check.py                              # configs/digits.toml
    python benchmarks/demo_check.py --no-config                  # library defaults, as `vaekit train --data digits`
    python benchmarks/demo_check.py --set train.threads=2        # any dotted override on top

Exit status 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
from sklearn.linear_model import LogisticRegression

import vaekit

TARGET = 0.93
SAMPLE_TARGET = 0.5
CONFIDENT = 0.9  # judge probability that counts a sample as a recognisable digit
N_SAMPLES = 1000


def confident_share(judge, x) -> float:
    """The share of the rows of `x` whose most probable class the judge gives probability >= CONFIDENT."""
    return float((judge.predict_proba(flat(x)).max(axis=1) >= CONFIDENT).mean())


def flat(x: torch.Tensor):
    return x.reshape(x.shape[0], -1).numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.toml", help="demo config (default: %(default)s)")
    parser.add_argument("--no-config", action="store_true", help="library defaults on data digits instead")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted config override, repeatable (e.g. train.threads=2)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    path = None if args.no_config else args.config
    base = ["data.name=digits"] if args.no_config else []
    config = vaekit.build_run_config(path, base + args.overrides + ["train.progress=false"])
    data = vaekit.load_data("digits")

    start = time.perf_counter()
    model = vaekit.fit(config).model
    seconds = time.perf_counter() - start
    threads = torch.get_num_threads()

    train = data.split("train")
    judge = LogisticRegression(max_iter=5000).fit(flat(train.x), train.y.numpy())
    print(f"config: {path or 'library defaults, data digits'} {' '.join(args.overrides)}".rstrip())
    print(f"training: {seconds:.1f} s on {threads} threads")
    with torch.no_grad():
        scores = {}
        for name in ("valid", "test"):
            split = data.split(name)
            recon = judge.score(flat(model.reconstruct(split.x)), split.y.numpy())
            orig = judge.score(flat(split.x), split.y.numpy())
            scores[name] = recon
            print(f"{name:5s}: reconstructions {100 * recon:5.1f}%  originals {100 * orig:5.1f}%  "
                  f"gap {100 * (orig - recon):4.1f} points  (n={split.x.shape[0]})")
    test = data.split("test")
    result = vaekit.evaluate(model, test.x, test.y, iw_samples=10)
    print(f"test : KL {result.kl:.2f} nats, active units {result.active_units}/{result.latent_dim}")
    from vaekit.figures.report import draw_samples

    samples = draw_samples(model, N_SAMPLES, seed=0).clamp(0, 1)  # decoded means, as samples.png shows them
    share, reference = confident_share(judge, samples), confident_share(judge, test.x)
    print(f"samples: {100 * share:.1f}% of {N_SAMPLES} judged with p >= {CONFIDENT} (test originals: "
          f"{100 * reference:.1f}%)")
    passed = scores["test"] >= TARGET
    print(f"{'PASS' if passed else 'FAIL'}: test reconstruction accuracy {100 * scores['test']:.1f}% "
          f"{'>=' if passed else '<'} {100 * TARGET:.0f}%")
    samples_passed = share >= SAMPLE_TARGET
    print(f"{'PASS' if samples_passed else 'FAIL'}: confident samples {100 * share:.1f}% "
          f"{'>=' if samples_passed else '<'} {100 * SAMPLE_TARGET:.0f}%")
    return 0 if passed and samples_passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
