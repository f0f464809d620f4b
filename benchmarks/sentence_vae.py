"""Benchmark: the sentence VAE on Penn Treebank beside the plain recurrent language model (the same decoder with z
unused), trained by the same code in the same budget, evaluated in one run on the same test sentences.

    VAEKIT_DATA=../shared/data vaekit train --config configs/ptb.toml --out runs/ptb-vae
    VAEKIT_DATA=../shared/data vaekit train --config configs/ptb_lm.toml --out runs/ptb-lm
    VAEKIT_DATA=../shared/data python benchmarks/sentence_vae.py --vae runs/ptb-vae --lm runs/ptb-lm --k 500

Reported per model (docs/benchmarks.md):
- NLL per sentence in nats: the VAE's by importance sampling (IWAE bound, --k samples, on a seeded random subset of
  --subset test sentences when the whole test set would take too long; the subset is named), the language
  model's exactly (its decoder ignores z, so log p(x|z) = log p(x): one pass), on the whole test set and on the
  same subset; perplexity per word (exp of the total NLL over the words, Bowman et al.'s convention) and per token
  (words and <eos>); KL, active units and the mutual information I(x; z).
- Whether the decoder uses z: BLEU-4 and token accuracy of greedy reconstructions of 1,000 test sentences,
  against greedy decodes of z ~ p(z) (the floor).
- Diversity of 1,000 samples (z ~ p(z), words sampled at temperature 1): distinct-1, distinct-2, exact
  duplicates; also for greedy decoding of z ~ p(z).
- The training budget from each run's metrics: epochs, minutes, sentences per second.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import vaekit
from vaekit.text.generate import interpolate_sentences, sample_sentences, to_text
from vaekit.text.quality import diversity, reconstruction_report
from vaekit.training.train import load_bundle


def budget(run: Path) -> dict:
    """Epochs, minutes and sentences per second of a run's training, from metrics.jsonl."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    seconds = sum(r["seconds"] for r in records)
    best = min(records, key=lambda r: r["valid_loss"])
    return {"epochs": len(records), "minutes": round(seconds / 60, 1),
            "sentences_per_s": round(sum(r["samples_per_s"] for r in records) / len(records), 1),
            "best_epoch": best["epoch"], "best_valid_loss": round(best["valid_loss"], 3),
            "valid_mutual_info_by_epoch": [r.get("valid_mutual_info") for r in records],
            "valid_kl_by_epoch": [round(r["valid_kl"], 3) for r in records]}


def evaluate(model, x: torch.Tensor, k: int) -> dict:
    started = time.perf_counter()
    result = vaekit.evaluate(model, x, iw_samples=k, batch_size=50, progress=True)
    out = {key: value for key, value in result.to_dict().items() if key != "kl_per_dim"}
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", type=Path, required=True)
    parser.add_argument("--lm", type=Path, required=True)
    parser.add_argument("--k", type=int, default=500, help="importance samples for the VAE's NLL (default 500)")
    parser.add_argument("--subset", type=int, default=None,
                        help="evaluate the VAE's IWAE NLL on this many test sentences (seeded); default all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sentence_vae.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    vae, lm = vaekit.load_run(args.vae), vaekit.load_run(args.lm)
    test = load_bundle(vae.config).split("test").x
    n = test.shape[0]
    rows = torch.arange(n) if args.subset is None or args.subset >= n else \
        torch.randperm(n, generator=torch.Generator().manual_seed(0))[: args.subset].sort().values
    report: dict = {"test_sentences": n, "subset": len(rows), "k": args.k, "threads": args.threads,
                    "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every stage, so that a long run that is stopped keeps what it measured
        args.out.write_text(json.dumps(report, indent=2) + "\n")

    for name, run in (("vae", vae), ("lm", lm)):
        report[name] = {"budget": budget(run.path)}
    # The language model: exact NLL (k = 1 is exact when p(x|z) does not depend on z) on all and on the subset.
    report["lm"]["test_all"] = evaluate(lm.model, test, 1)
    report["lm"]["test_subset"] = evaluate(lm.model, test[rows], 1)
    save()
    report["vae"]["reconstruction"] = reconstruction_report(vae.model, test, limit=1000).to_dict()
    for name, run in (("vae", vae), ("lm", lm)):
        report[name]["diversity_sampled"] = diversity(sample_sentences(run.model, 1000, "sample", seed=0)).to_dict()
        report[name]["diversity_greedy"] = diversity(sample_sentences(run.model, 1000, "greedy", seed=0)).to_dict()
    save()
    report["vae"]["test_subset"] = evaluate(vae.model, test[rows], args.k)
    save()
    if len(rows) < n:
        report["vae"]["test_all_k50"] = evaluate(vae.model, test, 50)
    examples = to_text(vae.model, test[:5])
    report["examples"] = {
        "vae_samples": sample_sentences(vae.model, 10, "sample", seed=1),
        "vae_greedy_samples": sample_sentences(vae.model, 10, "greedy", seed=1),
        "lm_samples": sample_sentences(lm.model, 10, "sample", seed=1),
        "reconstructions": list(zip(examples, vae.model.reconstruct(examples))),
        "interpolation": interpolate_sentences(vae.model, examples[0], examples[1], steps=6),
    }
    save()
    for name in ("vae", "lm"):
        part = report[name]["test_subset"]
        print(f"{name}: NLL {part['nll']:.2f} nats on {len(rows)} test sentences (k={part['iw_samples']}), "
              f"ppl/word {part['perplexity_word']:.1f}, KL {part['kl']:.2f}, MI {part['mutual_information']:.2f}, "
              f"active units {part['active_units']}")
    print(f"lm on all {n}: NLL {report['lm']['test_all']['nll']:.2f}, ppl/word "
          f"{report['lm']['test_all']['perplexity_word']:.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
