"""`vaekit export` and `vaekit.export.export_model`: the exported graphs give the model's outputs, export.json
describes the files, and what cannot be exported is refused in one line with nothing written."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from conftest import tiny_text_config

import vaekit
from vaekit.cli import main
from vaekit.export import MANIFEST_FILE, export_model
from vaekit.io import save_config, save_model

BATCHES = (1, 7)  # neither is the batch size the graphs were traced with


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def model_config(*overrides: str, event_shape=(1, 8, 8), num_classes: int = 0) -> vaekit.RunConfig:
    """A run config for digits-shaped data, resolved by hand (no data set read)."""
    small = [] if any(o.startswith("model.network") for o in overrides) else ["model.network.hidden=[16]"]
    config = vaekit.build_run_config(None, ["model.latent_dim=3", *small, *overrides])
    config.model.event_shape, config.model.num_classes = list(event_shape), num_classes
    return config


def untrained_run(folder: Path, config: vaekit.RunConfig) -> Path:
    """A run folder holding an untrained model of `config` (the exports are compared with it, trained or not)."""
    model = vaekit.build_model(config.model, training=False)
    folder.mkdir(parents=True)
    save_config(folder, config)
    save_model(folder / "model.safetensors", model)
    return folder


def conditional_conv() -> tuple[vaekit.VAE, vaekit.RunConfig]:
    """A conditional VAE with the conv network and a Gaussian whose scale the decoder predicts."""
    config = model_config("model.network=conv", "model.network.channels=[4,8]", "model.network.dense=16",
                          "model.likelihood=gaussian-hetero", "model.conditional=true", num_classes=10)
    torch.manual_seed(1)
    return vaekit.build_model(config.model, training=False).eval(), config


@pytest.fixture(scope="module")
def exports(tmp_path_factory, trained_run) -> dict[str, tuple[vaekit.VAE, Path]]:
    """(model, export folder) per case: the trained digits run through the CLI (ONNX), a conditional conv model in
    both formats, and an 8-bit (discretized logistic) model in TorchScript."""
    root = tmp_path_factory.mktemp("exports")
    cases = {}
    if _has_onnx():
        assert main(["export", str(trained_run), "--out", str(root / "run-onnx")]) == 0
        cases["run-onnx"] = (vaekit.load(trained_run), root / "run-onnx")
    model, config = conditional_conv()
    for fmt in ("onnx", "torchscript") if _has_onnx() else ("torchscript",):
        export_model(model, root / f"conv-{fmt}", fmt, config=config.model)
        cases[f"conv-{fmt}"] = (model, root / f"conv-{fmt}")
    config = model_config("model.likelihood=discretized-logistic", "model.likelihood.n_mix=2", "model.prior=mog")
    logistic = vaekit.build_model(config.model, training=False).eval()
    export_model(logistic, root / "logistic-torchscript", "torchscript", config=config.model)
    cases["logistic-torchscript"] = (logistic, root / "logistic-torchscript")
    return cases


def _has_onnx() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))


# The parameters of p(x|z) that each case's likelihood holds (bernoulli; gaussian-hetero; discretized-logistic).
LIKELIHOOD_PARAMETERS = {"run-onnx": ["logits"], "conv-onnx": ["loc", "scale"], "conv-torchscript": ["loc", "scale"],
                         "logistic-torchscript": ["logits", "loc", "log_scale"]}


def expected_outputs(model: vaekit.VAE, case: str, what: str, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """What vaekit computes for a graph's inputs: q(z|x)'s loc and scale, or p(x|z)'s parameters and mean."""
    with torch.no_grad():
        if what == "encoder":
            qz = model.encode(inputs["x"], inputs.get("y"))
            return [qz.base_dist.loc, qz.base_dist.scale]
        px = model.decode(inputs["z"], inputs.get("y"))
        return [getattr(px.base_dist, name) for name in LIKELIHOOD_PARAMETERS[case]] + [px.mean]


def random_inputs(model: vaekit.VAE, what: str, batch: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch)
    if what == "encoder":
        inputs = {"x": torch.rand((batch, *model.event_shape), generator=generator)}
    else:
        inputs = {"z": torch.randn((batch, model.latent_dim), generator=generator)}
    if model.conditional:
        inputs["y"] = torch.randint(0, model.num_classes, (batch,), generator=generator)
    return inputs


