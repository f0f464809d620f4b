"""The command line on a text run (the toy corpus): train, sample, reconstruct, interpolate, eval and the latent
commands; bad input gets a one-line error, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaekit.cli import main

TINY_TEXT = ["--epochs", "2", "--no-progress", "--latent-dim", "4", "--set", "model.network.embed_dim=16",
             "--set", "model.network.hidden=16", "--set", "model.likelihood.embed_dim=16",
             "--set", "model.likelihood.hidden=32", "--set", "train.threads=1"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("text-cli") / "run"
    assert main(["train", "--data", "toy-sentences", "--out", str(out), *TINY_TEXT]) == 0
    return out


def test_train_writes_the_vocabulary_and_text_outputs(text_run):
    for name in ("config.json", "model.safetensors", "vocab.json", "samples.txt", "reconstructions.txt", "curves.png"):
        assert (text_run / name).is_file(), name
    config = json.loads((text_run / "config.json").read_text())
    assert config["model"]["network"]["name"] == "rnn" and config["model"]["likelihood"]["name"] == "sentence"
    assert config["model"]["vocab_size"] == 63 and config["model"]["event_shape"] == [102]
    record = json.loads((text_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert "valid_mutual_info" in record and "active_units" in record
    assert "# z ~ p(z), decoded greedily" in (text_run / "samples.txt").read_text()


def test_sample_prints_sentences_by_every_strategy(text_run, capsys, tmp_path):
    for extra in ([], ["--strategy", "greedy"], ["--strategy", "beam", "--beam-size", "3"], ["--top-p", "0.9"],
                  ["--temperature", "0.5"]):
        out = tmp_path / f"s{len(extra)}{extra[-1] if extra else ''}.txt"
        code, stdout, _ = run_cli(capsys, "sample", text_run, "-n", "4", "--out", out, *extra)
        assert code == 0
        lines = stdout.strip().splitlines()
        assert len(lines) == 5 and lines[-1] == f"wrote {out}"
        assert out.read_text().splitlines() == lines[:4]


def test_reconstruct_and_interpolate_sentences(text_run, capsys, tmp_path):
    code, stdout, _ = run_cli(capsys, "reconstruct", text_run, "--text", "the dog slept .", "--text", "a cat ran .",
                              "--out", tmp_path / "r.txt")
    assert code == 0 and "  the dog slept ." in stdout and stdout.count("→ ") == 2
    code, stdout, _ = run_cli(capsys, "reconstruct", text_run, "-n", "3", "--out", tmp_path / "r3.txt")
    assert code == 0 and stdout.count("→ ") == 3
    code, stdout, _ = run_cli(capsys, "latent", "interpolate", text_run, "--a", "the dog slept .", "--b", "0",
                              "--steps", "4", "--out", tmp_path / "i.txt")
    assert code == 0 and "# linear" in stdout and "# slerp" in stdout and "1.00  " in stdout
    assert "a: the dog slept ." in (tmp_path / "i.txt").read_text()
    assert "t = 0.00 and t = 1.00 are the model's reconstructions of a and b" in stdout


def test_eval_reports_perplexity_and_reconstruction_scores(text_run, capsys, tmp_path):
    code, stdout, _ = run_cli(capsys, "eval", text_run, "--iw-samples", "5", "--limit", "20", "--out",
                              tmp_path / "e.json")
    assert code == 0
    for row in ("perplexity per word", "perplexity per token", "bits/token", "mutual information",
                "reconstruction BLEU-4", "reconstruction token accuracy"):
        assert row in stdout, row
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["perplexity_word"] > 1 and report["words"] > 0 and "reconstruction" in report


def test_latent_embed_plot_cluster_and_analogy_work_on_text(text_run, capsys, tmp_path):
    assert run_cli(capsys, "latent", "embed", text_run, "--out", tmp_path / "z.npz")[0] == 0
    assert run_cli(capsys, "latent", "plot", text_run, "--method", "pca", "--out", tmp_path / "p.png")[0] == 0
    assert run_cli(capsys, "latent", "cluster", text_run, "--k", "2", "--out", tmp_path / "c.json")[0] == 0
    code, stdout, _ = run_cli(capsys, "latent", "arithmetic", text_run, "--analogy", "0,1,2", "--out",
                              tmp_path / "a.txt")
    assert code == 0 and "a - b + c: " in stdout


@pytest.mark.parametrize("argv, message", [
    (["sample", "{text}", "--out", "{tmp}/s.png"], "a text run writes sentences"),
    (["sample", "{text}", "--label", "1"], "--label, --per-class and --draw apply to image"),
    (["sample", "{text}", "--strategy", "greedy", "--temperature", "2"], "apply to strategy 'sample'"),
    (["sample", "{text}", "--top-p", "1.5"], "--top-p"),
    (["reconstruct", "{text}", "--text", "   "], "sentence 1 is empty"),
    (["reconstruct", "{text}", "--text", "a b", "--strategy", "sample"], "decode greedily or by beam search"),
    (["latent", "interpolate", "{text}", "--a", "the dog", "--b", "99999"], "out of range"),
    (["latent", "interpolate", "{text}", "--grid"], "--grid and --label apply to image runs"),
    (["latent", "traverse", "{text}"], "its codes decode to sentences"),
    (["latent", "arithmetic", "{text}", "--target", "1"], "use --analogy"),
    (["sample", "{image}", "--strategy", "beam"], "apply to text runs"),
    (["reconstruct", "{image}", "--text", "a sentence"], "--text apply to text runs"),
    (["train", "--data", "toy-sentences", "--network", "mlp", "--out", "{tmp}/x"], "does not read sentences"),
    (["train", "--data", "digits", "--network", "rnn", "--out", "{tmp}/y"], "is not text"),
    (["train", "--data", "{tmp}/empty.txt", "--out", "{tmp}/z"], "is empty"),
    (["train", "--data", "{tmp}/latin1.txt", "--out", "{tmp}/w"], "not UTF-8"),
])
def test_bad_text_input_is_one_line(text_run, trained_run, capsys, tmp_path, argv, message):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 ol\u00e9\n".encode("latin-1"))
    argv = [a.format(text=text_run, image=trained_run, tmp=tmp_path) for a in argv]
    code, stdout, stderr = run_cli(capsys, *argv)
    assert code != 0
    assert message in stderr and "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
