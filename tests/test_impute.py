"""Missing-data imputation: MIWAE on a low-rank Gaussian, the estimator API, CSV round trips, inpainting, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.apps import VAEImputer
from vaekit.apps.impute import impute, impute_gibbs, impute_importance
from vaekit.apps.inpaint import hole_pattern, inpainting_figure, observation_mask
from vaekit.apps.tables import read_table
from vaekit.cli import main
from vaekit.errors import DataError


def _low_rank(n: int = 400, f: int = 8, rank: int = 2, rate: float = 0.3, seed: int = 0):
    """Rows of a rank-2 Gaussian in 8-D with small noise, and a copy with `rate` of the entries set to NaN."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, f)) + 0.05 * rng.normal(size=(n, f))
    missing = rng.random(x.shape) < rate
    missing[missing.all(1), 0] = False  # keep at least one observed entry per row
    holey = x.copy()
    holey[missing] = np.nan
    return x, holey, missing


@pytest.fixture(scope="module")
def fitted():
    x, holey, missing = _low_rank()
    imputer = VAEImputer(epochs=60, latent_dim=2, hidden=(64, 64), samples=200, random_state=0).fit(holey)
    return imputer, x, holey, missing


def test_recovers_removed_values_much_better_than_the_mean(fitted):
    imputer, x, holey, missing = fitted
    filled = imputer.transform(holey)
    rmse = np.sqrt(np.mean((filled[missing] - x[missing]) ** 2))
    mean_fill = np.where(missing, np.nanmean(holey, 0), holey)
    rmse_mean = np.sqrt(np.mean((mean_fill[missing] - x[missing]) ** 2))
    assert rmse < 0.5 * rmse_mean, (rmse, rmse_mean)


def test_observed_entries_are_returned_unchanged_and_input_untouched(fitted):
    imputer, _, holey, missing = fitted
    before = holey.copy()
    filled = imputer.transform(holey)
    assert np.array_equal(filled[~missing], holey[~missing])  # bit for bit
    assert not np.isnan(filled).any()
    assert np.array_equal(np.isnan(holey), np.isnan(before)) and np.array_equal(holey[~missing], before[~missing])


@pytest.mark.parametrize("method", ["pseudo-gibbs", "metropolis"])
def test_gibbs_samplers_fill_and_keep_observed(fitted, method):
    imputer, x, holey, missing = fitted
    rows = slice(0, 40)
    imputer_g = VAEImputer(**{**imputer.get_params(), "method": method, "samples": 60})
    imputer_g.__dict__.update({k: v for k, v in imputer.__dict__.items() if k.endswith("_")})
    filled = imputer_g.transform(holey[rows])
    m = missing[rows]
    assert np.array_equal(filled[~m], holey[rows][~m])
    mean_fill = np.nanmean(holey, 0)[None].repeat(40, 0)
    assert np.mean((filled[m] - x[rows][m]) ** 2) < np.mean((mean_fill[m] - x[rows][m]) ** 2)


def test_multiple_imputation_draws_differ_but_keep_observed(fitted):
    imputer, _, holey, missing = fitted
    draws = imputer.sample_imputations(holey[:30], n_draws=4)
    assert draws.shape == (4, 30, holey.shape[1])
    m = missing[:30]
    assert all(np.array_equal(d[~m], holey[:30][~m]) for d in draws)
    assert np.std(draws[:, m], axis=0).mean() > 0  # the draws are not all the same


def test_works_in_a_pipeline():
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    x, holey, _ = _low_rank(n=200)
    target = x @ np.arange(x.shape[1])
    pipe = make_pipeline(VAEImputer(epochs=5, samples=50, random_state=0), LinearRegression()).fit(holey, target)
    assert pipe.predict(holey).shape == (200,)


def test_bad_input_gives_one_line_errors(fitted):
    imputer, _, holey, _ = fitted
    all_missing_col = holey.copy()
    all_missing_col[:, 3] = np.nan
    with pytest.raises(DataError, match="column"):
        VAEImputer(epochs=1).fit(all_missing_col)
    all_missing_row = holey.copy()
    all_missing_row[7] = np.nan
    with pytest.raises(DataError, match="row 7"):
        imputer.transform(all_missing_row)
    with pytest.raises(DataError, match="non-numeric"):
        VAEImputer(epochs=1).fit(np.array([["1", "x"], ["2", "3"]], dtype=object))
    with pytest.raises(DataError, match="columns"):
        imputer.transform(holey[:, :5])


