"""Working with other tools: experiment trackers (train.log: TensorBoard, MLflow) and the notebook (HTML summaries,
the progress bar). `vaekit export` and `vaekit report` have their own test files."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import types

import pytest
import torch
from conftest import tiny_config, tiny_text_config

import vaekit
from vaekit.cli import main
from vaekit.core import progress
from vaekit.errors import ConfigError
from vaekit.training import trackers as tracking
from vaekit.training.trackers import TrackerError, check_trackers, flat_params, scalars

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
needs_tensorboard = pytest.mark.skipif(not HAS_TENSORBOARD,
                                       reason="needs tensorboard (pip install vaekit[tensorboard])")
needs_mlflow = pytest.mark.skipif(not HAS_MLFLOW, reason="needs mlflow (pip install vaekit[mlflow])")


def _metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


# --- what is logged -----------------------------------------------------------------------------------------

def test_records_become_tagged_scalars():
    record = {"epoch": 3, "step": 30, "seconds": 0.5, "train_loss": 101.5, "valid_kl": 7.25,
              "valid_kl_per_dim": [1.0, 0.0, 2.5], "active_units": 2, "flag": True, "bad": float("nan"),
              "name": "text"}
    assert scalars(record) == {"run/seconds": 0.5, "train/loss": 101.5, "valid/kl": 7.25,
                               "valid/kl_per_dim/0": 1.0, "valid/kl_per_dim/1": 0.0, "valid/kl_per_dim/2": 2.5,
                               "valid/active_units": 2.0}


def test_config_flattens_to_dotted_parameters():
    params = flat_params(vaekit.config.to_dict(tiny_config()))
    assert params["train.lr"] == "0.001" and params["model.network.hidden"] == "[64]"
    assert params["model.likelihood.name"] == "bernoulli" and params["train.log"] == "[]"


def test_train_log_names_known_trackers_once():
    assert check_trackers(["tensorboard", "mlflow"]) == ["tensorboard", "mlflow"]
    with pytest.raises(ConfigError, match="unknown tracker 'wandb'; choose from mlflow, tensorboard"):
        vaekit.build_run_config(None, ['train.log=["wandb"]'])
    with pytest.raises(ConfigError, match="twice"):
        vaekit.build_run_config(None, ['train.log=["tensorboard", "tensorboard"]'])
    with pytest.raises(ConfigError, match="train.log_images_every"):
        vaekit.build_run_config(None, ["train.log_images_every=0"])
    assert vaekit.RunConfig().train.log_images_every is None  # automatic


class Recorder(tracking.Tracker):
    """A tracker that remembers the epochs it got numbers and images for."""

    def __init__(self):
        self.numbers, self.images = [], []

    def epoch(self, epoch, values):
        self.numbers.append(epoch)

    def outputs(self, epoch, items):
        self.images.append(epoch)


@pytest.mark.parametrize("every, seconds_per_epoch, expected", [
    (3, 1.0, [3, 6, 7]),             # every 3 epochs, and the last
    (None, 1.0, [7]),                # automatic, short epochs: only the last
    (None, 12.0, [3, 6, 7]),         # automatic, 12 s epochs: once 30 s have passed, and the last
])
def test_images_are_logged_on_schedule(monkeypatch, every, seconds_per_epoch, expected):
    now = [0.0]
    monkeypatch.setattr(tracking, "clock", lambda: now[0])
    recorder = Recorder()
    run = tracking.RunTrackers({"r": recorder}, every, epochs=7)
    for epoch in range(1, 8):
        now[0] += seconds_per_epoch
        run.epoch({"epoch": epoch, "train_loss": 1.0}, 1e-3, lambda: [])
    run.finish({"epoch": 7}, lambda: [])  # already logged at the last epoch: not twice
    assert recorder.numbers == list(range(1, 8)) and recorder.images == expected


def test_a_run_stopped_early_logs_its_last_images(monkeypatch):
    recorder = Recorder()
    run = tracking.RunTrackers({"r": recorder}, 5, epochs=50)
    for epoch in range(1, 8):  # patience stopped it after epoch 7
        run.epoch({"epoch": epoch, "train_loss": 1.0}, 1e-3, lambda: [])
    run.finish({"epoch": 7}, lambda: [])
    assert recorder.images == [5, 7]


def test_trackers_need_a_run_folder():
    config = tiny_config(log=["tensorboard"])
    with pytest.raises(ConfigError, match="needs a run folder"):
        vaekit.fit(config)


def test_a_missing_package_names_the_extra_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "vaekit\[mlflow\]"'):
        vaekit.fit(tiny_config(log=["mlflow"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- TensorBoard --------------------------------------------------------------------------------------------

@needs_tensorboard
def test_tensorboard_holds_every_metric_the_lr_and_images(tmp_path):
    run = tmp_path / "run"
    vaekit.fit(tiny_config(epochs=4, log=["tensorboard"], log_images_every=2), run)
    events, metrics = _events(run), _metrics(run)
    for key, tag in (("train_loss", "train/loss"), ("valid_kl", "valid/kl"), ("active_units", "valid/active_units")):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2, 3, 4]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in metrics], rel=1e-6)
    assert [e.value for e in events.Scalars("valid/kl_per_dim/3")] == pytest.approx(
        [r["valid_kl_per_dim"][3] for r in metrics], rel=1e-5, abs=1e-6)
    assert [e.value for e in events.Scalars("train/lr")] == pytest.approx([1e-3] * 4)
    assert [e.step for e in events.Images("samples")] == [2, 4]  # every 2 epochs (and the last)
    assert [e.step for e in events.Images("reconstructions")] == [2, 4]
    assert "config/text_summary" in events.Tags()["tensors"]


@needs_tensorboard
def test_a_text_run_logs_its_sentences(tmp_path):
    config = tiny_text_config()
    config.train.log = ["tensorboard"]
    vaekit.fit(config, tmp_path / "text")
    events = _events(tmp_path / "text")
    assert {"samples/text_summary", "reconstructions/text_summary"} <= set(events.Tags()["tensors"])
    sentences = events.Tensors("samples/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "z ~ p(z), decoded greedily" in sentences and not events.Tags()["images"]


@needs_tensorboard
def test_logging_leaves_the_training_unchanged(tmp_path):
    plain = vaekit.fit(tiny_config(epochs=2), tmp_path / "plain")
    logged = vaekit.fit(tiny_config(epochs=2, log=["tensorboard"], log_images_every=1), tmp_path / "logged")
    for (name, a), b in zip(plain.model.state_dict().items(), logged.model.state_dict().values()):
        assert torch.equal(a, b), name  # drawing the images (in eval mode, on their own noise) changes nothing


@needs_tensorboard
def test_a_resumed_run_continues_the_curves_without_duplicates(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    vaekit.fit(tiny_config(epochs=3, log=["tensorboard"]), run)
    # A crash after epoch 4's events were written but before its checkpoint: a stale value at step 4.
    stale = SummaryWriter(str(run / "tensorboard"))
    stale.add_scalar("train/loss", 1e6, 4)
    stale.close()
    vaekit.fit(tiny_config(epochs=5, log=["tensorboard"]), run, resume=True)
    logged = _events(run).Scalars("train/loss")
    assert [e.step for e in logged] == [1, 2, 3, 4, 5]
    assert [e.value for e in logged] == pytest.approx([r["train_loss"] for r in _metrics(run)], rel=1e-6)


@needs_tensorboard
def test_a_tracker_failing_mid_run_is_dropped_and_training_goes_on(tmp_path, monkeypatch, caplog):
    calls = []

    def fail_on_second(self, epoch, values):
        calls.append(epoch)
        if epoch == 2:
            raise OSError("disk full")

    monkeypatch.setattr(tracking.TensorBoardTracker, "epoch", fail_on_second)
    with caplog.at_level(logging.WARNING, logger="vaekit.training.trackers"):
        result = vaekit.fit(tiny_config(epochs=4, log=["tensorboard"]), tmp_path / "run")
    assert calls == [1, 2] and len(result.history) == 4 and len(_metrics(tmp_path / "run")) == 4
    assert "tensorboard failed at epoch 2" in caplog.text and "disk full" in caplog.text


@needs_tensorboard
def test_cli_train_with_log(tmp_path, capsys):
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "run"), "--track", "tensorboard", "--no-progress",
                 "--set", "model.network.hidden=[32]"]) == 0
    assert list((tmp_path / "run" / "tensorboard").glob("events.*"))
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "other"), "--track", "wandb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown tracker 'wandb'" in err[0]
    assert not (tmp_path / "other").exists()


# --- MLflow -------------------------------------------------------------------------------------------------

@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A local MLflow file store in tmp_path (the file store must be allowed explicitly since MLflow 3)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow

    yield mlflow
    while mlflow.active_run() is not None:
        mlflow.end_run()


@needs_mlflow
def test_mlflow_run_holds_metrics_params_and_images_and_resumes(tmp_path, mlflow_store):
    run = tmp_path / "run"
    vaekit.fit(tiny_config(epochs=3, log=["mlflow"], log_images_every=2), run)
    run_id = json.loads((run / "mlflow.json").read_text())["run_id"]
    client = mlflow_store.MlflowClient()
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "run"
    assert logged.data.params["train.epochs"] == "3" and logged.data.params["model.latent_dim"] == "4"
    history = client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["train_loss"]))
                                                   for r in _metrics(run)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["epoch_0002", "epoch_0003"]
    assert sorted(a.path for a in client.list_artifacts(run_id, "epoch_0002")) == [
        "epoch_0002/reconstructions.png", "epoch_0002/samples.png"]

    vaekit.fit(tiny_config(epochs=5, log=["mlflow"]), run, resume=True)
    assert json.loads((run / "mlflow.json").read_text())["run_id"] == run_id  # the same MLflow run, continued
    steps = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert steps == [1, 2, 3, 4, 5]


@needs_mlflow
def test_mlflow_that_cannot_start_is_one_error_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unknown-scheme://nowhere")
    run = tmp_path / "run"
    with pytest.raises(TrackerError, match="mlflow could not start"):
        vaekit.fit(tiny_config(log=["mlflow"]), run)
    assert not run.exists()
    assert main(["train", "--epochs", "1", "--out", str(run), "--track", "mlflow", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaekit train: error: train.log: mlflow could not start")


# --- the notebook -------------------------------------------------------------------------------------------

@pytest.fixture
def in_kernel(monkeypatch):
    """What a Jupyter kernel has loaded: ipykernel's shell module and an IPython whose get_ipython() is a shell."""
    shell = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", ipython)


