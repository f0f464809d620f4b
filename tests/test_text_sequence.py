"""The autoregressive sentence distribution: padding costs nothing, teacher forcing equals step-by-step decoding,
generation ends sentences properly, and a small decoder learns to reproduce sentences from their codes."""

from __future__ import annotations

import pytest
import torch

from vaekit.errors import ConfigError
from vaekit.text import BOS_ID, EOS_ID, PAD_ID, Vocabulary, toy_corpus
from vaekit.text.sequence import AutoregressiveSentence, SentenceDecoder


def _decoder(vocab_size=12, latent_dim=3, **options):
    torch.manual_seed(0)
    return SentenceDecoder(vocab_size, latent_dim, embed_dim=8, hidden=16, **options).eval()


def _ids(rows, width):
    return torch.tensor([[BOS_ID, *row, EOS_ID] + [PAD_ID] * (width - len(row) - 2) for row in rows])


def test_padding_contributes_nothing():
    decoder = _decoder()
    z = torch.randn(3, 3)
    rows = [[4, 5, 6], [7], [8, 9, 10, 11, 4]]
    short, long = _ids(rows, 7), _ids(rows, 12)
    lp = AutoregressiveSentence(decoder, z).log_prob(short)
    assert lp.shape == (3,)
    assert torch.allclose(lp, AutoregressiveSentence(decoder, z).log_prob(long), atol=1e-6)
    alone = torch.stack([AutoregressiveSentence(decoder, z[i : i + 1]).log_prob(_ids([rows[i]], len(rows[i]) + 2))[0]
                         for i in range(3)])
    assert torch.allclose(lp, alone, atol=1e-5)


def test_teacher_forcing_equals_step_by_step_decoding():
    decoder = _decoder(z_every_step=True)
    z = torch.randn(2, 3)
    ids = _ids([[4, 5, 6, 7], [8, 9]], 6)
    expected = torch.zeros(2)
    state = None
    for t in range(ids.shape[1] - 1):
        logits, state = decoder.step(z, ids[:, t].masked_fill(ids[:, t] == EOS_ID, PAD_ID), state)
        target = ids[:, t + 1]
        expected += torch.where(target != PAD_ID, torch.log_softmax(logits, -1).gather(1, target[:, None])[:, 0], 0.0)
    assert torch.allclose(AutoregressiveSentence(decoder, z).log_prob(ids), expected, atol=1e-5)


def test_lead_shapes_broadcast_over_samples_of_z():
    decoder = _decoder()
    z = torch.randn(5, 2, 3)  # (S, B, D)
    ids = _ids([[4, 5], [6]], 4)
    lp = AutoregressiveSentence(decoder, z).log_prob(ids)
    assert lp.shape == (5, 2)
    assert torch.allclose(lp[3], AutoregressiveSentence(decoder, z[3]).log_prob(ids), atol=1e-6)


def test_generated_sentences_start_and_end_properly():
    decoder = _decoder()
    px = AutoregressiveSentence(decoder, torch.randn(50, 3))
    for ids in (px.generate(6), px.generate(6, greedy=True), px.generate(6, top_p=0.5, temperature=0.7)):
        assert (ids[:, 0] == BOS_ID).all() and ids.shape[1] <= 8
        assert ((ids == EOS_ID).sum(1) == 1).all()  # exactly one <eos> per sentence, padding after it
        after = torch.cumsum(ids == EOS_ID, 1) - (ids == EOS_ID).long()
        assert (ids[after.bool()] == PAD_ID).all() and not (ids[~after.bool()][1:] == PAD_ID).any()
    assert torch.equal(px.generate(6, greedy=True), px.generate(6, greedy=True))
    torch.manual_seed(1)
    assert torch.equal(px.generate(6, top_p=1e-6), px.generate(6, greedy=True))  # a nucleus of one word
    for kwargs in ({"max_len": 0}, {"max_len": 3, "temperature": 0.0}, {"max_len": 3, "top_p": 1.5}):
        with pytest.raises(ConfigError):
            px.generate(**kwargs)


