"""Lossy latent coding: quantised posterior means, a rate that falls as the step grows, damaged files refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaekit
from vaekit.apps.compress import CompressionError, compress, decompress


@pytest.fixture
def trained(binary_digits_model):
    model, test = binary_digits_model
    return model, test.numpy()


def test_rate_falls_and_distortion_rises_as_the_step_grows(trained):
    model, x = trained
    sizes, errors = [], []
    for step in (0.02, 0.1, 0.5, 2.0):
        blob = compress(model, x, lossy=True, step=step)
        y = decompress(model, blob)
        assert y.shape == x.shape and y.dtype == x.dtype
        sizes.append(len(blob))
        errors.append(float(((y - x) ** 2).mean()))
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 2 * sizes[-1], sizes
    assert errors == sorted(errors) and errors[-1] > 1.5 * errors[0], errors
    # the finest step reconstructs about as well as the unquantised posterior means
    exact = model.reconstruct(torch.as_tensor(x)).numpy()
    assert errors[0] == pytest.approx(float(((exact - x) ** 2).mean()), rel=0.05)


def test_a_target_rate_is_met(trained):
    model, x = trained
    # many images (a fitted density pays off) and few (coded under the prior, the header a large share)
    for images, rate in ((x, 4.0), (x, 10.0), (x[:20], 26.0), (x[:20], 32.0)):
        size = len(compress(model, images, lossy=True, rate=rate)) / len(images)
        assert 0.95 * rate <= size <= 1.02 * rate, (len(images), rate, size)
    with pytest.raises(CompressionError, match="below what this model can reach"):
        compress(model, x[:3], lossy=True, rate=1.0)


def test_integer_images_come_back_as_integers(trained):
    model, x = trained
    levels = x.astype(np.uint8)  # 0/1: the Bernoulli model's two levels
    y = decompress(model, compress(model, levels, lossy=True, step=0.05))
    assert y.dtype == np.uint8 and y.shape == levels.shape
    assert set(np.unique(y)) <= {0, 1} and (y == levels).mean() > 0.9


def test_bad_requests_and_damaged_files_are_refused(trained):
    model, x = trained
    for kwargs, message in [({"step": 0.0}, "step must be"), ({"step": 0.1, "rate": 5.0}, "not both"),
                            ({"rate": -1.0}, "positive"), ({"rate": float("nan")}, "positive")]:
        with pytest.raises(CompressionError, match=message):
            compress(model, x, lossy=True, **kwargs)
    with pytest.raises(CompressionError, match="lossy compression only"):
        compress(model, x, rate=5.0)
    with pytest.raises(CompressionError, match="finite"):
        compress(model, np.full_like(x[:2], np.nan), lossy=True)
    blob = compress(model, x[:20], lossy=True, step=0.1)
    flipped = bytearray(blob)
    flipped[-2] ^= 0x01
    with pytest.raises(CompressionError, match="checksum"):
        decompress(model, bytes(flipped))
    other = vaekit.build_model(vaekit.ModelConfig(latent_dim=8, network=vaekit.Plugin("network", "mlp",
                                                                                     {"hidden": [128]}),
                                                 event_shape=list(model.event_shape)))
    with pytest.raises(CompressionError, match="another model"):
        decompress(other, blob)


def test_few_images_are_coded_under_the_prior_and_many_under_a_fitted_density(trained):
    from vaekit.apps.lossy import choose_density
    from vaekit.apps.vkz import read

    # symbols far narrower than the prior's grid (std 10 steps at step 0.1): a fitted density pays for its header
    # when there are many of them, not for one
    narrow = np.random.default_rng(0).integers(-1, 2, (2000, 8))
    assert choose_density(narrow, 0.1)[2] and not choose_density(narrow[:1], 0.1)[2]
    model, x = trained
    one = compress(model, x[:1], lossy=True, step=0.1)
    assert read(one)[0]["density"] is None
    # coded under the prior, the image decodes as it does among many: only the entropy model differs (float
    # rounding aside: a batch of one goes through other matmul kernels)
    np.testing.assert_allclose(decompress(model, one), decompress(model, compress(model, x, lossy=True, step=0.1))[:1],
                               atol=1e-5)


def test_float_reconstructions_stay_within_the_range_of_the_original():
    torch.manual_seed(0)
    model = vaekit.build_model(vaekit.ModelConfig(latent_dim=3, network=vaekit.Plugin("network", "mlp", {"hidden": [8]}),
                                                  likelihood=vaekit.Plugin("likelihood", "gaussian"),
                                                  event_shape=[1, 4, 4]))
    x = np.random.default_rng(0).random((30, 1, 4, 4)).astype(np.float32) * 0.5 + 0.25  # values in [0.25, 0.75]
    raw = model.reconstruct(torch.as_tensor(x)).detach().numpy()
    assert raw.min() < x.min() or raw.max() > x.max()  # the decoder's means overshoot: the clip has work to do
    y = decompress(model, compress(model, x, lossy=True, step=0.05))
    assert y.min() >= x.min() and y.max() <= x.max()


@pytest.mark.parametrize("value, dtype, message", [(1e30, np.float32, "latent codes of these images reach"),
                                                   (1e39, np.float64, "beyond what the model's float32")])
def test_values_that_overflow_later_are_refused_up_front(trained, value, dtype, message):
    """Finite in the file, but not in float32 (1e39) or not through the encoder (1e30): refused before coding."""
    model, x = trained
    with pytest.raises(CompressionError, match=message):
        compress(model, np.full_like(x[:4], value, dtype=dtype), lossy=True)
