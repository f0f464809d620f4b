"""Mixed-type tables: column types, inference and --types, the 'mixed' likelihood, byte-identical CSV output,
TableImputer and TableAnomalyDetector, and one-line errors for bad schemas and hostile CSVs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.cli import main
from vaekit.errors import ConfigError, DataError
from vaekit.tabular.columns import COLUMN_TYPES, column_type
from vaekit.tabular.csvtext import parse_csv, read_csv_text
from vaekit.tabular.likelihood import MixedLikelihood, parse_columns
from vaekit.tabular.schema import infer_schema, is_missing, parse_types

LEVELS = {"real": 0, "positive": 0, "count": 0, "binary": 2, "categorical": 4, "ordinal": 5}


def _all_values(kind: str, levels: int) -> torch.Tensor:
    """Every value of a discrete column (as features), or counts 0..399."""
    t = column_type(kind)
    if kind == "count":
        return torch.from_numpy(t.encode(np.arange(400.0), 0)).float()
    return torch.from_numpy(t.encode(np.arange(levels, dtype=float), levels)).float()


@pytest.mark.parametrize("kind", ["count", "binary", "categorical", "ordinal"])
def test_discrete_column_probabilities_sum_to_one(kind):
    levels = LEVELS[kind]
    t = column_type(kind)
    width = t.width(levels)
    params = torch.randn(3, 1, 2, width)  # three parameter sets, broadcast over the values
    values = _all_values(kind, levels)  # (V, width)
    log_p = t.log_prob(params, values[None], torch.ones(width))  # (3, V)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(3), atol=1e-3)


@pytest.mark.parametrize("kind", list(COLUMN_TYPES))
def test_every_column_type_round_trips_values_and_decodes_means_and_draws_to_valid_values(kind):
    levels = LEVELS[kind]
    t = column_type(kind)
    values = {"binary": np.array([0.0, 1.0, 1.0, 0.0]), "positive": np.array([0.5, 1.0, 2.0, 30.0])}.get(
        kind, np.array([0.0, 1.0, 2.0, 3.0]))
    features = t.encode(values, levels)
    assert features.shape == (4, t.width(levels))
    assert np.allclose(t.decode(features, levels), values)
    params = torch.randn(4, 2, t.width(levels))
    scale = torch.ones(t.width(levels))
    for f in (t.mean(params, scale), t.sample(params, scale)):
        decoded = t.decode(f.double().numpy(), levels)
        if t.discrete:
            assert ((decoded >= 0) & (decoded < levels)).all() and (decoded == np.round(decoded)).all()
        if kind == "count":
            assert (decoded >= 0).all() and (decoded == np.round(decoded)).all()
    log_p = t.log_prob(params.requires_grad_(), torch.from_numpy(features).float(), scale)
    assert log_p.shape == (4,) and torch.isfinite(log_p).all()
    log_p.sum().backward()
    assert params.grad.abs().sum() > 0


def test_mixed_likelihood_counts_each_observed_column_once():
    lik = MixedLikelihood((1 + 3 + 2,), columns=["real", "categorical:3", "ordinal:3"])
    params = torch.randn(5, 2, 6)
    x = torch.tensor([[0.3, 0, 1, 0, 1, 0]]).repeat(5, 1)
    px = lik(params)
    per_column = px.base_dist.column_log_prob(x)  # (5, 3)
    assert torch.allclose(px.log_prob(x), per_column.sum(-1))
    from vaekit.core.distributions import Masked

    mask = torch.tensor([[1, 0, 0, 0, 1, 1]]).repeat(5, 1).float()  # the categorical column missing
    assert torch.allclose(Masked(px, mask).log_prob(x), per_column[:, 0] + per_column[:, 2])


@pytest.mark.parametrize("columns, message", [
    (["weird"], "unknown column type"),
    (["categorical"], "needs its number of levels"),
    (["real:3"], "takes no levels"),
    (["binary:3"], "binary column has 2 levels"),
    (["ordinal:1"], ">= 2"),
])
def test_bad_likelihood_columns(columns, message):
    with pytest.raises(ConfigError, match=message):
        parse_columns(columns)
    with pytest.raises(ConfigError, match="take 2 features"):
        MixedLikelihood((3,), columns=["real", "real"])


ROWS = [[f"{20 + i % 50}", f"{1.5 + (i % 7) * 0.25:.2f}", f"{i % 9}", ["red", "green", "blue"][i % 3],
         ["yes", "no"][i % 2], ["low", "mid", "high"][i % 3], f"id{i}"] for i in range(40)]
HEADER = ["age", "height", "visits", "colour", "smoker", "size", "id"]


def test_inference_chooses_each_type_and_refuses_an_id_column():
    with pytest.raises(DataError, match="different text in every row.*--types id=text"):
        infer_schema(HEADER, ROWS)
    schema = infer_schema(HEADER, ROWS, {"id": "text", "size": "ordinal:low<mid<high"})
    types = {c.name: c.type for c in schema.columns}
    assert types == {"age": "count", "height": "real", "visits": "count", "colour": "categorical",
                     "smoker": "binary", "size": "ordinal", "id": "text"}
    assert schema.columns[4].labels == ("no", "yes")  # the "no" of a binary column is level 0
    assert schema.columns[5].labels == ("low", "mid", "high")
    table = schema.describe()
    assert "ordinal" in table and "(given)" in table and "kept as it is" in table
    assert infer_schema(HEADER, ROWS, {"id": "text", "age": "positive"}).columns[0].type == "positive"


@pytest.mark.parametrize("types, error, message", [
    ({"nope": "real"}, ConfigError, "no column 'nope'"),
    ({"id": "text", "colour": "count"}, DataError, "not a number"),
    ({"id": "text", "colour": "binary"}, DataError, "3 distinct value"),
    ({"id": "text", "size": "ordinal:low<mid"}, DataError, "not one of its levels"),
    ({"id": "text", "size": "ordinal:low<low<high"}, ConfigError, "distinct"),
    ({"id": "text", "height": "count"}, DataError, "whole numbers"),
])
def test_bad_types_are_one_line_errors(types, error, message):
    with pytest.raises(error, match=message):
        infer_schema(HEADER, ROWS, types)


@pytest.mark.parametrize("spec, message", [("age", "NAME=TYPE"), ("age=wrong", "unknown type"),
                                           ("age=count,age=real", "twice"), ("age=count:3", "only ordinal")])
def test_bad_types_strings(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_types(spec)


HOSTILE = ('\ufeffage;"colour; shade";visits;note\r\n'
           '34;"red";3;"said ""hi"""\r\n'
           ';blue;;kept\r\n'
           '41; green ;NA;\r\n'
           '29;"";5;"line\nbreak"\r\n'
           '\r\n'
           '35;red;2;x\r\n'
           '50;blue;7;y\r\n'
           '38;green;1;z\r\n'
           '44;red;;w\r\n')


