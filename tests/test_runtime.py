"""vaekit.core.runtime (device strings, memory limits) and --device on every command that runs a model.

There is no GPU here: the plumbing is checked by letting `cuda:1` pass the availability check and recording the
device that reaches `load_run` (or the training config), `--device cpu` runs every command end to end, and
`--device cuda` (this machine has none) is a one-line error with exit status 2 before anything is written.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import main
from vaekit.core import runtime
from vaekit.core.runtime import Runtime, parse_memory_limit
from vaekit.errors import ConfigError, VaekitError

TINY = ["--epochs", "1", "--no-progress", "--set", "model.network.hidden=[16]", "--latent-dim", "2"]
NO_CUDA = not torch.cuda.is_available()


# --- the runtime itself -----------------------------------------------------------------------------------------


def test_memory_limits_are_parsed_by_one_function(monkeypatch):
    assert parse_memory_limit("2G") == 2 * 2**30 and parse_memory_limit("512M") == 512 * 2**20
    assert parse_memory_limit("1000000") == 1_000_000
    monkeypatch.setenv("VAEKIT_MAX_MEMORY", "3M")
    assert parse_memory_limit(None) == 3 * 2**20  # none given: the memory budget
    with pytest.raises(ConfigError, match=r"data.memory_limit must be a size such as 2G.*got 'lots'"):
        parse_memory_limit("lots")
    with pytest.raises(ConfigError, match="data.memory_limit must be a size"):  # the config's check is the same
        vaekit.config.DataConfig(memory_limit="2 apples")
    with pytest.raises(ConfigError, match="memory_limit must be a size"):  # and so is the loader's
        vaekit.load_data("digits", memory_limit="-1")


def test_runtime_from_flags_and_from_config(monkeypatch):
    monkeypatch.setenv("VAEKIT_MAX_MEMORY", "64M")
    flags = Runtime.from_flags("cpu", threads=2)
    assert flags == Runtime(torch.device("cpu"), "float32", 2, 64 * 2**20)
    assert Runtime.from_flags("auto").device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    config = vaekit.RunConfig()
    config.train.precision, config.train.threads, config.data.memory_limit = "bfloat16", 3, "1G"
    from_config = Runtime.from_config(config)
    assert (from_config.device, from_config.precision, from_config.threads, from_config.memory_limit_bytes) == \
        (torch.device("cpu"), "bfloat16", 3, 2**30)
    with pytest.raises(AttributeError):  # frozen
        from_config.threads = 1  # type: ignore[misc]
    with pytest.raises(ConfigError, match="must be auto or a torch device"):
        Runtime.from_flags("tpu")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_an_unavailable_device_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--device 'cuda' is not available on this machine"):
        Runtime.from_flags("cuda")
    config = vaekit.RunConfig()
    with pytest.raises(ConfigError, match=r"--device 'cuda:0' is not available"):
        Runtime.from_config(config, device="cuda:0")  # a --device given takes train.device's place
    with pytest.raises(ConfigError, match=r"train.device 'cuda' is not available"):
        vaekit.config.TrainConfig(device="cuda")
    saved = vaekit.config.from_dict(vaekit.RunConfig, {"train": {"device": "cuda"}})  # a saved run stays readable
    assert saved.train.device == "cuda"


def test_the_config_keeps_its_device_names_and_the_runtime_imports_no_higher_module():
    from vaekit import config

    for name in ("check_device", "check_device_available", "resolve_device", "check_memory_limit", "DEVICE_TYPES"):
        assert hasattr(config, name)
    assert config.check_device_available is runtime.check_device_available  # one check, not a copy
    tree = ast.parse(Path(runtime.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
                and node.module is not None}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
                 and node.module is None for alias in node.names}
    assert imported <= {"errors", "limits", "typecheck"}, imported


def test_to_model_moves_data_to_the_models_device():
    model = torch.nn.Linear(2, 2).double()
    assert runtime.to_model(model, None) is None
    moved = runtime.to_model(model, np.zeros(3))
    assert torch.is_tensor(moved) and moved.device == runtime.device_of(model)


# --- --device on every command --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Tiny runs of each kind a command needs, and input files."""
    root = tmp_path_factory.mktemp("runtime")
    train = ["train", "--out"]
    assert main([*train, str(root / "image"), "--data", "digits", *TINY]) == 0
    assert main([*train, str(root / "conditional"), "--data", "digits", *TINY, "--set", "model.conditional=true"]) == 0
    assert main([*train, str(root / "text"), "--data", "toy-sentences", "--epochs", "1", "--no-progress",
                 "--latent-dim", "2", "--set", "model.network.embed_dim=8", "--set", "model.network.hidden=16",
                 "--set", "model.likelihood.embed_dim=8", "--set", "model.likelihood.hidden=16"]) == 0
    assert main([*train, str(root / "shapes"), "--data", "shapes-16", *TINY]) == 0
    digits = vaekit.load_data("digits").split("test")
    images = digits.x[:40, 0].numpy()  # (40, 8, 8) in [0, 1]
    np.savez(root / "images.npz", X=images, y=(digits.y[:40].numpy() == 0).astype(np.int64))
    np.save(root / "images.npy", images)
    assert main(["anomaly", "fit", str(root / "images.npz"), "--out", str(root / "anomaly"), "--epochs", "1"]) == 0
    table = np.random.default_rng(0).normal(size=(30, 3))
    table[::4, 1] = np.nan
    (root / "table.csv").write_text("a,b,c\n" + "\n".join(",".join("" if np.isnan(v) else f"{v:.3f}" for v in row)
                                                          for row in table) + "\n")
    assert main(["compress", str(root / "image"), str(root / "images.npy"), "--out", str(root / "images.vkz"),
                 "--lossy"]) == 0
    return {k.replace(".", "_"): str(root / k) for k in ("image", "conditional", "text", "shapes", "anomaly",
                                                          "images.npz", "images.npy", "table.csv", "images.vkz")}