def run_file(path: Path, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The outputs of an exported file, run by onnxruntime or torch.jit.load as its suffix says."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return [torch.from_numpy(v) for v in session.run(None, {k: v.numpy() for k, v in inputs.items()})]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in favour of torch.export
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return list(module(*inputs.values()))


@pytest.mark.parametrize("case", ["run-onnx", "conv-onnx", "conv-torchscript", "logistic-torchscript"])
@pytest.mark.parametrize("what", ["encoder", "decoder"])
def test_exported_graphs_give_the_models_outputs(exports, case, what):
    if case not in exports:
        pytest.importorskip("onnxruntime", reason="ONNX export needs the export extra")
    model, folder = exports[case]
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    path = folder / manifest["graphs"][what]["file"]
    for batch in BATCHES:
        inputs = random_inputs(model, what, batch)
        got, want = run_file(path, inputs), expected_outputs(model, case, what, inputs)
        assert len(got) == len(want)
        for have, expected in zip(got, want):
            assert have.shape == expected.shape and have.shape[0] == batch
            torch.testing.assert_close(have, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", ["run-onnx", "conv-onnx", "conv-torchscript", "logistic-torchscript"])
def test_the_manifest_describes_the_files(exports, case):
    if case not in exports:
        pytest.importorskip("onnxruntime", reason="ONNX export needs the export extra")
    model, folder = exports[case]
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MANIFEST_FILE, manifest["graphs"]["encoder"]["file"], manifest["graphs"]["decoder"]["file"]])
    assert manifest["model"]["event_shape"] == list(model.event_shape)
    assert manifest["model"]["latent_dim"] == model.latent_dim
    assert manifest["model"]["conditional"] == model.conditional
    labels = ["y"] if model.conditional else []
    for what, first in (("encoder", "x"), ("decoder", "z")):
        graph = manifest["graphs"][what]
        assert [t["name"] for t in graph["inputs"]] == [first, *labels]
        parameters = manifest["posterior" if what == "encoder" else "likelihood"]["parameters"]
        assert [t["name"] for t in graph["outputs"]] == parameters + (["mean"] if what == "decoder" else [])
        inputs = random_inputs(model, what, 5)
        outputs = run_file(folder / graph["file"], inputs)
        for spec, value in zip(graph["inputs"], inputs.values()):
            assert spec["shape"] == ["batch", *value.shape[1:]] and spec["dtype"] == str(value.dtype)[6:]
        for spec, value in zip(graph["outputs"], outputs, strict=True):
            assert spec["shape"] == ["batch", *value.shape[1:]] and spec["dtype"] == str(value.dtype)[6:]
        if graph["file"].endswith(".onnx"):
            import onnxruntime

            session = onnxruntime.InferenceSession(str(folder / graph["file"]), providers=["CPUExecutionProvider"])
            assert [i.name for i in session.get_inputs()] == [t["name"] for t in graph["inputs"]]
            assert [o.name for o in session.get_outputs()] == [t["name"] for t in graph["outputs"]]
            assert [o.shape for o in session.get_outputs()] == [t["shape"] for t in graph["outputs"]]


def test_the_manifest_says_how_to_sample_the_prior(exports):
    model, folder = exports["logistic-torchscript"]  # a mixture-of-Gaussians prior, given in full
    prior = json.loads((folder / MANIFEST_FILE).read_text())["prior"]
    components = model.prior()
    assert prior["name"] == "mog"
    assert torch.allclose(torch.tensor(prior["loc"]), components.component_distribution.base_dist.loc)
    assert abs(sum(prior["weights"]) - 1) < 1e-6
    manifest = json.loads((exports["conv-torchscript"][1] / MANIFEST_FILE).read_text())
    assert manifest["prior"]["sample"].startswith("standard normal")
    assert manifest["likelihood"]["name"] == "gaussian-hetero" and manifest["model"]["num_classes"] == 10
    assert manifest["model"]["labels"]["dtype"] == "int64"


REFUSED = [
    (["model.kind=hierarchical", "model.latent_dim=4"], "model kind 'hierarchical'"),
    (["model.kind=vqvae"], "model kind 'vqvae'"),
    (["model.posterior=iaf"], "posterior 'iaf'"),
    (["model.likelihood=mixed"], "likelihood 'mixed'"),
]


@pytest.mark.parametrize(("overrides", "named"), REFUSED, ids=[named for _, named in REFUSED])
def test_what_cannot_be_exported_is_refused_in_one_line(tmp_path, capsys, overrides, named):
    run = untrained_run(tmp_path / "run", model_config(*overrides))
    code, out, err = run_cli(capsys, "export", run, "--format", "torchscript", "--out", tmp_path / "out")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and named in err and "cannot be exported" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_sentence_vae_is_refused(tmp_path, capsys):
    run = tmp_path / "text"
    vaekit.fit(tiny_text_config(), run)
    code, _, err = run_cli(capsys, "export", run, "--format", "torchscript", "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "likelihood 'sentence' cannot be exported" in err
    assert not (tmp_path / "out").exists()


def test_command_line_errors(trained_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", trained_run, "--format", "tflite", "--out", tmp_path / "a")
    assert code == 2 and "invalid choice: 'tflite'" in err
    code, _, err = run_cli(capsys, "export", tmp_path / "missing", "--out", tmp_path / "b")
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    for extra in ([], ["--force"]):  # --force replaces an earlier export only, never other files
        code, _, err = run_cli(capsys, "export", trained_run, "--format", "torchscript", "--out", full, *extra)
        assert code == 2 and "full" in err and err.count("\n") == 1
    assert [p.name for p in full.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_force_replaces_an_earlier_export(trained_run, tmp_path, capsys):
    out = tmp_path / "out"
    code, printed, _ = run_cli(capsys, "export", trained_run, "--format", "torchscript", "--out", out)
    assert code == 0 and f"wrote {out / 'encoder.pt'}" in printed
    code, _, err = run_cli(capsys, "export", trained_run, "--format", "torchscript", "--out", out)
    assert code == 2 and "--force" in err
    (out / "encoder.onnx").write_text("an earlier ONNX export")  # replaced: the new export.json does not list it
    code, _, _ = run_cli(capsys, "export", trained_run, "--format", "torchscript", "--out", out, "--force")
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["decoder.pt", "encoder.pt", MANIFEST_FILE]


def test_a_missing_onnx_package_names_the_extra(trained_run, tmp_path, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name, *a))
    code, _, err = run_cli(capsys, "export", trained_run, "--out", tmp_path / "out")
    assert code == 2 and 'pip install "vaekit[export]"' in err and "onnxscript" in err
    assert not (tmp_path / "out").exists()