def test_cli_fills_every_type_and_keeps_every_other_byte(tmp_path, capsys):
    src = tmp_path / "hostile.csv"
    src.write_bytes(HOSTILE.encode())
    out = tmp_path / "filled.csv"
    assert main(["impute", str(src), "--out", str(out), "--epochs", "2", "--samples", "10", "--types",
                 "note=text", "--draws", "2"]) == 0
    printed = capsys.readouterr().out
    assert "categorical" in printed and "count" in printed and "kept as it is" in printed
    before, after = read_csv_text(src), read_csv_text(out)
    assert after.bom and after.text.count("\r\n") == before.text.count("\r\n")
    labels = {"red", " green ", "blue", "green"}
    filled = 0
    for row_in, row_out in zip(before.rows, after.rows):
        for j, ((value, s, e), (new, s2, e2)) in enumerate(zip(row_in, row_out)):
            if is_missing(value) and j in (0, 1, 2):
                filled += 1
                assert (new.strip() in labels) if j == 1 else (new.isdigit())  # a known label, a whole number
            else:
                assert before.text[s:e] == after.text[s2:e2]  # byte for byte, quotes and spaces included
    assert filled == 5
    for d in (1, 2):
        draw = read_csv_text(tmp_path / f"filled.draw{d}.csv")
        assert len(draw.rows) == len(before.rows)
    assert src.read_bytes() == HOSTILE.encode()