def test_notebook_is_recognised(monkeypatch, in_kernel):
    assert progress.in_notebook() and progress.interactive()


def test_outside_a_notebook_the_text_bar(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel.zmqshell", raising=False)
    from tqdm import tqdm

    assert not progress.in_notebook() and progress.bar_class() is tqdm


def test_a_notebook_without_ipywidgets_gets_the_text_bar(monkeypatch, in_kernel):
    from tqdm import tqdm

    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert progress.bar_class() is tqdm


def test_a_notebook_with_ipywidgets_gets_the_widget_bar(request):
    pytest.importorskip("ipywidgets", reason="the widget bar needs ipywidgets (pip install vaekit[notebook])")
    from tqdm.notebook import tqdm  # imported with the real IPython, before the kernel is faked

    request.getfixturevalue("in_kernel")
    assert progress.bar_class() is tqdm


def test_fit_in_a_notebook_draws_a_bar_not_epoch_lines(tmp_path, monkeypatch, in_kernel, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # the text bar, which writes to stderr like the widget's
    vaekit.fit(tiny_config(epochs=2, progress=True), tmp_path / "run")
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "samples/s" not in err  # the bar's description, not the log file's epoch lines
    monkeypatch.delitem(sys.modules, "ipykernel.zmqshell")
    vaekit.fit(tiny_config(epochs=2, progress=True), tmp_path / "again")  # outside, not a terminal: lines
    assert "samples/s" in capsys.readouterr().err


def test_model_fit_and_evaluation_show_html_summaries(trained_run):
    model = vaekit.load(trained_run)
    page = model._repr_html_()
    assert "<table" in page and "latent dimensions" in page and ">4<" in page and "bernoulli" in page
    assert f"{sum(p.numel() for p in model.parameters()):,}" in page
    data = vaekit.load_data("digits")
    result = vaekit.evaluate(model, data.split("test").x[:40], iw_samples=5)
    page = result._repr_html_()
    assert f"{result.nll:.4g}" in page and f"{result.active_units} of 4" in page and "bits per dimension" in page
    fitted = vaekit.fit(tiny_config(epochs=2))
    page = fitted._repr_html_()
    assert "epochs trained" in page and f"{fitted.history[-1]['train_loss']:.4g}" in page


def test_html_summaries_escape_their_values():
    from vaekit.core.html_summary import html_table

    page = html_table("<t>", [("a<b", "<script>"), ("left out", None), ("n", 12345), ("x", 0.123456)])
    assert "<script>" not in page and "&lt;script&gt;" in page and "left out" not in page
    assert "12,345" in page and "0.1235" in page


def test_a_real_notebook_shows_a_widget_bar_and_html_summaries(tmp_path):
    """In a Jupyter kernel (run with nbclient, when installed): fit draws the widget bar and no epoch lines, and a
    fit result, a model and an evaluation display as vaekit's HTML tables."""
    for package in ("nbclient", "nbformat", "ipykernel", "ipywidgets"):
        pytest.importorskip(package, reason="a real notebook needs nbclient, nbformat, ipykernel and ipywidgets")
    import nbformat
    from nbclient import NotebookClient

    run = tmp_path / "run"
    cells = [f"import vaekit\nconfig = vaekit.build_run_config(None, ['data.name=digits', 'train.epochs=3', "
             f"'model.network.hidden=[32]', 'model.latent_dim=4'])\nresult = vaekit.fit(config, run_dir={str(run)!r})"
             "\nresult",
             f"model = vaekit.load({str(run)!r})\nmodel",
             "vaekit.evaluate(model, vaekit.load_data('digits').split('test').x[:50], iw_samples=5)"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [cell.outputs for cell in notebook.cells]
    assert any("application/vnd.jupyter.widget-view+json" in out.get("data", {}) for out in outputs[0])
    assert not any("samples/s" in out.get("text", "") for out in outputs[0])  # no log-file epoch lines
    titles = ["vaekit training", "vaekit model", "vaekit evaluation"]
    for title, cell_outputs in zip(titles, outputs):
        html = [out["data"]["text/html"] for out in cell_outputs if "text/html" in out.get("data", {})]
        assert html and title in html[0], (title, cell_outputs)