def test_word_dropout_only_while_training():
    decoder = _decoder(word_dropout=0.9)
    z, ids = torch.randn(4, 3), _ids([[4, 5, 6, 7, 8]] * 4, 7)
    px = AutoregressiveSentence(decoder, z)
    assert torch.equal(px.log_prob(ids), px.log_prob(ids))  # eval: no dropout
    decoder.train()
    torch.manual_seed(0)
    assert not torch.allclose(px.log_prob(ids), AutoregressiveSentence(decoder.eval(), z).log_prob(ids))
    with pytest.raises(ConfigError, match="word_dropout"):
        SentenceDecoder(12, 3, word_dropout=1.0)


def test_a_decoder_learns_to_reproduce_sentences_from_their_codes():
    sentences = toy_corpus(6, seed=3)
    vocab = Vocabulary.build(sentences)
    ids, _ = vocab.encode_batch(sentences)
    torch.manual_seed(0)
    decoder = SentenceDecoder(len(vocab), 4, embed_dim=16, hidden=64)
    z = torch.randn(len(sentences), 4)  # one fixed code per sentence
    optimiser = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(150):
        optimiser.zero_grad()
        loss = -AutoregressiveSentence(decoder, z).log_prob(ids).mean()
        loss.backward()
        optimiser.step()
    decoder.eval()
    generated = AutoregressiveSentence(decoder, z).generate(max_len=ids.shape[1], greedy=True)
    assert [vocab.decode(row.tolist()) for row in generated] == [list(s) for s in sentences]


def test_the_encoder_reads_each_sentence_up_to_its_end():
    from vaekit.errors import DataError
    from vaekit.text.encoder import SentenceEncoder

    torch.manual_seed(0)
    encoder = SentenceEncoder(12, 3, embed_dim=8, hidden=16).eval()
    rows = [[4, 5, 6], [7], [8, 9, 10, 11, 4]]
    out = encoder(_ids(rows, 7))
    assert out.shape == (3, 6)
    assert torch.allclose(out, encoder(_ids(rows, 12)), atol=1e-6)  # more padding: the same codes
    assert torch.allclose(out[1], encoder(_ids([rows[1]], 3))[0], atol=1e-6)  # whatever the batch holds
    assert not torch.allclose(out[0], encoder(_ids([[4, 5, 7]], 5))[0])  # a different word: another code
    conditional = SentenceEncoder(12, 3, embed_dim=8, hidden=16, cond_dim=2)
    assert conditional(_ids(rows, 7), torch.eye(2)[[0, 1, 0]]).shape == (3, 6)
    with pytest.raises(DataError, match="padding only"):
        encoder(torch.zeros(2, 4, dtype=torch.long))


def test_the_parts_compose_into_a_vae_that_the_objectives_score():
    """The model composes, the objective scores: a sentence VAE from the same VAE class, trained on ELBO, with
    the importance-sampled NLL below the negative ELBO."""
    from vaekit import ELBO, VAE, Batch
    from vaekit.evaluate import importance_sampled_nll
    from vaekit.priors import StandardNormalPrior
    from vaekit.text.encoder import SentenceEncoder
    from vaekit.text.sequence import PassCode, SentenceLikelihood

    sentences = toy_corpus(64, seed=0)
    vocab = Vocabulary.build(sentences)
    ids, _ = vocab.encode_batch(sentences)
    torch.manual_seed(0)
    latent = 4
    model = VAE(SentenceEncoder(len(vocab), latent, embed_dim=16, hidden=32), PassCode(),
                SentenceLikelihood(len(vocab), latent, embed_dim=16, hidden=32), StandardNormalPrior(latent),
                latent_dim=latent, event_shape=(ids.shape[1],))
    objective = ELBO()
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(60):
        optimiser.zero_grad()
        loss = objective(model, Batch(ids))
        loss.total.backward()
        optimiser.step()
        losses.append(float(loss.total.detach()))
    assert losses[-1] < 0.7 * losses[0]
    model.eval()
    with torch.no_grad():
        neg_elbo = objective(model, Batch(ids)).terms["loss"]
        nll = importance_sampled_nll(model, ids, k=50)
    assert nll.shape == (64,) and float(nll.mean()) <= float(neg_elbo.mean()) + 0.05