# Each command that runs a model: its arguments (RUN folders and inputs from `runs`, outputs in OUT), and whether it
# trains (the device then reaches the training config) or loads a run folder (the device reaches load_run).
COMMANDS = {
    "train": (["train", "--data", "digits", *TINY, "--out", "{out}/run"], "train"),
    "eval": (["eval", "{image}", "--iw-samples", "2", "--limit", "20", "--out", "{out}/eval.json"], "load"),
    "sample": (["sample", "{image}", "-n", "4", "--out", "{out}/samples.png"], "load"),
    "reconstruct": (["reconstruct", "{image}", "-n", "4", "--out", "{out}/recon.png"], "load"),
    "quality": (["quality", "{image}", "-n", "20", "--out", "{out}/quality.json"], "load"),
    "latent embed": (["latent", "embed", "{image}", "--out", "{out}/latents.npz"], "load"),
    "latent plot": (["latent", "plot", "{image}", "--max-points", "100", "--out", "{out}/plot.png"], "load"),
    "latent traverse": (["latent", "traverse", "{image}", "--steps", "3", "--out", "{out}/traverse.png"], "load"),
    "latent interpolate": (["latent", "interpolate", "{image}", "--steps", "3", "--out", "{out}/interp.png"],
                           "load"),
    "latent cluster": (["latent", "cluster", "{image}", "--no-baselines", "--max-points", "200",
                        "--out", "{out}/clusters.json"], "load"),
    "latent arithmetic": (["latent", "arithmetic", "{image}", "--target", "1", "--out", "{out}/arith.png"], "load"),
    "serve": (["serve", "{image}", "--max-points", "50"], "load"),
    "report": (["report", "{image}", "--max-points", "50", "--out", "{out}/report.html"], "load"),
    "compress": (["compress", "{image}", "{images_npy}", "--lossy", "--out", "{out}/x.vkz"], "load"),
    "decompress": (["decompress", "{image}", "{images_vkz}", "--out", "{out}/x.npy"], "load"),
    "anomaly fit": (["anomaly", "fit", "{images_npz}", "--epochs", "1", "--out", "{out}/detector"], "train"),
    "anomaly score": (["anomaly", "score", "{anomaly}", "{images_npz}", "--out", "{out}/scores.csv"], "load"),
    "anomaly eval": (["anomaly", "eval", "{anomaly}", "{images_npz}", "--out", "{out}/eval.json"], "load"),
    "anomaly map": (["anomaly", "map", "{anomaly}", "{images_npz}", "-n", "2", "--out", "{out}/maps.png"], "load"),
    "anomaly surfaces": (["anomaly", "surfaces", "--n-train", "40", "--n-test", "60", "--size", "8", "--epochs", "1",
                          "--out", "{out}/surfaces"], "train"),
    "impute table": (["impute", "{table_csv}", "--epochs", "1", "--samples", "5", "--out", "{out}/filled.csv"],
                     "train"),
    "impute images": (["impute", "{image}", "-n", "2", "--samples", "5", "--out", "{out}/inpaint.png"], "load"),
    "style": (["style", "{conditional}", "--style", "0", "--content", "3", "--out", "{out}/style.png"], "load"),
    "text sample": (["sample", "{text}", "-n", "2", "--out", "{out}/samples.txt"], "load"),
    "text reconstruct": (["reconstruct", "{text}", "--text", "the cat sat", "--out", "{out}/recon.txt"], "load"),
    "text eval": (["eval", "{text}", "--iw-samples", "2", "--limit", "5", "--out", "{out}/eval.json"], "load"),
    "text interpolate": (["latent", "interpolate", "{text}", "--steps", "3", "--out", "{out}/interp.txt"], "load"),
    "disentangle": (["disentangle", "{shapes}", "--n", "60", "--no-progress", "--out", "{out}/dis.json"], "load"),
    "export": (["export", "{image}", "--format", "torchscript", "--out", "{out}/export"], "load"),
}