@pytest.mark.parametrize("text, message", [
    ('a,b\n"1,2\n', "no closing quote"),
    ("a,b\n1,2\n3\n", "row 3 has 1 cells"),
    ("a,b\n1,\x00\n", "NUL byte"),
    ("a,b\n,\n,\n", "no value in any row"),
    ("a,b\n1,x\n2,y\n", "no value in any modelled column") if False else ("a\n1\n", "no missing values"),
])
def test_hostile_csvs_are_one_line_errors(tmp_path, capsys, text, message):
    src = tmp_path / "bad.csv"
    src.write_bytes(text.encode())
    code = main(["impute", str(src), "--out", str(tmp_path / "o.csv"), "--epochs", "1"])
    captured = capsys.readouterr()
    if message == "no missing values":
        assert code == 0 and message in captured.out
        return
    assert code == 2
    err = captured.err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_binary_file_is_a_one_line_error(tmp_path, capsys):
    src = tmp_path / "bad.csv"
    src.write_bytes(b"\xff\xfe\x00binary")
    assert main(["impute", str(src), "--out", str(tmp_path / "o.csv")]) == 2
    assert "UTF-8" in capsys.readouterr().err


def test_show_types_prints_the_table_and_trains_nothing(tmp_path, capsys):
    src = tmp_path / "t.csv"
    src.write_text("a,b\n1,x\n2,\n3,y\n")
    assert main(["impute", str(src), "--show-types"]) == 0
    assert "binary" in capsys.readouterr().out
    assert not (tmp_path / "t.imputed.csv").exists()


def test_parse_csv_matches_the_csv_module():
    import csv
    import io

    text = 'a,"b ""q""",c\n"x\ny",,z\n\n1,2,3'
    assert [[v for v, _, _ in row] for row in parse_csv(text, ",")] == [
        r for r in csv.reader(io.StringIO(text)) if r]


def _frame(n=400, seed=0):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    return pd.DataFrame({
        "age": np.round(40 + 10 * z + rng.normal(size=n) * 2, 1),
        "visits": rng.poisson(np.exp(1 + 0.5 * z)),
        "colour": np.where(z > 0.5, "red", np.where(z < -0.5, "blue", "green")),
        "smoker": np.where(z > 0, "yes", "no"),
    })


def test_table_imputer_fills_a_dataframe_with_valid_values_better_than_the_mode():
    truth = _frame()
    rng = np.random.default_rng(1)
    hidden = rng.random(truth.shape) < 0.2
    holey = truth.mask(hidden)
    from vaekit.tabular import TableImputer

    imputer = TableImputer(epochs=40, samples=200, random_state=0)
    filled = imputer.fit_transform(holey)
    assert not filled.isna().any().any()
    assert set(filled["colour"]) <= {"red", "green", "blue"} and (filled["visits"] >= 0).all()
    assert (filled["visits"] == np.round(filled["visits"])).all()
    observed = ~hidden
    for j, column in enumerate(truth.columns):  # observed cells unchanged
        assert (filled[column][observed[:, j]].astype(str) == holey[column][observed[:, j]].astype(str)).all()
    colour = hidden[:, 2]
    error = (filled["colour"][colour] != truth["colour"][colour]).mean()
    mode_error = (truth["colour"][~colour].mode()[0] != truth["colour"][colour]).mean()
    assert error < mode_error - 0.2  # the model reads the other columns
    draws = imputer.sample_transform(holey.iloc[:50], n_draws=3)
    assert len(draws) == 3 and all(not d.isna().any().any() for d in draws)
    assert "categorical" in imputer.describe()


def test_table_anomaly_detector_names_the_column_that_made_a_row_unusual(tmp_path):
    train = _frame(600)
    test = _frame(100, seed=5)
    odd = np.arange(10)
    test.loc[odd, "colour"] = np.where(test.loc[odd, "age"] < 40, "red", "blue")  # against the age
    test.loc[odd[:5], "colour"] = "red"
    test.loc[odd[:5], "age"] = 20.0  # young and red: never seen together
    from vaekit.tabular import TableAnomalyDetector

    detector = TableAnomalyDetector(epochs=30, random_state=0).fit(train)
    scores = detector.decision_function(test)
    labels = np.zeros(100)
    labels[odd] = 1
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels, scores) > 0.8
    top = np.array(detector.column_names_)[detector.explain(test).argmax(1)]
    assert (np.isin(top[odd], ["colour", "age"])).mean() >= 0.8
    detector.save(tmp_path / "run")
    loaded = TableAnomalyDetector.load(tmp_path / "run")
    assert np.allclose(loaded.decision_function(test), scores)


