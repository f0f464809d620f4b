"""Every value is checked where it enters: property tests of the config sections and of every numeric CLI flag.

(a) For every numeric key of the config sections, values across and beyond the key's declared range (nan, inf,
    huge ints, negatives, wrong types) either build a config holding exactly that value, or raise a ConfigError
    naming the key; never another exception, and never a value silently replaced by another. Three entry points:
    `from_dict` (files), `build_run_config` overrides (JSON text, as `--set` gives them) and attribute assignment.
(b) For each command and each numeric flag, out-of-range values exit non-zero with one line on stderr that names
    the flag, no traceback, before anything is loaded; in-range values of cheap commands run to the end.

Set VAEKIT_RANGE_COUNTS=FILE to get the number of cases tried per entry point (clean errors vs results) as JSON.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vaekit
from vaekit.cli import main
from vaekit.config import (MAX_SEED, DataConfig, ModelConfig, RunConfig, TrainConfig, build_run_config,
                           from_dict)
from vaekit.errors import ConfigError

COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    target = os.environ.get("VAEKIT_RANGE_COUNTS")
    if target:
        Path(target).write_text(json.dumps({k: dict(v) for k, v in sorted(COUNTS.items())}, indent=2) + "\n")


# --- (a) config sections ------------------------------------------------------------------------------------

SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _numeric_keys() -> list[tuple[str, str]]:
    keys = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            args = (hints[f.name], *typing.get_args(hints[f.name]))
            if int in args or float in args or list[int] in args:
                keys.append((section, f.name))
    return keys


NUMERIC_KEYS = _numeric_keys()
HUGE = [2**63, -(2**63) - 1, 2**64, 10**30, 10**400, 1e300, -1e300, 1e308]
SPECIAL = [0, -1, 1, -5, 0.0, -0.0, 0.5, 1.0, 0.999999, 2**32 - 1, 2**32, 2**63 - 1, 65536, 65537, 1024, 1025]

any_value = st.one_of(
    st.integers(-10, 10),
    st.integers(-(2**70), 2**70),
    st.sampled_from(HUGE + SPECIAL),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2.0, 2.0),
    st.sampled_from([None, True, False, "3", "nan", [], [1], [0, 2], {"a": 1}]),
    st.lists(st.integers(-3, 2**40), max_size=3),
)


def _valid(section: str, key: str, value) -> bool:
    """The oracle: is `value` in the range the brief gives for this key (independent of the config code)?"""
    nullable = key in ("limit", "epochs", "patience", "time_limit", "grad_clip", "threads", "event_shape",
                       "log_images_every")
    if value is None:
        return nullable
    if isinstance(value, bool):
        return False
    if key == "event_shape":
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 2**63 - 1
                                               for v in value)
    floats = {"lr", "weight_decay", "valid_fraction", "test_fraction", "time_limit", "grad_clip", "peer_timeout"}
    if key in floats:
        if not isinstance(value, (int, float)):
            return False
        try:
            number = float(value)
        except OverflowError:
            return False
        if isinstance(value, int) and (number != value or abs(value) > 2**63 - 1):  # not held exactly / > 64 bits
            return False
        value = number
        if not math.isfinite(value):
            return False
        if key in ("lr", "time_limit", "grad_clip"):
            return value > 0
        if key == "peer_timeout":  # minutes
            return 0.1 <= value <= 1440
        if key == "weight_decay":
            return value >= 0
        other = {"valid_fraction": 0.2, "test_fraction": 0.1}[key]  # the other fraction's default
        return 0 <= value < 1 and value + other < 1
    if not isinstance(value, int):
        return False
    lo, hi = {"limit": (1, None), "seed": (0, MAX_SEED), "latent_dim": (1, 65536), "num_classes": (0, 10**6),
              "epochs": (1, 1_000_000), "batch_size": (1, None), "patience": (1, None), "threads": (1, 1024),
              "max_len": (1, 10_000), "vocab_size": (5 if section == "data" else 0, 10**6), "workers": (0, 256),
              "log_images_every": (1, None)}[key]
    return lo <= value and (hi is None or value <= hi) and value <= 2**63 - 1


def _same(stored, given) -> bool:
    if isinstance(given, list):
        return stored == given
    return stored == given and type(stored) in (int, float, type(None))


def _json(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return {"inf": "Infinity", "-inf": "-Infinity"}.get(str(value), "NaN")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**300:
        return "1" + "0" * 400  # JSON text of more digits than Python converts to an int by default
    return json.dumps(value)


def _outcome(entry: str, section: str, key: str, value, build) -> None:
    try:
        config = build()
    except ConfigError as error:
        message = str(error)
        assert f"{section}.{key}" in message, message
        assert len(message.splitlines()) == 1, message
        COUNTS[entry]["clean error"] += 1
        if not (isinstance(value, int) and abs(value) > 10**300):
            assert not _valid(section, key, value), f"{section}.{key}={value!r} refused: {message}"
        return
    stored = getattr(getattr(config, section), key)
    assert _valid(section, key, stored), f"{section}.{key}={value!r} accepted as {stored!r}"
    assert _same(stored, value), f"{section}.{key}={value!r} stored as {stored!r}"
    COUNTS[entry]["correct result"] += 1


@pytest.mark.parametrize("section, key", NUMERIC_KEYS, ids=[f"{s}.{k}" for s, k in NUMERIC_KEYS])
@SETTINGS
@given(value=any_value)
def test_config_keys_from_files_and_assignment(section, key, value):
    _outcome("config: from_dict", section, key, value, lambda: from_dict(RunConfig, {section: {key: value}}))

    def assign():
        config = RunConfig()
        setattr(getattr(config, section), key, value)
        return config

    _outcome("config: attribute assignment", section, key, value, assign)
    _outcome("config: --set override", section, key, value,
             lambda: build_run_config(None, [f"{section}.{key}={_json(value)}"]))


@pytest.mark.parametrize("key", ["objective.beta", "objective.free_bits", "model.likelihood.sigma",
                                 "model.prior.components", "objective.warmup_epochs"])
@SETTINGS
@given(value=st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 10**400, 2**64, 1e400]),
                       st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)))
def test_plugin_options_refuse_nonfinite_and_huge_numbers(key, value):
    overrides = [f"{key}={_json(value)}"]
    if key == "model.prior.components":
        overrides.insert(0, "model.prior=mog")
    try:
        config = build_run_config(None, overrides)
    except ConfigError as error:
        assert key in str(error) and len(str(error).splitlines()) == 1, str(error)
        COUNTS["config: plug-in option override"]["clean error"] += 1
        return
    if isinstance(value, float):
        finite = math.isfinite(value)
    else:  # ints within 64 bits; given to a float option, one that a float holds exactly
        finite = abs(value) <= 2**63 - 1 and (key == "model.prior.components" or float(value) == value)
    assert finite, f"{key}={value!r} accepted"
    section, *path = key.split(".")
    node = getattr(config, section)
    for name in path[:-1]:
        node = getattr(node, name)
    assert getattr(node, path[-1]) == value  # kept as given (its range is checked when the plug-in is built)
    COUNTS["config: plug-in option override"]["correct result"] += 1


@SETTINGS
@given(device=st.one_of(st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "cuda:7", "mps", "bogus", "", "cpu:0", "cuda:-1",
                                         "meta", "xla", "CUDA", "gpu", "cuda:x"]), st.text(max_size=8)))
def test_device_must_exist_on_this_machine(device):
    import torch

    try:
        config = build_run_config(None, [f"train.device={json.dumps(device)}"])
    except ConfigError as error:
        assert "train.device" in str(error) and len(str(error).splitlines()) == 1, str(error)
        COUNTS["config: train.device"]["clean error"] += 1
        return
    from vaekit.config import resolve_device

    kind = torch.device(resolve_device(config.train.device)).type  # "auto": cuda when there is one, else cpu
    assert config.train.device == device
    assert kind == "cpu" or (kind == "cuda" and torch.cuda.is_available()), device
    COUNTS["config: train.device"]["correct result"] += 1


def test_a_saved_config_stays_readable_where_its_device_is_not():
    config = from_dict(RunConfig, {"train": {"device": "cuda:3"}})  # e.g. a run trained on a GPU machine
    assert config.train.device == "cuda:3"
    with pytest.raises(ConfigError, match="train.device 'bogus'|train.device must be"):
        from_dict(RunConfig, {"train": {"device": "bogus"}})


def test_fractions_summing_to_one_are_refused():
    with pytest.raises(ConfigError, match=r"data.valid_fraction \+ data.test_fraction must be below 1"):
        DataConfig(valid_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match=r"train.grad_clip must be > 0 \(or null\), got -1.0"):
        TrainConfig(grad_clip=-1)
    with pytest.raises(ConfigError, match="train.lr_schedule must be one of 'constant', 'cosine'"):
        vaekit.build_run_config(None, ["train.lr_schedule=linear"])


# --- (b) the command line -----------------------------------------------------------------------------------

RUN = "RUN"  # replaced by the tiny run folder (trained_run)
DATA = "digits"

# (command words, flag, kind, lo, hi, lo_open, hi_open); kind: int, float, ints (list), floats (list)
FLAGS = [
    (["train", "--out", "OUT"], "--epochs", "int", 1, None, False, False),
    (["train", "--out", "OUT"], "--batch-size", "int", 1, None, False, False),
    (["train", "--out", "OUT"], "--lr", "float", 0, None, True, False),
    (["train", "--out", "OUT"], "--latent-dim", "int", 1, 65536, False, False),
    (["train", "--out", "OUT"], "--beta", "float", 0, None, False, False),
    (["train", "--out", "OUT"], "--seed", "int", 0, MAX_SEED, False, False),
    (["eval", RUN], "--iw-samples", "int", 1, None, False, False),
    (["eval", RUN], "--limit", "int", 1, None, False, False),
    (["eval", RUN], "--n-samples", "int", 2, None, False, False),
    (["sample", RUN], "-n", "int", 1, None, False, False),
    (["sample", RUN], "--per-class", "int", 1, None, False, False),
    (["sample", RUN], "--seed", "int", 0, MAX_SEED, False, False),
    (["sample", RUN], "--label", "int", None, None, False, False),
    (["reconstruct", RUN], "-n", "int", 1, None, False, False),
    (["quality", RUN], "-n", "int", 2, None, False, False),
    (["quality", RUN], "--seed", "int", 0, MAX_SEED, False, False),
    (["quality", RUN], "--threads", "int", 1, 1024, False, False),
    (["report", RUN], "--seed", "int", 0, MAX_SEED, False, False),
    (["report", RUN], "--max-points", "int", 10, 100_000, False, False),
    (["disentangle", RUN], "--n", "int", 1, None, False, False),
    (["disentangle", RUN], "--seed", "int", 0, MAX_SEED, False, False),
    (["anomaly", "fit", DATA, "--out", "OUT"], "--contamination", "float", 0, 0.5, True, False),
    (["anomaly", "fit", DATA, "--out", "OUT"], "--epochs", "int", 1, None, False, False),
    (["anomaly", "fit", DATA, "--out", "OUT"], "--trim", "float", 0, 0.5, False, True),
    (["anomaly", "fit", DATA, "--out", "OUT"], "--latent-dim", "int", 1, 65536, False, False),
    (["anomaly", "fit", DATA, "--out", "OUT"], "--seed", "int", 0, MAX_SEED, False, False),
    (["anomaly", "map", RUN, DATA], "-n", "int", 1, None, False, False),
    (["anomaly", "surfaces", "--out", "OUT"], "--n-train", "int", 1, None, False, False),
    (["anomaly", "surfaces", "--out", "OUT"], "--n-test", "int", 2, None, False, False),
    (["anomaly", "surfaces", "--out", "OUT"], "--size", "int", 8, None, False, False),
    (["anomaly", "surfaces", "--out", "OUT"], "--epochs", "int", 1, None, False, False),
    (["anomaly", "surfaces", "--out", "OUT"], "--seed", "int", 0, MAX_SEED, False, False),
    (["impute", "table.csv"], "--samples", "int", 1, None, False, False),
    (["impute", "table.csv"], "--seed", "int", 0, MAX_SEED, False, False),
    (["impute", "table.csv"], "--epochs", "int", 1, None, False, False),
    (["impute", RUN], "-n", "int", 1, None, False, False),
    (["latent", "embed", RUN], "--samples", "int", 0, None, False, False),
    (["latent", "embed", RUN], "--seed", "int", 0, MAX_SEED, False, False),
    (["latent", "embed", RUN], "--threads", "int", 1, 1024, False, False),
    (["latent", "embed", RUN], "--max-points", "int", 1, None, False, False),
    (["latent", "plot", RUN], "--dims", "int", 2, 3, False, False),
    (["latent", "traverse", RUN], "--dims", "ints", 0, None, False, False),
    (["latent", "traverse", RUN], "--index", "int", None, None, False, False),
    (["latent", "traverse", RUN], "--span", "float", 0, None, True, False),
    (["latent", "traverse", RUN], "--steps", "int", 2, None, False, False),
    (["latent", "interpolate", RUN], "--steps", "int", 2, None, False, False),
    (["latent", "interpolate", RUN], "--grid-size", "int", 2, None, False, False),
    (["latent", "interpolate", RUN], "--grid-dims", "ints", 0, None, False, False),
    (["latent", "cluster", RUN], "--k", "int", 1, None, False, False),
    (["latent", "arithmetic", RUN], "--apply", "ints", None, None, False, False),
    (["latent", "arithmetic", RUN], "--strength", "floats", None, None, False, False),
    (["latent", "arithmetic", RUN], "--analogy", "ints", None, None, False, False),
]

INT64 = 2**63 - 1
junk = st.one_of(st.sampled_from(["", "x", "1.5", "1e3", "nan", "inf", "-inf", "NaN", "0x10", "1_000", "1,x",
                                  " ", "\n", "½", "1" * 5000]),
                 # ("--flag=--" is argparse's own quirk: it drops the "--" and takes the default)
                 st.text(max_size=6).filter(lambda t: _as_int(t) is None and t != "--"))


def _as_int(text: str):
    try:
        return int(text)
    except ValueError:
        return None


def _bad_numbers(kind: str, lo, hi, lo_open: bool, hi_open: bool):
    """Strategies of text that is not a valid value of the flag."""
    if kind in ("int", "ints"):
        parts = [junk, st.integers(INT64 + 1, 2**80).map(str), st.integers(-(2**80), -INT64 - 1).map(str)]
        if lo is not None:
            parts.append(st.integers(-(2**40), lo - 1).map(str))
        if hi is not None:
            parts.append(st.integers(hi + 1, INT64).map(str))
    else:
        parts = [st.sampled_from(["nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "x", "", "1,x", "0x1"])]
        if lo is not None:
            below = st.floats(max_value=lo, allow_nan=False, allow_infinity=False, exclude_max=not lo_open)
            parts.append(below.map(repr))
        if hi is not None:
            above = st.floats(min_value=hi, allow_nan=False, allow_infinity=False, exclude_min=not hi_open)
            parts.append(above.map(repr))
    bad = st.one_of(*parts)
    if kind in ("ints", "floats"):  # one bad entry among good ones
        good = "0" if lo is None or lo <= 0 else str(lo)
        bad = st.one_of(bad, st.tuples(bad, st.integers(0, 2)).map(lambda t: ",".join([good] * t[1] + [t[0]])))
    return bad


def _argv(words, flag, value, run: Path, tmp: Path) -> list[str]:
    argv = [str(run) if w == RUN else str(tmp / "out") if w == "OUT" else str(tmp / w) if w == "table.csv" else w
            for w in words]
    joined = f"{flag}={value}" if flag.startswith("--") else f"{flag}{value}"
    return argv + [joined]


def _flag_id(entry) -> str:
    return " ".join(w for w in entry[0] if w not in (RUN, "OUT", DATA, "--out", "table.csv")) + " " + entry[1]


@pytest.mark.parametrize("entry", FLAGS, ids=[_flag_id(e) for e in FLAGS])
def test_out_of_range_flags_get_one_line_errors(entry, trained_run, tmp_path, capsys):
    words, flag, kind, lo, hi, lo_open, hi_open = entry

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    @given(value=_bad_numbers(kind, lo, hi, lo_open, hi_open))
    def check(value):
        argv = _argv(words, flag, value, trained_run, tmp_path)
        code = main(argv)
        out, err = capsys.readouterr()
        assert code != 0, (argv, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and flag in lines[0] and "Traceback" not in err, (argv, err)
        assert not (tmp_path / "out").exists()  # refused before anything was written
        COUNTS[f"cli: {_flag_id(entry)}"]["clean error"] += 1

    check()


def _test_size() -> int:
    return len(vaekit.load_data("digits").split("test"))


CHEAP = [  # in-range values of cheap commands run to the end and use the value as given
    (["sample", RUN, "--out", "OUT.npy"], "-n", st.integers(1, 20)),
    (["sample", RUN, "--out", "OUT.npy", "-n", "2"], "--seed", st.sampled_from([0, 1, MAX_SEED])),
    (["reconstruct", RUN, "--out", "OUT.png"], "-n", st.integers(1, 400)),
    (["eval", RUN, "--out", "OUT.json", "--iw-samples", "2"], "--limit", st.integers(1, 400)),
    (["latent", "traverse", RUN, "--out", "OUT.npy", "--max-points", "50"], "--steps", st.integers(2, 12)),
    (["latent", "cluster", RUN, "--out", "OUT.json", "--no-baselines", "--methods", "kmeans"], "--k",
     st.integers(1, 12)),
]


@pytest.mark.parametrize("entry", CHEAP, ids=[f"{e[0][0]} {e[1]}" for e in CHEAP])
def test_in_range_flags_run(entry, trained_run, tmp_path, capsys):
    words, flag, values = entry

    @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
    @given(value=values)
    def check(value):
        argv = [str(trained_run) if w == RUN else str(tmp_path / ("out" + w[3:])) if w.startswith("OUT") else w
                for w in words] + [flag, str(value), "--force"]
        code = main(argv)
        _, err = capsys.readouterr()
        assert code == 0, (argv, err)
        if words[0] == "sample" and flag == "-n":
            import numpy as np

            assert np.load(tmp_path / "out.npy").shape[0] == value  # -n as given
        if words[0] == "eval":  # --limit: at most this many examples of the split
            assert json.loads((tmp_path / "out.json").read_text())["n"] == min(value, _test_size())
        COUNTS[f"cli in range: {words[0]} {flag}"]["correct result"] += 1

    check()


@pytest.mark.parametrize("argv, match", [
    (["train", "--data", "digits", "--epochs", "9223372036854775807"], "--epochs: must be an integer in [1, 1000000]"),
    (["impute", "t.csv", "--out", "o.csv", "--epochs", "100000000000"], "--epochs: must be an integer in [1, 1000000]"),
    (["anomaly", "fit", "t.csv", "--out", "r", "--epochs", "100000000000"], "--epochs: must be an integer in [1,"),
    (["train", "--data", "digits", "--set", "model.network.hidden=" + str([1] * 100_000)], "at most 100 are allowed"),
])
def test_unbounded_work_is_refused_where_it_enters(argv, match, tmp_path, capsys, monkeypatch):
    """Numbers that would run for ever (epochs near 2^63, 1e11; 100,000 layers) are refused before any work."""
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())  # nothing written


def test_estimators_refuse_an_unbounded_number_of_epochs():
    import numpy as np

    from vaekit.apps import VAEAnomalyDetector
    from vaekit.errors import ConfigError

    with pytest.raises(ConfigError, match="epochs must be in"):
        VAEAnomalyDetector(epochs=10**11).fit(np.random.default_rng(0).normal(size=(40, 3)))