def argv_of(name: str, runs: dict, out: Path, device: str) -> list[str]:
    template, _ = COMMANDS[name]
    return [part.format(out=out, **runs) for part in template] + ["--device", device]


def test_every_command_with_a_run_argument_takes_device():
    """No command that loads a model is missing from COMMANDS (which would leave it untested)."""
    from vaekit.cli import build_parser

    tested = {" ".join(COMMANDS[name][0][:2]) if COMMANDS[name][0][0] in ("latent", "anomaly") else
              COMMANDS[name][0][0] for name in COMMANDS}
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = set()
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if getattr(a, "choices", None) and isinstance(a.choices, dict)]
        if nested:
            commands |= {f"{name} {action}" for action in nested[0].choices}
        else:
            commands.add(name)
    assert commands - tested == {"ls"}  # ls runs no model
    for name in tested:
        words = name.split()
        p = sub.choices[words[0]]
        if len(words) == 2:
            p = next(a for a in p._actions if isinstance(getattr(a, "choices", None), dict)).choices[words[1]]
        assert any("--device" in a.option_strings for a in p._actions), name


def _serve_without_blocking(monkeypatch):
    """`vaekit serve` builds the explorer and returns instead of serving forever."""
    if monkeypatch is not None:
        pytest.importorskip("starlette", reason="vaekit serve needs the serve extra")
        uvicorn = pytest.importorskip("uvicorn")
        monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_device_cpu_runs_every_command_end_to_end(name, runs, tmp_path, monkeypatch, capsys):
    if name == "serve":
        _serve_without_blocking(monkeypatch)
    seen = []
    from vaekit import io

    load_run = io.load_run

    def recording(*args, **kwargs):
        run = load_run(*args, **kwargs)
        seen.append(next(run.model.parameters()).device)
        return run

    monkeypatch.setattr(io, "load_run", recording)
    code = main(argv_of(name, runs, tmp_path, "cpu"))
    err = capsys.readouterr().err
    assert code == 0, err
    if COMMANDS[name][1] == "load":
        assert seen and all(d == torch.device("cpu") for d in seen)
    if name != "serve":
        assert any(tmp_path.iterdir()), "nothing written"


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("name", list(COMMANDS))
def test_an_unavailable_device_is_one_line_and_exit_2_before_any_work(name, runs, tmp_path, capsys):
    code = main(argv_of(name, runs, tmp_path, "cuda"))
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "--device" in err and "'cuda' is not available on this machine" in err, err
    assert not any(tmp_path.iterdir())  # nothing written


class Stop(VaekitError):
    """Ends a command once the device has been recorded."""


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_device_given_reaches_the_model(name, runs, tmp_path, monkeypatch, capsys):
    """--device cuda:1 (allowed here by a stand-in availability check) reaches load_run, or the training config of
    a command that trains; the command is stopped there, before anything runs on the missing device."""
    from vaekit import io
    from vaekit.apps import anomaly, imputer

    if name == "serve":
        _serve_without_blocking(monkeypatch)
    monkeypatch.setattr(runtime, "check_device_available", lambda value, path="train.device": None)
    monkeypatch.setattr(vaekit.config, "check_device_available", lambda value, path="train.device": None)
    seen = []

    def load_run(run_dir, weights=io.MODEL_FILE, device="cpu"):
        seen.append(torch.device(device))
        raise Stop("stopped at load_run")

    def fit(config, *args, **kwargs):
        seen.append(torch.device(config.train.device))
        raise Stop("stopped at fit")

    monkeypatch.setattr(io, "load_run", load_run)
    monkeypatch.setattr(anomaly, "fit", fit)
    monkeypatch.setattr(imputer, "fit", fit)
    from vaekit.tabular import anomaly as table_anomaly
    from vaekit.tabular import imputer as table_imputer

    monkeypatch.setattr(table_imputer, "fit", fit)
    monkeypatch.setattr(table_anomaly, "fit", fit)
    monkeypatch.setattr(vaekit, "fit", fit)
    assert main(argv_of(name, runs, tmp_path, "cuda:1")) == 2
    assert "stopped at " + ("fit" if COMMANDS[name][1] == "train" else "load_run") in capsys.readouterr().err
    assert seen == [torch.device("cuda:1")]


