"""`export_model`: a trained model as two graph files (encoder, decoder) and export.json, checked before kept.

The graphs (vaekit.export.graphs) are written in the chosen format (vaekit.export.formats), then each file is run
on a new batch of another size than the one it was traced with and compared with the model; export.json
(vaekit.export.manifest) describes the result. What cannot be exported is refused in one line before any file is
written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from ..config import ModelConfig
from ..core.atomic import atomic_write_text
from ..errors import ConfigError, VaekitError
from ..likelihoods import LIKELIHOODS
from ..models.vae import VAE
from ..posteriors import POSTERIORS
from ..priors import PRIORS
from .formats import BATCH, Format, get_format
from .graphs import (
    DecoderGraph,
    EncoderGraph,
    Plugins,
    Tensor,
    check_kind,
    decoder_parameters,
    encoder_parameters,
    example_inputs,
)
from .manifest import graph_entry, manifest

MANIFEST_FILE = "export.json"
# Batch size of the check of each written file (another size than the one the graphs were traced with).
CHECK_BATCH = 3
# Largest difference allowed between a file's outputs and the model's (float32 arithmetic in another order).
CHECK_ATOL, CHECK_RTOL = 1e-4, 1e-4


def _registered_name(registry, module: torch.nn.Module) -> str:
    """The registry name whose factory is the module's class, else the class name."""
    return next((name for name in registry.names() if registry.get(name) is type(module)), type(module).__name__)


def plugins_of(model: VAE, config: ModelConfig | None = None) -> Plugins:
    """The names and options of the model's plug-ins: from its run config when given, else from its classes."""
    if config is not None:
        def entry(key: str) -> tuple[str, dict]:
            section = getattr(config, key)
            return str(section.name), dict(section.options)

        return Plugins(*(entry(key) for key in ("kind", "network", "posterior", "likelihood", "prior")))
    return Plugins(kind=(type(model).__name__, {}), network=(type(model.encoder).__name__, {}),
                   posterior=(_registered_name(POSTERIORS, model.posterior), {}),
                   likelihood=(_registered_name(LIKELIHOODS, model.likelihood), {}),
                   prior=(_registered_name(PRIORS, model.prior), {}))


def _specs(names: Sequence[str], values: Sequence[torch.Tensor]) -> list[Tensor]:
    """Name, dtype and shape of each tensor, the first axis named "batch"."""
    return [Tensor(name, str(value.dtype).removeprefix("torch."), (BATCH, *value.shape[1:]))
            for name, value in zip(names, values)]


def _check_file(fmt: Format, path: Path, graph: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                names: Sequence[str]) -> float:
    """Runs the written file on `inputs` and compares each output with the graph's; a ConfigError when they differ.
    Returns the largest absolute difference."""
    with torch.no_grad():
        expected = graph(*inputs)
    got = fmt.run(path, dict(zip(names, inputs)))
    worst = 0.0
    for want, have in zip(expected, got, strict=True):
        if tuple(want.shape) != tuple(have.shape) or not torch.allclose(have.to(want), want, CHECK_ATOL, CHECK_RTOL):
            raise ConfigError(f"the exported {path.name} does not reproduce the model on a batch of {CHECK_BATCH} "
                              f"(shapes {tuple(have.shape)} and {tuple(want.shape)}); it was not kept")
        worst = max(worst, float((have.to(want) - want).abs().max()))
    return worst


def export_model(model: VAE, out_dir: str | Path, format: str = "onnx", config: ModelConfig | None = None,
                 class_names: Sequence[str] | None = None) -> list[Path]:
    """Writes the model's encoder (x [, y] -> q(z|x)'s parameters) and decoder (z [, y] -> p(x|z)'s parameters and
    its mean) in `format` ('onnx' or 'torchscript') into `out_dir`, with export.json describing them; returns the
    paths written (the manifest last).

    `config` (the run's `model` section) names the plug-ins in export.json and in refusals; `class_names` label
    the classes of a conditional model. A model kind, network, posterior or likelihood that cannot be exported is a
    one-line ConfigError naming it, raised before any file is written; so is a missing package of the format.
    The model's mode (train/eval) is left as it was."""
    fmt = get_format(format)
    plugins = plugins_of(model, config)
    check_kind(model, plugins)
    px, px_names = decoder_parameters(model, plugins)
    qz, qz_names = encoder_parameters(model, plugins)
    fmt.require()
    out_dir = Path(out_dir)
    labels = ["y"] if model.conditional else []
    graphs = {
        "encoder": (EncoderGraph(model, qz_names), ["x", *labels], list(qz_names)),
        "decoder": (DecoderGraph(model, px_names), ["z", *labels], [*px_names, "mean"]),
    }
    was_training = model.training
    model.eval()
    written, entries, differences = [], {}, {}
    new_files = [out_dir / f"{what}{fmt.suffix}" for what in graphs if not (out_dir / f"{what}{fmt.suffix}").exists()]
    try:
        for what, (graph, inputs_named, outputs_named) in graphs.items():
            inputs = example_inputs(model, what)
            with torch.no_grad():
                outputs = graph(*inputs)
            path = out_dir / f"{what}{fmt.suffix}"
            try:
                fmt.write(graph, inputs, inputs_named, outputs_named, path)
            except VaekitError:
                raise
            except Exception as error:  # the exporter met an operation it cannot translate
                message = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise ConfigError(f"network {plugins.network[0]!r} cannot be exported to {fmt.name}: the {what} "
                                  f"failed to export ({message[:200]})") from None
            written.append(path)
            differences[what] = _check_file(fmt, path, graph, example_inputs(model, what, CHECK_BATCH), inputs_named)
            entries[what] = graph_entry(path.name, _specs(inputs_named, inputs), _specs(outputs_named, outputs))
    except BaseException:  # all or nothing: a graph file written before the failure goes again
        for path in new_files:
            path.unlink(missing_ok=True)
        raise
    finally:
        model.train(was_training)
    text = manifest(model, plugins, fmt.name, fmt.runtime, entries, qz, qz_names, px, px_names, class_names)
    text["check"] = {"batch": CHECK_BATCH, "max_abs_difference": differences}
    path = out_dir / MANIFEST_FILE
    atomic_write_text(path, json.dumps(text, indent=2) + "\n")
    return [*written, path]


__all__ = ["MANIFEST_FILE", "export_model", "plugins_of"]
