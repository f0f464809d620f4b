"""Every core CLI command end to end on digits, and a one-line error (never a traceback) for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.cli import main

TINY = ["--epochs", "2", "--no-progress", "--set", "model.network.hidden=[32]", "--latent-dim", "3"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--data", "digits", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_a_complete_run_folder(cli_run):
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "checkpoints/last.safetensors",
                 "samples.png", "reconstructions.png", "curves.png"):
        assert (cli_run / name).is_file(), name
    config = json.loads((cli_run / "config.json").read_text())
    assert config["model"]["latent_dim"] == 3 and config["model"]["network"]["hidden"] == [32]
    assert config["model"]["event_shape"] == [1, 8, 8]
    with Image.open(cli_run / "samples.png") as image:
        assert image.size[0] > 100


def test_eval_prints_a_table_and_writes_json(cli_run, capsys):
    code, out, _ = run_cli(capsys, "eval", cli_run, "--iw-samples", "20", "--limit", "40")
    assert code == 0
    assert "NLL (IWAE, k=20)" in out and "active units" in out
    result = json.loads((cli_run / "eval.json").read_text())
    assert result["n"] == 40 and result["iw_samples"] == 20
    assert np.isfinite(result["nll"]) and result["bits_per_dim"] > 0


def test_sample_and_reconstruct_write_images(cli_run, tmp_path, capsys):
    assert run_cli(capsys, "sample", cli_run, "-n", "9", "--out", tmp_path / "grid.png")[0] == 0
    assert run_cli(capsys, "reconstruct", cli_run, "--out", tmp_path / "recon.png", "-n", "8")[0] == 0
    assert run_cli(capsys, "sample", cli_run, "-n", "5", "--out", tmp_path / "s.npy")[0] == 0
    assert np.load(tmp_path / "s.npy").shape == (5, 64)
    for name in ("grid.png", "recon.png"):
        with Image.open(tmp_path / name) as image:
            image.verify()


def test_existing_output_is_never_overwritten(cli_run, tmp_path, capsys):
    target = tmp_path / "mine.png"
    target.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "sample", cli_run, "--out", target)
    assert code != 0 and "already exists" in err
    assert target.read_bytes() == b"precious"
    assert run_cli(capsys, "sample", cli_run, "--out", target, "--force")[0] == 0


def test_resume_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "--out", out, *TINY)[0] == 0
    code, stdout, _ = run_cli(capsys, "train", "--out", out, "--resume", "--epochs", "3", "--no-progress")
    assert code == 0 and "epochs: 3" in stdout
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_ls_lists_every_registry(capsys):
    code, out, _ = run_cli(capsys, "ls")
    assert code == 0
    for expected in ("datasets:", "digits", "likelihoods:", "bernoulli", "priors:", "normal", "networks:", "conv",
                     "objectives:", "iwae"):
        assert expected in out


def test_train_from_a_toml_config(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[model]\nlatent_dim = 2\n[model.network]\nname = "conv"\nchannels = [4]\n'
                      '[train]\nepochs = 1\nprogress = false\n')
    code, _, err = run_cli(capsys, "train", "--config", config, "--out", tmp_path / "r")
    assert code == 0, err
    network = json.loads((tmp_path / "r" / "config.json").read_text())["model"]["network"]
    assert network == {"name": "conv", "channels": [4], "dense": 256, "activation": "relu"}  # defaults recorded


@pytest.mark.parametrize("flags, message", [
    (["--set", "objective.name=iwae", "--set", "objective.beta=4"], "objective 'iwae' takes no option 'beta'"),
    (["--set", "objective.k=50"], "objective 'elbo' takes no option 'k'"),
    (["--network", "conv", "--set", "model.network.hidden=[8]"], "network 'conv' (model.network) takes no option"),
    (["--set", "model.prior.components=3"], "prior 'normal' (model.prior) takes no option 'components'"),
    (["--likelihood", "bernoulli", "--set", "model.likelihood.sigma=0.5"], "takes no option 'sigma'"),
    (["--set", "model.hidden=[8]"], "it is now model.network.hidden"),
])
def test_an_option_the_chosen_plugin_does_not_take_is_refused(tmp_path, capsys, flags, message):
    code, _, err = run_cli(capsys, "train", "--data", "digits", "--epochs", "1", "--no-progress", *flags,
                           "--out", tmp_path / "r")
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing was written


def _bad_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


BAD_TRAIN_INPUTS = {
    "unknown data set": (["--data", "no-such-set"], "no-such-set"),
    "unknown likelihood": (["--likelihood", "poisson"], "unknown likelihood 'poisson'"),
    "unknown network": (["--network", "transformer"], "unknown network"),
    "wrong type": (["--set", "model.latent_dim=many"], "must be int"),
    "unknown key": (["--set", "model.latent_size=3"], "unknown config key 'model.latent_size'"),
    "missing data folder": (["--data", "mnist", "--data-root", "/nonexistent/folder"], "mnist"),
    "bad latent size": (["--latent-dim", "0"], "argument --latent-dim: must be an integer in [1, 65536]"),
    "conv on tabular": (["--data", "CSV:1,2\n3,4\n5,6\n7,8\n", "--network", "conv"], "needs images"),
    "NaN in data": (["--data", "CSV:1,2\nnan,4\n5,6\n7,8\n"], "non-finite"),
    "empty data": (["--data", "CSV:"], "empty"),
    "missing config file": (["--config", "/nonexistent.toml"], "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN_INPUTS))
def test_bad_train_input_gets_a_one_line_error(case, tmp_path, capsys):
    args, expected = BAD_TRAIN_INPUTS[case]
    args = [str(_bad_csv(tmp_path, a[4:])) if str(a).startswith("CSV:") else a for a in args]
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", *args, "--out", out, "--epochs", "1", "--no-progress")
    assert code != 0
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()  # a failed start leaves nothing behind


def test_bad_run_folders_get_one_line_errors(tmp_path, cli_run, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(cli_run, broken)
    (broken / "model.safetensors").write_bytes(b"\x00\x01 not a checkpoint")
    bad_config = tmp_path / "bad_config"
    shutil.copytree(cli_run, bad_config)
    (bad_config / "config.json").write_text('{"model": {"latent_dim": "x"}}')
    cases = [
        (["eval", tmp_path / "missing"], "does not exist"),
        (["eval", tmp_path], "not a run folder"),
        (["sample", broken], "unreadable or truncated"),
        (["sample", bad_config], "must be int"),
        (["sample", cli_run, "-n", "0"], "argument -n: must be an integer >= 1"),
        (["sample", cli_run, "--label", "3", "--out", tmp_path / "x.png"], "conditional model"),
        (["eval", cli_run, "--split", "nope"], "no 'nope' split"),
        (["train", "--resume"], "--resume needs --out"),
    ]
    for argv, expected in cases:
        code, _, err = run_cli(capsys, *argv)
        assert code != 0, argv
        assert expected in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_runs_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vaekit.cli", "eval", str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"vaekit eval: error: run folder '{tmp_path / 'nope'}' does not exist"


def test_python_dash_m_vaekit_is_the_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vaekit", "eval", str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"vaekit eval: error: run folder '{tmp_path / 'nope'}' does not exist"


def test_eval_with_sample_quality_and_without_factors(cli_run, tmp_path, capsys):
    out = tmp_path / "e.json"
    code, stdout, err = run_cli(capsys, "eval", cli_run, "--skip-likelihood", "--samples", "--n-samples", "200",
                                "--out", out)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert "nll" not in report and report["samples"]["n_samples"] == 200
    assert "KL(hist || data)" in stdout
    code, _, err = run_cli(capsys, "eval", cli_run, "--skip-likelihood", "--disentanglement", "--out", tmp_path / "d")
    assert code == 2 and "no generative factors" in err and len(err.strip().splitlines()) == 1



def test_eval_samples_skips_the_likelihood_unless_asked(cli_run, tmp_path, capsys):
    # Sample quality alone is quick; the importance-sampled NLL over a test set takes minutes: it runs next to
    # --samples only when asked for (--likelihood, or an --iw-samples of one's own).
    code, _, err = run_cli(capsys, "eval", cli_run, "--samples", "--n-samples", "100", "--out", tmp_path / "a.json")
    assert code == 0 and "add --likelihood" in err
    report = json.loads((tmp_path / "a.json").read_text())
    assert "nll" not in report and report["samples"]["n_samples"] == 100
    code, _, err = run_cli(capsys, "eval", cli_run, "--samples", "--n-samples", "100", "--likelihood",
                           "--iw-samples", "5", "--out", tmp_path / "b.json")
    assert code == 0, err
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["iw_samples"] == 5 and "nll" in report and "samples" in report
    code, _, err = run_cli(capsys, "eval", cli_run, "--skip-likelihood", "--iw-samples", "5", "--out", tmp_path / "c")
    assert code != 0 and "contradicts" in err and len(err.strip().splitlines()) == 1


def test_parsing_a_command_line_imports_nothing_heavy():
    # `vaekit --help` and every command's argument parsing build the parser from light modules only: scikit-learn,
    # SciPy's statistics, matplotlib and UMAP load when a command uses them, not to read its flags.
    code = ("import sys\nfrom vaekit import cli\n"
            "for argv in (['--help'], ['sample', '--help'], ['anomaly', 'fit', '--help'], ['latent', 'plot', '--help']):\n"
            "    try:\n        cli.main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('sklearn', 'scipy.stats', 'matplotlib', 'umap') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]


def test_a_command_failing_half_way_leaves_none_of_its_files(trained_run, tmp_path, capsys, monkeypatch):
    """`latent cluster` writes a confusion figure per method, then its report: when the report's write fails,
    the figures written before it are removed too (a file that was there before is kept)."""
    import vaekit.io
    from vaekit.cli import main
    from vaekit.errors import DataError

    kept = tmp_path / "unrelated.txt"
    kept.write_text("the user's")

    def failing_write(path, text):
        raise DataError("disk full (simulated)")

    monkeypatch.setattr(vaekit.io, "atomic_write_text", failing_write)  # the report, written after the figures
    code = main(["latent", "cluster", str(trained_run), "--k", "10", "--methods", "kmeans,gmm",
                 "--out", str(tmp_path / "c.json"), "--max-points", "200"])
    assert code == 2 and "disk full" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated.txt"]
