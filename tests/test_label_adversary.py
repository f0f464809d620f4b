"""The label adversary of conditional VAEs (vaekit.models.label_adversary) and the style-grid accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config
from torch.nn import functional as F

import vaekit
from vaekit.apps.style import analogy_grid
from vaekit.cli import main
from vaekit.errors import ConfigError
from vaekit.metrics.sample_quality import classify, train_classifier
from vaekit.metrics.style_transfer import style_grid_accuracy
from vaekit.models.label_adversary import reverse_gradient


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def adversarial_config(weight: float = 1.0, epochs: int = 3) -> vaekit.RunConfig:
    config = tiny_config(epochs=epochs)
    config.model.conditional = True
    config.model.kind = {"name": "vae", "label_adversary": weight}
    return config


@pytest.fixture(scope="module")
def adversarial_run(tmp_path_factory, digits):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("adversary") / "run"
    vaekit.fit(adversarial_config(), run_dir, data=digits)
    return run_dir


def test_reverse_gradient_keeps_the_value_and_negates_the_gradient():
    z = torch.randn(3, 5, requires_grad=True)
    weights = torch.randn(3, 5)
    out = reverse_gradient(z)
    torch.testing.assert_close(out, z)
    (out * weights).sum().backward()
    torch.testing.assert_close(z.grad, -weights)


def test_the_adversary_learns_the_label_while_the_encoder_unlearns_it(adversary_model_and_batch):
    model, x, y = adversary_model_and_batch
    model.train()
    out = model(x, y)
    assert out.penalty.shape == (x.shape[0],)
    model.zero_grad()
    out.penalty.mean().backward()
    reversed_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # The same cross-entropy without the reversal, through the same draw of z
    model.zero_grad()
    torch.manual_seed(0)
    qz = model.encode(x, y)
    z = qz.rsample((1,))
    ce = F.cross_entropy(model.adversary.net(z)[0], y, reduction="none") * model.adversary.weight
    ce.mean().backward()
    for name, p in model.named_parameters():
        if name.startswith("adversary."):  # the classifier descends the cross-entropy ...
            torch.testing.assert_close(reversed_grads[name], p.grad)
        elif name.startswith("encoder."):  # ... the encoder ascends it
            torch.testing.assert_close(reversed_grads[name], -p.grad)
        else:  # the decoder and the likelihood do not see it
            assert name not in reversed_grads or torch.count_nonzero(reversed_grads[name]) == 0


@pytest.fixture
def adversary_model_and_batch(digits):
    config = vaekit.build_run_config(None, ["model.conditional=true", "model.latent_dim=4",
                                            "model.network.hidden=[32]", "model.kind.label_adversary=2.0"])
    model = vaekit.build_model(vaekit.resolve_model_config(config.model, digits))
    train = digits.split("train")
    torch.manual_seed(0)
    return model, train.x[:16], train.y[:16]


def test_eval_mode_has_no_penalty_and_the_adversary_round_trips(adversarial_run, digits):
    model = vaekit.load(adversarial_run)
    assert model.adversary is not None and model.adversary.weight == 1.0
    x, y = digits.split("test").x[:8], digits.split("test").y[:8]
    assert model.eval()(x, y).penalty is None
    fitted = vaekit.fit(adversarial_config(), None, data=digits).model  # same seed and data: same weights
    for name, value in fitted.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value)
    assert any(name.startswith("adversary.") for name in model.state_dict())
    assert 0.0 <= model.adversary.accuracy(model.embed(x, y), y) <= 1.0
    assert "weight 1" in model._repr_html_() and "label adversary" not in vaekit.fit(
        tiny_config(epochs=1), None, data=digits).model._repr_html_()


@pytest.mark.parametrize("settings, message", [
    (["model.kind.label_adversary=1"], "needs a conditional model"),
    (["model.conditional=true", "model.kind.label_adversary=-1"], "must be a number > 0"),
    (["model.conditional=true", "model.kind.label_adversary=nan"], "must be float"),
])
def test_bad_adversary_settings_are_one_line_errors(settings, message, tmp_path, capsys):
    code = main(["train", "--data", "digits", "--out", str(tmp_path / "r"), "--set", "train.epochs=1",
                 *sum((["--set", s] for s in settings), [])])
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_a_weight_that_is_not_finite_is_refused_from_python():
    from vaekit.models.label_adversary import LabelAdversary

    for weight in (float("nan"), float("inf"), 0.0):
        with pytest.raises(ConfigError, match="must be a number > 0"):
            LabelAdversary(4, 10, weight)


def test_style_grid_accuracy_counts_the_cells_of_the_analogy_grid(adversarial_run, digits):
    model = vaekit.load(adversarial_run)
    classifier = train_classifier(digits, epochs=5, progress=False)
    valid = digits.split("valid")
    result = style_grid_accuracy(model, classifier, valid.x, valid.y, n_styles=30, seed=1, chunk=7)
    # The same numbers from the grid itself
    with vaekit.core.rng.seeded(1):
        index = torch.randperm(valid.x.shape[0])[:30]
    grid = analogy_grid(model, valid.x[index], valid.y[index])
    hits = classify(classifier, grid.images.flatten(0, 1))[1].reshape(30, 10) == np.arange(10)
    own = valid.y[index].numpy()[:, None] == np.arange(10)
    assert result.cell_accuracy == pytest.approx(hits.mean())
    assert result.transfer_accuracy == pytest.approx(hits[~own].mean())
    assert result.per_class == pytest.approx(hits.mean(0).tolist())
    assert (result.n_styles, result.n_classes) == (30, 10)
    with pytest.raises(ConfigError, match="n_styles must be between 1"):
        style_grid_accuracy(model, classifier, valid.x, valid.y, n_styles=valid.x.shape[0] + 1)
    plain = vaekit.fit(tiny_config(epochs=1), None, data=digits).model
    with pytest.raises(ConfigError, match="needs a conditional model"):
        style_grid_accuracy(plain, classifier, valid.x, valid.y, n_styles=5)