def test_a_bad_device_string_is_refused_by_the_parser(runs, tmp_path, capsys):
    assert main(["sample", runs["image"], "--device", "gpu", "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "argument --device: device must be auto or a torch device" in err and len(err.strip().splitlines()) == 1


def _train_device(run: Path) -> str:
    return json.loads((run / "config.json").read_text())["train"]["device"]


def test_train_device_sets_train_device_also_on_resume(tmp_path, capsys):
    """`train --device` is train.device (written to config.json, so the run records where it trained); --resume may
    move a run to another device, and an unavailable one is refused before the run folder is touched."""
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", *TINY, "--device", "cpu", "--out", str(run)]) == 0
    assert _train_device(run) == "cpu"
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress", "--device", "auto"]) == 0
    assert _train_device(run) == "auto"
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    if NO_CUDA:
        before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
        capsys.readouterr()
        assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--device" in err and "not available" in err, err
        assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before  # nothing written


def test_a_device_set_explicitly_wins_over_the_train_flag(tmp_path):
    """Like every flag of train, --device is an override placed before the --set ones: a --set of the same key
    comes later and wins."""
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", *TINY, "--device", "auto", "--set", "train.device=cpu",
                 "--out", str(run)]) == 0
    assert _train_device(run) == "cpu"


# --- threads ----------------------------------------------------------------------------------------------------


def test_the_runtime_applies_its_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        Runtime(torch.device("cpu"), threads=None).apply_threads()
        assert torch.get_num_threads() == 1  # None: torch's setting is left alone
        Runtime(torch.device("cpu"), threads=2).apply_threads()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("argv", [["latent", "embed", "{image}", "--threads", "3"],
                                  ["quality", "{image}", "--threads", "3"]], ids=["latent", "quality"])
def test_commands_apply_threads_through_the_runtime(argv, runs, tmp_path, monkeypatch, capsys):
    """--threads reaches torch through `Runtime.apply_threads`, the one place that sets it; the command is stopped
    there."""
    seen = []

    def apply_threads(self):
        seen.append(self.threads)
        raise Stop("stopped at apply_threads")

    monkeypatch.setattr(Runtime, "apply_threads", apply_threads)
    out = ["--out", str(tmp_path / ("z.npz" if argv[0] == "latent" else "q.json"))]
    assert main([part.format(**runs) for part in argv] + out) == 2
    assert "stopped at apply_threads" in capsys.readouterr().err
    assert seen == [3]


def test_no_command_sets_torch_threads_itself():
    commands = Path(vaekit.__file__).parent / "commands"
    calls = [f"{path.name}:{node.lineno}" for path in sorted(commands.glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Attribute) and node.attr == "set_num_threads"]
    assert calls == [], f"set threads with Runtime.apply_threads instead: {calls}"


class _Stat:
    """/proc/stat read twice: the CPU line of each read in turn (user nice system idle iowait irq softirq steal)."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)

    def read_text(self) -> str:
        return self.lines.pop(0) + "\ncpu0 0 0 0 0\n"


def test_openmp_threads_sleep_only_where_other_work_keeps_the_cpus_busy():
    from vaekit.core.openmp import busy_cpus, choose_wait_policy

    # 2 CPUs over 200 jiffies: 100 busy (one CPU-bound process) -> 1.0 busy CPU; 10 busy -> 0.1
    one_busy = ("cpu 100 0 0 100 0 0 0 0", "cpu 200 0 0 200 0 0 0 0")
    quiet = ("cpu 10 0 0 190 0 0 0 0", "cpu 20 0 0 380 0 0 0 0")
    assert busy_cpus(_Stat(*one_busy), seconds=0, cpus=2) == pytest.approx(1.0)
    assert busy_cpus(_Stat(*quiet), seconds=0, cpus=2) == pytest.approx(0.1)
    environ: dict[str, str] = {}
    assert choose_wait_policy(environ, _Stat(*quiet)) is None and environ == {}
    assert choose_wait_policy(environ, _Stat(*one_busy)) == "PASSIVE" and environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}  # the user's choice stays, busy or not
    assert choose_wait_policy(mine, _Stat(*one_busy)) is None and mine == {"OMP_WAIT_POLICY": "ACTIVE"}
    assert busy_cpus(_Stat("not a cpu line", "cpu 1 2")) is None  # unreadable: leave the setting alone
