"""Sentence VAEs through the library's own pipeline: the data sets, fit, load, sample, reconstruct, interpolate,
beam search, evaluation in perplexity, the mutual-information estimate and length-bucketed batches."""

from __future__ import annotations

import logging
import math

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError, DataError
from vaekit.evaluate import mutual_information
from vaekit.text import PAD_ID
from vaekit.text.batching import length_bucketed, sentence_lengths
from vaekit.text.data import bundle_from_sentences
from vaekit.text.generate import (beam_search, decode_codes, interpolate_sentences, is_text_model,
                                  sample_sentences)
from vaekit.text.quality import bleu, diversity, token_accuracy

SENTENCES = ["the dog chased a cat .", "a girl read the old book near the river .", "every bird sang .",
             "the man bought a house .", "a small fox slept under the big tree .", "the teacher smiled ."]
SMALL = ["model.network.embed_dim=16", "model.network.hidden=32", "model.likelihood.embed_dim=16",
         "model.likelihood.hidden=64", "train.progress=false", "train.threads=1"]


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    """A small sentence VAE trained to reproduce six sentences from their codes, saved and loaded back."""
    data = bundle_from_sentences(SENTENCES * 8, valid=SENTENCES)
    config = vaekit.build_run_config(overrides=[*SMALL, "model.latent_dim=4", "train.epochs=60", "train.batch_size=16",
                                                "train.lr=3e-3", "objective.beta=0.1"])
    run = tmp_path_factory.mktemp("text") / "run"
    vaekit.fit(config, run, data=data)
    return vaekit.load(run), run


def test_the_data_sets_hold_padded_token_ids_and_a_vocabulary():
    toy = vaekit.load_data("toy-sentences")
    assert toy.value_kind == "tokens" and toy.event_shape == (102,) and len(toy.vocab) == 59 + 4
    x = toy.split("train").x
    assert x.dtype == torch.int64 and bool((x[:, 0] == 1).all())  # every sentence starts with <bos>
    assert {len(s) for s in toy.splits.values()} == {1400, 200, 400}
    short = vaekit.load_data("toy-sentences", max_len=5, vocab_size=30)
    assert short.event_shape == (7,) and len(short.vocab) == 30
    with pytest.raises(DataError, match="does not apply to data set 'digits'"):
        vaekit.load_data("digits", max_len=5)


def test_a_text_file_loads_with_a_warning_for_long_sentences(tmp_path, caplog):
    path = tmp_path / "my.txt"
    path.write_text("\n".join(SENTENCES * 5 + ["", "   ", " ".join(["word"] * 30)]) + "\n")
    with caplog.at_level(logging.WARNING):
        data = vaekit.load_data(str(path), max_len=12)
    assert "1 of 31 sentences are longer than max_len=12" in caplog.text
    assert data.event_shape == (14,) and sum(len(s) for s in data.splits.values()) == 31
    with pytest.raises(DataError, match=r"max_len=5 does not apply to the file .*npy \(it takes: binarize,"):
        vaekit.load_data(str(_npy(tmp_path)), max_len=5)
    with pytest.raises(DataError, match=r"does not apply to the file .*my.txt \(it takes: valid_fraction, test_fraction, "
                                        r"max_len, vocab_size\)"):
        vaekit.load_data(str(path), binarize="dynamic")


def _npy(tmp_path):
    import numpy as np

    np.save(tmp_path / "x.npy", np.random.rand(20, 4))
    return tmp_path / "x.npy"


@pytest.mark.parametrize("content, message", [(b"", "is empty"), (b"\n\n  \n", "holds no sentences"),
                                              (b"a good line\n\xff\xfe bad\n", "line 2: not UTF-8")])
def test_bad_text_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        vaekit.load_data(str(path))


def test_a_tiny_model_overfits_and_reconstructs_its_sentences(overfit):
    model, run = overfit
    assert (run / "vocab.json").is_file() and (run / "samples.txt").is_file() is False  # figures only when asked
    assert is_text_model(model) and model.vocab is not None
    assert model.reconstruct(SENTENCES) == SENTENCES
    # beam search finds them too, and token ids in give the same as strings
    assert decode_codes(model, model.encode(model.vocab.encode_batch([s.split() for s in SENTENCES], 100)[0]).mean,
                        "beam", beam_size=3) == SENTENCES


def test_interpolation_ends_decode_to_the_inputs(overfit):
    model, _ = overfit
    for method in ("linear", "slerp"):
        path = interpolate_sentences(model, SENTENCES[0], SENTENCES[1], steps=5, method=method)
        assert len(path) == 5 and path[0] == SENTENCES[0] and path[-1] == SENTENCES[1]
    with pytest.raises(ConfigError, match="steps"):
        interpolate_sentences(model, SENTENCES[0], SENTENCES[1], steps=1)


