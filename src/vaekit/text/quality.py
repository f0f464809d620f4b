"""How well a sentence VAE uses its code, and how varied its samples are.

    reconstruction   greedy reconstructions (posterior mean) of test sentences against the inputs: corpus BLEU-4
                     (sacrebleu, on the tokens as they are) and token accuracy (the share of positions, <eos>
                     included, where the reconstruction has the input's token). The same scores for sentences
                     decoded from z ~ p(z), paired with the same inputs, are the floor of a decoder that ignores z.
    diversity        of n sampled sentences: distinct-1 / distinct-2 (distinct unigrams / bigrams over all of
                     them, Li et al. 2016) and the share of exact duplicates (samples equal to an earlier one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .generate import _seeded, decode_codes, sample_sentences, to_text


@dataclass(frozen=True)
class ReconstructionReport:
    """BLEU-4 (0-100) and token accuracy of greedy reconstructions, and of prior decodes (the floor)."""

    n: int
    bleu: float
    token_accuracy: float
    prior_bleu: float
    prior_token_accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(name, value) lines for `vaekit eval`."""
        return [("reconstruction BLEU-4", f"{self.bleu:.2f}  (z ~ p(z) instead: {self.prior_bleu:.2f})"),
                ("reconstruction token accuracy", f"{self.token_accuracy:.3f}  (z ~ p(z) instead: "
                                                  f"{self.prior_token_accuracy:.3f})")]


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU-4 (0-100) of whitespace-tokenised sentences, one reference each (sacrebleu, no re-tokenising)."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none", force=True).score)


def token_accuracy(hypotheses: list[str], references: list[str]) -> float:
    """Share of reference positions (its words and the end of the sentence) where the hypothesis has the same
    token."""
    hits = total = 0
    for hyp, ref in zip(hypotheses, references):
        h, r = hyp.split() + ["</s>"], ref.split() + ["</s>"]
        hits += sum(a == b for a, b in zip(h, r))
        total += len(r)
    return hits / total if total else 0.0


@torch.no_grad()
def reconstruction_report(model, x: torch.Tensor, limit: int = 1000, seed: int = 0) -> ReconstructionReport:
    """Greedy reconstructions of the first `limit` sentences of token ids x (N, L) against the inputs, beside
    greedy decodes of as many z ~ p(z)."""
    x = x[:limit]
    references = to_text(model, x)
    rebuilt = model.reconstruct(x.to(next(model.parameters()).device))
    z = _prior_draws(model, x.shape[0], torch.Generator().manual_seed(seed))
    prior = decode_codes(model, z)
    return ReconstructionReport(n=len(references), bleu=bleu(rebuilt, references),
                                token_accuracy=token_accuracy(rebuilt, references),
                                prior_bleu=bleu(prior, references), prior_token_accuracy=token_accuracy(prior, references))


def _prior_draws(model, n: int, generator: torch.Generator) -> torch.Tensor:
    """n codes from the prior under a seed of their own (torch's global RNG state is kept)."""
    with _seeded(int(torch.randint(0, 2**31 - 1, (1,), generator=generator))):
        return model.prior().sample((n,))


@dataclass(frozen=True)
class Diversity:
    """distinct-1, distinct-2 and the duplicate share of `n` samples, with their mean length in words."""

    n: int
    distinct_1: float
    distinct_2: float
    duplicates: float
    mean_words: float

    def to_dict(self) -> dict:
        return asdict(self)


def diversity(sentences: list[str]) -> Diversity:
    """distinct-n (distinct n-grams / all n-grams over the sentences) for n = 1, 2, and the share of sentences
    equal to an earlier one."""
    unigrams, bigrams, seen = [], [], set()
    duplicates = 0
    for sentence in sentences:
        words = sentence.split()
        unigrams += words
        bigrams += list(zip(words, words[1:]))
        duplicates += sentence in seen
        seen.add(sentence)
    n = len(sentences)
    return Diversity(n=n, distinct_1=len(set(unigrams)) / max(1, len(unigrams)),
                     distinct_2=len(set(bigrams)) / max(1, len(bigrams)), duplicates=duplicates / max(1, n),
                     mean_words=len(unigrams) / max(1, n))


def sample_diversity(model, n: int = 1000, strategy: str = "sample", seed: int = 0, **options) -> Diversity:
    """`diversity` of n sentences sampled from the model (z ~ p(z), then `strategy`)."""
    return diversity(sample_sentences(model, n, strategy, seed=seed, **options))


__all__ = ["ReconstructionReport", "reconstruction_report", "bleu", "token_accuracy", "Diversity", "diversity",
           "sample_diversity"]
