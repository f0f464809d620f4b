"""The file formats of an export: ONNX (torch's dynamo exporter, run by onnxruntime) and TorchScript (a traced
module, run by `torch.jit.load`). Each writes one graph to one file with a dynamic first (batch) axis, and runs a
written file on NumPy-free tensors, so that an export is checked against the model before it is kept.

torch's exporters talk: the ONNX exporter prints progress lines and logs through torch's own handler, and both
warn (torch.jit is deprecated in favour of torch.export; tracing warns of Python values it bakes in). `quiet`
keeps that out of the command's output and logs it at debug level instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ..core.atomic import atomic_output
from ..errors import ConfigError

log = logging.getLogger(__name__)

# Name of the dynamic first axis in the files and in export.json.
BATCH = "batch"
# Packages the ONNX format needs (the `export` extra).
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Runs a torch exporter without its printed progress, log lines and warnings (logged here at debug level)."""
    printed = io.StringIO()
    torch_onnx = logging.getLogger("torch.onnx")
    level = torch_onnx.level
    torch_onnx.setLevel(logging.ERROR)  # torch's own handler prints its warnings (e.g. "torchvision is not installed")
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed), \
                contextlib.redirect_stderr(printed):
            warnings.simplefilter("always")
            yield
    finally:
        torch_onnx.setLevel(level)
    for warning in caught:
        log.debug("exporter warning (%s): %s", warning.category.__name__, warning.message)
    if printed.getvalue().strip():
        log.debug("exporter output:\n%s", printed.getvalue().rstrip())


def require_onnx() -> None:
    """A one-line ConfigError naming what to install when a package of the ONNX format is missing."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"ONNX export needs {', '.join(missing)}: pip install \"vaekit[export]\"")


def write_onnx(graph: nn.Module, inputs: tuple[torch.Tensor, ...], input_names: Sequence[str],
               output_names: Sequence[str], path: Path) -> None:
    """Exports `graph` called on `inputs` to an ONNX file (weights inside it), every input's first axis dynamic."""
    batch = torch.export.Dim(BATCH)
    dynamic = {name: {0: batch} for name in input_names}  # one symbol: every input has the same batch size
    with quiet():
        program = torch.onnx.export(graph, inputs, dynamo=True, input_names=list(input_names),
                                    output_names=list(output_names), dynamic_shapes=dynamic)
    if program is None:  # pragma: no cover (the dynamo exporter returns its program)
        raise ConfigError("the ONNX exporter returned no program")
    with atomic_output(path) as tmp:
        program.save(tmp, external_data=False)


def run_onnx(path: Path, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The outputs of an ONNX file run by onnxruntime on the CPU, in the file's order."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {name: value.detach().cpu().numpy() for name, value in inputs.items()})
    return [torch.from_numpy(value) for value in outputs]


def write_torchscript(graph: nn.Module, inputs: tuple[torch.Tensor, ...], input_names: Sequence[str],
                      output_names: Sequence[str], path: Path) -> None:
    """Traces `graph` on `inputs` and saves it for `torch.jit.load` (sizes are traced as operations on the inputs'
    shapes, so the batch size stays free)."""
    with quiet():
        traced = torch.jit.trace(graph, inputs, check_trace=False)
    with atomic_output(path) as tmp, quiet():
        torch.jit.save(traced, str(tmp))


def run_torchscript(path: Path, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The outputs of a TorchScript file loaded with `torch.jit.load`, in the graph's order."""
    with quiet():
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return list(module(*[value.cpu() for value in inputs.values()]))


@dataclass(frozen=True)
class Format:
    """An export format: its file suffix, what it needs installed, and how to write and run a graph file."""

    name: str
    suffix: str
    require: Callable[[], None]
    write: Callable[..., None]
    run: Callable[[Path, dict[str, torch.Tensor]], list[torch.Tensor]]
    runtime: str  # what runs the files, for export.json


FORMATS: dict[str, Format] = {
    "onnx": Format("onnx", ".onnx", require_onnx, write_onnx, run_onnx, "onnxruntime (or any ONNX runtime)"),
    "torchscript": Format("torchscript", ".pt", lambda: None, write_torchscript, run_torchscript, "torch.jit.load"),
}


def get_format(name: str) -> Format:
    """The format called `name`, or a ConfigError listing them."""
    if name not in FORMATS:
        raise ConfigError(f"unknown export format {name!r}; choose one of: {', '.join(FORMATS)}")
    return FORMATS[name]


__all__ = ["BATCH", "FORMATS", "Format", "get_format", "quiet", "require_onnx"]