def test_sampling_is_repeatable_and_validated(overfit):
    model, _ = overfit
    a = model.sample(20, mean=False, seed=3)
    assert a == model.sample(20, mean=False, seed=3) and len(a) == 20 and all(isinstance(s, str) for s in a)
    assert sample_sentences(model, 4, "sample", top_p=0.5, seed=1) == sample_sentences(model, 4, "sample", top_p=0.5,
                                                                                      seed=1)
    for kwargs, message in (({"strategy": "nope"}, "unknown decoding strategy"), ({"temperature": 0.0}, "temperature"),
                            ({"top_p": 1.5}, "top_p"), ({"beam_size": 0}, "beam_size"),
                            ({"strategy": "greedy", "temperature": 2.0}, "apply to strategy 'sample'")):
        with pytest.raises(ConfigError, match=message):
            sample_sentences(model, 2, **{"strategy": "sample", **kwargs})


def test_unknown_and_too_many_words_are_said(overfit, caplog):
    model, _ = overfit
    with caplog.at_level(logging.WARNING):
        out = model.reconstruct(["the zebra chased a cat .", " ".join(["dog"] * 150)])
    assert len(out) == 2
    assert "1 word(s) are not in the model's vocabulary" in caplog.text
    assert "longer than the model's 100 words" in caplog.text
    with pytest.raises(DataError, match="sentence 1 is empty"):
        model.reconstruct(["   "])


def test_beam_search_finds_a_sentence_at_least_as_probable_as_greedy():
    torch.manual_seed(0)
    from vaekit.text.sequence import AutoregressiveSentence, SentenceDecoder

    decoder = SentenceDecoder(15, 3, embed_dim=8, hidden=16).eval()
    z = torch.randn(6, 3)
    px = AutoregressiveSentence(decoder, z)
    greedy = px.generate(8, greedy=True)
    beam1, beam4 = beam_search(decoder, z, 1, 8), beam_search(decoder, z, 4, 8)
    width = max(greedy.shape[1], beam1.shape[1], beam4.shape[1])

    def pad(ids):
        return torch.nn.functional.pad(ids, (0, width - ids.shape[1]), value=PAD_ID)

    assert torch.equal(pad(beam1), pad(greedy))  # a beam of one is greedy decoding
    assert bool((px.log_prob(pad(beam4)) >= px.log_prob(pad(greedy)) - 1e-5).all())


def test_mutual_information_estimate_on_known_cases():
    g = torch.Generator().manual_seed(0)
    n = 500
    same = mutual_information(torch.zeros(n, 2), torch.ones(n, 2), g)
    assert abs(same) < 0.05  # identical posteriors: the code says nothing about x
    apart = mutual_information(torch.arange(n, dtype=torch.float32)[:, None] * 10, torch.full((n, 1), 0.01), g)
    assert abs(apart - math.log(n)) < 1e-3  # separated posteriors identify each example: log N, the most it shows


def test_length_buckets_keep_every_example_once_and_group_lengths():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 60, (1000,), generator=g)
    order = torch.randperm(1000, generator=g)
    bucketed = length_bucketed(order, lengths, 32, torch.Generator().manual_seed(1), pool=10)
    assert sorted(bucketed.tolist()) == list(range(1000))
    spread = [int(lengths[b].max() - lengths[b].min()) for b in bucketed.split(32)]
    random_spread = [int(lengths[b].max() - lengths[b].min()) for b in order.split(32)]
    assert sum(spread) * 4 < sum(random_spread)
    assert [len(b) for b in bucketed.split(32)][:-1] == [32] * 31  # only the last batch is short
    ids = torch.tensor([[1, 5, 2, 0], [1, 2, 0, 0]])
    assert sentence_lengths(ids).tolist() == [3, 2]


def test_evaluate_reports_perplexity_and_the_bound_holds(overfit):
    model, _ = overfit
    x = model.vocab.encode_batch([s.split() for s in SENTENCES], 100)[0]
    x = torch.nn.functional.pad(x, (0, 102 - x.shape[1]))
    result = vaekit.evaluate(model, x, iw_samples=20)
    words = sum(len(s.split()) for s in SENTENCES)
    assert result.words == words and result.tokens == words + len(SENTENCES)
    assert math.isclose(result.perplexity_word, math.exp(result.nll * len(SENTENCES) / words), rel_tol=1e-6)
    assert result.nll <= result.neg_elbo + 1e-4


def test_text_quality_scores():
    refs = ["the dog sat on the mat .", "a cat ran ."]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert token_accuracy(refs, refs) == 1.0
    assert token_accuracy(["the cat", "a cat ran ."], refs) == pytest.approx((1 + 5) / 13)
    d = diversity(["a b c", "a b c", "a d"])
    assert d.duplicates == pytest.approx(1 / 3) and d.distinct_1 == pytest.approx(4 / 8)
    assert d.distinct_2 == pytest.approx(3 / 5)


def test_a_sample_too_big_for_memory_is_refused_before_allocating(overfit):
    model, _ = overfit
    with pytest.raises(vaekit.VaekitError, match="sampling 1,000,000,000,000 sentences would need"):
        model.sample(10**12)