def test_anomaly_cli_takes_a_mixed_csv(tmp_path, capsys):
    frame = _frame(300).assign(label=0)
    frame.loc[:9, "visits"] += 40
    frame.loc[:9, "label"] = 1
    src = tmp_path / "t.csv"
    frame.to_csv(src, index=False)
    run = tmp_path / "run"
    assert main(["anomaly", "fit", str(src), "--out", str(run), "--label-column", "label", "--epochs", "20"]) == 0
    assert "categorical" in capsys.readouterr().out
    assert main(["anomaly", "eval", str(run), str(src), "--label-column", "label"]) == 0
    assert "roc_auc" in capsys.readouterr().out
    assert main(["anomaly", "score", str(run), str(src), "--out", str(tmp_path / "s.csv")]) == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0].endswith("top_column") and sum(line.endswith(",visits") for line in lines[1:11]) >= 8
    assert main(["anomaly", "fit", str(src), "--out", str(tmp_path / "r2"), "--scaling", "standard"]) == 2
    assert main(["anomaly", "map", str(run), str(src)]) == 2


def test_structured_arrays_and_object_arrays_come_back_filled_as_their_own_kind():
    from vaekit.tabular import TableImputer

    rng = np.random.default_rng(0)
    n = 120
    z = rng.normal(size=n)
    colour = np.where(z > 0, "red", "blue").astype(object)
    size = np.round(10 + 3 * z, 2)
    size[::7] = np.nan
    colour[1::7] = None
    structured = np.array(list(zip(size, colour.astype(str))), dtype=[("size", "f8"), ("colour", "U8")])
    structured["colour"][1::7] = ""
    imputer = TableImputer(epochs=2, samples=20, random_state=0)
    out = imputer.fit_transform(structured)
    assert out.dtype == structured.dtype and not np.isnan(out["size"]).any()
    assert set(out["colour"]) <= {"red", "blue"}
    assert (out["size"][~np.isnan(structured["size"])] == structured["size"][~np.isnan(structured["size"])]).all()
    rows = np.array(list(zip(size, colour)), dtype=object)
    filled = TableImputer(epochs=2, samples=20, random_state=0).fit_transform(rows)
    assert filled.shape == rows.shape and all(v in ("red", "blue") for v in filled[:, 1])
    with pytest.raises(DataError, match="2-D"):
        TableImputer().fit([1, 2, 3])


def test_header_guess_and_no_header(tmp_path):
    from vaekit.tabular.schema import has_header

    assert has_header([["age", "colour"], ["3", "red"], ["4", "blue"]])
    assert not has_header([["3", "red"], ["4", "blue"], ["5", "red"]])
    assert has_header([["name", "colour"], ["x", "red"], ["y", "blue"]])  # text only: a header above rows
    src = tmp_path / "t.csv"
    src.write_text("1,red\n2,\n3,blue\n4,red\n,blue\n6,red\n")
    out = tmp_path / "o.csv"
    assert main(["impute", str(src), "--no-header", "--types", "1=real", "--out", str(out), "--epochs", "1",
                 "--samples", "5"]) == 0
    rows = read_csv_text(out).values()
    assert len(rows) == 6 and rows[1][1] in ("red", "blue") and rows[4][0] != ""
    assert [r[0] for r in rows[:4]] == ["1", "2", "3", "4"]  # an integer column written as integers


def test_the_score_is_the_sum_of_the_column_contributions_and_the_kl():
    from vaekit.tabular import TableAnomalyDetector
    from vaekit.tabular.frames import as_cells

    frame = _frame(200)
    detector = TableAnomalyDetector(epochs=2, random_state=0).fit(frame)
    cells = as_cells(frame.iloc[:20]).rows
    contributions, kl = detector._contributions(*detector._encode(cells, "X", 1))
    assert np.allclose(detector.decision_function(frame.iloc[:20]), contributions.sum(1) + kl)
    assert np.isfinite(kl).all() and contributions.shape == (20, 4)
    holey = frame.iloc[:20].copy()
    holey.iloc[0, 2] = None  # a missing cell contributes nothing
    assert detector.explain_cells(as_cells(holey).rows)[0, 2] == 0
