"""Lossless BB-ANS compression: bit-exact round trips, code length near the ELBO, damaged files refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit
from vaekit.apps.compress import CompressionError, batch_starts, compress, decompress, read_header
from vaekit.build import build_model
from vaekit.config import ModelConfig, Plugin


def _tiny(event_shape=(1, 4, 4), latent_dim=3, seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(latent_dim=latent_dim, network=Plugin("network", "mlp", {"hidden": [16]}),
                                   likelihood=Plugin("likelihood", "bernoulli"), event_shape=list(event_shape)))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 40), batch=st.integers(1, 64), seed=st.integers(0, 10**6))
def test_round_trips_are_bit_exact(n, batch, seed):
    model = _tiny(seed=seed % 7)
    x = np.random.default_rng(seed).integers(0, 2, (n, 1, 4, 4)).astype(np.uint8)
    assert np.array_equal(decompress(model, compress(model, x, batch=batch, seed=seed)), x)


def test_batches_cover_every_image_once():
    for count, batch in [(1, 256), (10, 3), (1000, 256)]:
        spans = batch_starts(count, batch)
        assert [s for s, _ in spans] == list(np.cumsum([0] + [n for _, n in spans[:-1]]))
        assert sum(n for _, n in spans) == count and max(n for _, n in spans) <= batch


@pytest.fixture
def trained(binary_digits_model):
    return binary_digits_model


def test_code_length_is_close_to_the_negative_elbo(trained):
    model, test = trained
    x = test.numpy().astype(np.uint8)
    blob = compress(model, x)
    assert np.array_equal(decompress(model, blob), x)
    _, payload = read_header(blob)
    bits_per_image = 8 * len(payload) / len(x)
    neg_elbo_bits = float(vaekit.evaluate(model, test, iw_samples=1).neg_elbo) / np.log(2)
    # the latent buckets and the first image's random bits cost a little; measured: +1% on these digits
    assert bits_per_image == pytest.approx(neg_elbo_bits, rel=0.05)


def test_damaged_foreign_and_truncated_files_are_refused(trained):
    model, test = trained
    x = test.numpy().astype(np.uint8)[:50]
    blob = compress(model, x)
    flipped = bytearray(blob)
    flipped[-3] ^= 0x10
    for bad, message in [(bytes(flipped), "checksum"), (blob[:-4], "checksum"), (blob[:6], "magic"),
                         (b"hello world", "magic")]:
        with pytest.raises(CompressionError, match=message):
            decompress(model, bad)
    with pytest.raises(CompressionError, match="another model"):
        decompress(_tiny((1, 8, 8), 8), blob)


def test_input_the_model_cannot_code_is_refused(trained):
    model, test = trained
    with pytest.raises(CompressionError, match="0 or 1"):
        compress(model, np.full((2, 1, 8, 8), 0.5))
    with pytest.raises(CompressionError, match="shape"):
        compress(model, np.zeros((2, 1, 4, 4)))
    gaussian = build_model(ModelConfig(latent_dim=2, network=Plugin("network", "mlp", {"hidden": [8]}),
                                       likelihood=Plugin("likelihood", "gaussian"), event_shape=[4]))
    with pytest.raises(CompressionError, match="discrete levels"):
        compress(gaussian, np.zeros((2, 4)))


def _tiny_8bit(event_shape=(1, 4, 4), latent_dim=3, n_mix=2, seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(latent_dim=latent_dim, network=Plugin("network", "mlp", {"hidden": [16]}),
                                   likelihood=Plugin("likelihood", "discretized-logistic", {"n_mix": n_mix}),
                                   event_shape=list(event_shape)))


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 30), n_mix=st.integers(1, 3), seed=st.integers(0, 10**6), as_float=st.booleans())
def test_8bit_round_trips_are_bit_exact(n, n_mix, seed, as_float):
    model = _tiny_8bit(n_mix=n_mix, seed=seed % 5)
    x = np.random.default_rng(seed).integers(0, 256, (n, 4, 4)).astype(np.uint8)
    data = (x / 255.0).astype(np.float32) if as_float else x
    out = decompress(model, compress(model, data, batch=7, seed=seed))
    assert out.dtype == data.dtype and np.array_equal(out, data)


def test_8bit_values_off_the_levels_are_refused():
    model = _tiny_8bit()
    for bad in (np.full((2, 4, 4), 0.5, dtype=np.float32), np.full((2, 4, 4), 300), np.full((2, 4, 4), -1),
                np.full((2, 4, 4), np.nan), np.ones((2, 4, 4), dtype=bool)):
        with pytest.raises(CompressionError, match="levels"):
            compress(model, bad)


def test_8bit_code_length_is_close_to_the_negative_elbo():
    data = vaekit.load_data("digits")
    # digits' 17 grey levels as 8-bit values k/255
    train, test = (torch.round(data.split(s).x * 255) / 255 for s in ("train", "test"))
    config = vaekit.build_run_config(None, ["train.epochs=30", "train.progress=false",
                                            "model.likelihood=discretized-logistic", "model.likelihood.n_mix=2",
                                            "model.latent_dim=8", "model.network.hidden=[128]"])
    model = vaekit.fit(config, data=vaekit.DataBundle.from_arrays(train, valid=(test,))).model
    x = np.rint(test.numpy() * 255).astype(np.uint8)
    blob = compress(model, x)
    assert np.array_equal(decompress(model, blob), x)
    _, payload = read_header(blob)
    neg_elbo_bits = float(vaekit.evaluate(model, test, iw_samples=1).neg_elbo) / np.log(2)
    assert 8 * len(payload) / len(x) == pytest.approx(neg_elbo_bits, rel=0.05)


def test_level_probabilities_are_the_likelihoods_masses():
    from vaekit.likelihoods import Likelihood, build_likelihood

    torch.manual_seed(0)
    for name, options, per_entry in [("discretized-logistic", {"n_mix": 1}, 2),
                                     ("discretized-logistic", {"n_mix": 3}, 9), ("bernoulli", {}, 1)]:
        likelihood = build_likelihood(name, (1, 2, 3), **options)
        px = likelihood(torch.randn(4, per_entry, 1, 2, 3) * 2)
        fast, general = likelihood.level_probs(px), Likelihood.level_probs(likelihood, px)
        assert fast.shape == (4, 1, 2, 3, likelihood.levels)
        assert torch.allclose(fast.sum(-1), torch.ones(()).double(), atol=1e-6)
        assert torch.allclose(fast, general, atol=1e-5)


def test_level_cdf_gives_the_level_masses():
    from vaekit.likelihoods import build_likelihood

    torch.manual_seed(0)
    for n_mix, per_entry in [(1, 2), (3, 9)]:
        likelihood = build_likelihood("discretized-logistic", (1, 2, 3), n_mix=n_mix)
        px = likelihood(torch.randn(4, per_entry, 1, 2, 3) * 2)
        inner = likelihood.level_cdf(px, torch.arange(1, 256))  # (4, 1, 2, 3, 255)
        cdf = torch.cat([torch.zeros_like(inner[..., :1]), inner, torch.ones_like(inner[..., :1])], -1)
        assert torch.allclose(cdf.diff(dim=-1).double(), likelihood.level_probs(px), atol=2e-5)
        first = torch.randint(0, 16, (4, 1, 2, 3)) * 16
        shifted = likelihood.level_cdf(px, torch.arange(1, 16), first=first)
        assert torch.allclose(shifted, inner.gather(-1, first.unsqueeze(-1) + torch.arange(0, 15)), atol=1e-6)


def test_two_step_tables_match_the_one_step_tables():
    """P(group) P(place | group) of the two-step code equals the 256-level table of the one-step code, for the
    values under p(x|z) and for the latent buckets under q(z|x)."""
    from vaekit.apps import compress as codec

    model = _tiny_8bit(n_mix=2, seed=3)
    x = np.random.default_rng(0).integers(0, 256, (5, 1, 4, 4)).astype(np.uint8)
    z = np.random.default_rng(1).integers(0, 256, 5 * 3).astype(np.int32)
    edges, centres = codec._bucket_edges(codec.LATENT_BINS), codec._bucket_centres(codec.LATENT_BINS)
    with torch.no_grad():
        one_step = codec._value_probabilities(model, z, centres, 5)  # (80, 256)
        px = codec._decode(model, z, centres, 5)
        group_cdf = codec._value_group_cdf(model, px, 256)
        group = codec._value_group_rows(group_cdf)  # (80, 16)
        places = [codec._value_place_rows(model, px, group_cdf, np.full(80, g)) for g in range(16)]
        two_step = np.concatenate([group[:, g, None] * places[g] for g in range(16)], axis=1)
        np.testing.assert_allclose(two_step, one_step, atol=3e-6)
        np.testing.assert_allclose(two_step.sum(1), 1.0, atol=1e-5)

        one_step = codec._posterior_buckets(model, x, 256, edges)  # (15, 256)
        mu, sigma = codec._posterior_row(model, x, 256)
        latent_cdf = codec._latent_cdf(mu, sigma, edges[::codec.GROUP, None])
        group = codec._latent_group_rows(latent_cdf)
        places = [codec._latent_place_rows(mu, sigma, latent_cdf, np.full(15, g), edges) for g in range(16)]
        two_step = np.concatenate([group[:, g, None] * places[g] for g in range(16)], axis=1)
        np.testing.assert_allclose(two_step, one_step, atol=3e-6)


def test_8bit_files_code_in_two_steps_and_one_step_files_still_decode(monkeypatch):
    from vaekit.apps import compress as codec

    model = _tiny_8bit(seed=1)
    x = np.random.default_rng(2).integers(0, 256, (12, 1, 4, 4)).astype(np.uint8)
    header, _ = read_header(compress(model, x))
    assert header["version"] == 3 and header["group"] == 16
    with monkeypatch.context() as patch:  # the one-step code, as files of format version 2 hold it
        patch.setattr(codec, "_group", lambda model, levels: 0)
        old = compress(model, x, batch=5)
    header, _ = read_header(old)
    assert header["version"] == 2 and "group" not in header
    assert np.array_equal(decompress(model, old), x)
    binary = _tiny()
    header, _ = read_header(compress(binary, np.ones((3, 1, 4, 4), dtype=np.uint8)))
    assert header["version"] == 2 and "group" not in header  # binary images keep the one-step code


def test_two_step_files_with_a_wrong_group_are_refused():
    import json
    import struct

    model = _tiny_8bit()
    blob = compress(model, np.zeros((3, 1, 4, 4), dtype=np.uint8))
    (length,) = struct.unpack("<I", blob[4:8])
    header = json.loads(blob[8 : 8 + length])
    for bad in ({**header, "group": 8}, {**header, "version": 2}):
        encoded = json.dumps(bad).encode()
        with pytest.raises(CompressionError, match="does not fit"):
            decompress(model, blob[:4] + struct.pack("<I", len(encoded)) + encoded + blob[8 + length :])


@pytest.mark.parametrize("encode_threads, decode_threads", [(2, 1), (1, 2)])
def test_a_file_decodes_whatever_the_callers_thread_count(encode_threads, decode_threads):
    """The codecs compute on a fixed number of torch threads: a matrix product's last bits depend on the number,
    and with this model a file encoded with 2 threads failed its checksum when decoded with 1 (random weights
    suffice: only the round trip matters). The caller's setting is restored."""
    torch.manual_seed(0)
    config = ModelConfig(latent_dim=16, network=Plugin("network", "mlp", {"hidden": [1024, 1024]}),
                         likelihood=Plugin("likelihood", "bernoulli"), prior=Plugin("prior", "normal"))
    config.event_shape = (1, 28, 28)
    model = build_model(config)
    x = (np.random.default_rng(0).random((200, 1, 28, 28)) > 0.5).astype(np.uint8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(encode_threads)
        blob = compress(model, x)
        assert torch.get_num_threads() == encode_threads
        torch.set_num_threads(decode_threads)
        assert np.array_equal(decompress(model, blob), x)
        assert torch.get_num_threads() == decode_threads
    finally:
        torch.set_num_threads(before)