def test_importance_imputation_of_a_plain_vae_keeps_observed(trained_run):
    import vaekit

    model = vaekit.load(trained_run)
    x = vaekit.load_data("digits").split("test").x[:6]
    observed = observation_mask(hole_pattern("bottom-half", model.event_shape), x)
    mean, draws = impute_importance(model, x, observed, k=50, draws=3)
    assert mean.shape == x.shape and draws.shape == (3, *x.shape)
    keep = observed.bool()
    assert torch.equal(mean[keep], x[keep]) and torch.equal(draws[0][keep], x[keep])
    chain_mean, last = impute_gibbs(model, x, observed, steps=10)
    assert torch.equal(chain_mean[keep], x[keep]) and torch.isfinite(last).all()
    with pytest.raises(DataError, match="shape"):
        observation_mask(np.zeros((5, 5)), x)
    assert impute(model, x, observed, "importance", 20).shape == x.shape
    import matplotlib.pyplot

    figure = inpainting_figure(x, observed, {"importance": mean})
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["original", "observed", "importance"]
    matplotlib.pyplot.close(figure)


CSV = """id,height,weight,city,age
a1,1.70,,Oslo,34
a2,,80.5,,41
a3,1.62,55.0,Paris,NA
a4,1.88,90.1,Rome,29
a5,1.75,72.0,Oslo,
a6,1.66,60.2,Paris,52
a7,1.80,85.3,,38
a8,,70.0,Rome,45
"""


def test_csv_round_trip_fills_numbers_and_categories_and_keeps_every_observed_cell(tmp_path):
    src = tmp_path / "people.csv"
    src.write_text(CSV)
    out = tmp_path / "filled.csv"
    assert main(["impute", str(src), "--out", str(out), "--epochs", "3", "--samples", "20"]) == 0
    assert src.read_text() == CSV  # the input is never modified
    before, after = read_table(src), read_table(out)
    assert after.header == before.header and after.numeric == before.numeric == [1, 2, 4]
    assert not np.isnan(after.values).any()
    for row_in, row_out in zip(before.cells, after.cells):
        assert row_out[0] == row_in[0]
        assert row_out[3] == row_in[3] if row_in[3] else row_out[3] in ("Oslo", "Paris", "Rome")  # a known city
        for j in (1, 2, 4):
            if row_in[j].strip() not in ("", "NA"):
                assert row_out[j] == row_in[j]  # observed cells keep their text
    assert main(["impute", str(src), "--out", str(src), "--force"]) == 2  # never overwrites its input
    assert main(["impute", str(src), "--out", str(out)]) == 2  # nor an existing output without --force


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("a,b\n1,2\nx,3\n4,5\n", "numeric column"),
    ("a,b\n1,\n,\n4,5\n", "no value in any modelled column"),
    ("a,b\n1,\n2,\n4,\n", "no value in any row"),
])
def test_csv_bad_input(tmp_path, capsys, text, message):
    src = tmp_path / "bad.csv"
    src.write_text(text)
    assert main(["impute", str(src), "--out", str(tmp_path / "o.csv"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_inpainting_draws_a_figure(trained_run, tmp_path, capsys):
    out = tmp_path / "inpaint.png"
    assert main(["impute", str(trained_run), "--mask", "bottom-half", "-n", "4", "--samples", "50",
                 "--out", str(out), "--array", str(tmp_path / "filled.npy")]) == 0
    assert out.stat().st_size > 0 and np.load(tmp_path / "filled.npy").shape == (4, 1, 8, 8)
    np.save(tmp_path / "wrong.npy", np.zeros((5, 5)))
    capsys.readouterr()
    assert main(["impute", str(trained_run), "--mask", str(tmp_path / "wrong.npy"), "--out",
                 str(tmp_path / "w.png")]) == 2
    assert "shape" in capsys.readouterr().err


def test_inpainting_never_writes_non_finite_images(trained_run, tmp_path, capsys):
    """Images of 1e30 (finite in the file) made NaN fillings that were written with exit 0: refused now, and the
    library refuses any non-finite imputation."""
    import torch

    import vaekit
    from vaekit.apps.impute import impute
    from vaekit.cli import main
    from vaekit.errors import DataError

    np.save(tmp_path / "huge.npy", np.full((2, 8, 8), 1e30, np.float32))
    assert main(["impute", str(trained_run), "--image", str(tmp_path / "huge.npy"), "--out",
                 str(tmp_path / "o.png"), "--array", str(tmp_path / "o.npy")]) == 2
    assert "outside [0, 1]" in capsys.readouterr().err and not (tmp_path / "o.png").exists()
    model = vaekit.load_run(trained_run).model
    x, mask = torch.full((2, 1, 8, 8), 1e30), torch.ones(2, 1, 8, 8)
    mask[:, :, 4:] = 0
    with pytest.raises(DataError, match="not finite"):
        impute(model, x, mask, "importance", 5)
