"""Helpers shared by the subcommands: the RUN/--out/--force arguments, output guards, loading a run with its data,
and the checked argument types of every numeric option.

Each numeric argument gets its range here, in its argparse `type` (`positive_int`, `int_range(2)`,
`float_range(0, 0.5, lo_open=True)`, `int_list(0)`, `config_type("train.epochs")`, ...): a value outside it ends
with argparse's one-line "argument -n: must be an integer >= 1, got '-5'" and exit status 2, before anything is
loaded. A flag that sets a config key takes the key's own range (`vaekit.config`), so there is one range per value.

This module has no `register`: it adds no subcommand (the CLI skips it when it collects them).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

from ..config import MAX_SEED, MAX_THREADS, DataConfig, ModelConfig, TrainConfig
from ..core.outputs import refuse_nonempty  # output folders: the library's rule, re-exported for the commands
from ..core.typecheck import INT64_MAX, Range
from ..errors import ConfigError, VaekitError

__all__ = ["add_device_arg", "check_index", "class_names_of", "config_type", "device_type", "finite_float",
           "float_list", "float_range", "guard_output", "int_list", "int_range", "load_run_of", "load_with_data",
           "modality_step", "MODALITY_STEPS", "nonnegative_float", "nonnegative_int", "positive_float",
           "positive_int", "refuse_nonempty", "registers_step", "run_args", "runtime_of", "seed_int",
           "thread_count"]


def _quoted(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _parse_int(text: str) -> int | None:
    try:
        value = int(text.replace("_", "x"))  # int() itself allows surrounding whitespace; '1_000' is refused
    except ValueError:  # not a whole number (or one of more digits than Python converts)
        return None
    return value if abs(value) <= INT64_MAX else None


def _is_huge_int(text: str) -> bool:
    """True for a whole number too large for 64 bits (which `_parse_int` refuses)."""
    digits = text.strip(" ").lstrip("+-")
    return digits.isdigit() and len(digits) >= 19 and abs(int(digits)) > INT64_MAX


def _parse_float(text: str) -> float | None:
    try:
        value = float(text.replace("_", "x"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [lo, hi] (None: unbounded; always within 64 bits)."""
    bounds = Range(lo, hi)
    words = "an integer" + ("" if lo is None and hi is None else f" {bounds.describe()}")

    def parse(text: str) -> int:
        value = _parse_int(text)
        if value is None or value not in bounds:
            beyond = " (whole numbers beyond 64 bits are out of range)" if _is_huge_int(text) else ""
            raise argparse.ArgumentTypeError(f"must be {words}, got {_quoted(text)}{beyond}")
        return value

    parse.__name__ = "int"
    return parse


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [lo, hi] (open ends with `lo_open` / `hi_open`; None: unbounded)."""
    bounds = Range(lo, hi, lo_open, hi_open)
    words = "a finite number" + ("" if lo is None and hi is None else f" {bounds.describe()}")

    def parse(text: str) -> float:
        value = _parse_float(text)
        if value is None or value not in bounds:
            raise argparse.ArgumentTypeError(f"must be {words}, got {_quoted(text)}")
        return value

    parse.__name__ = "float"
    return parse


def _list_type(item: Callable[[str], float], words: str, example: str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        tokens = text.replace(" ", "").split(",")
        if not text.strip():
            raise argparse.ArgumentTypeError(f"must be comma-separated {words} like {example}, got {_quoted(text)}")
        values = []
        for token in tokens:
            try:
                values.append(item(token))
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(f"must be comma-separated {words} like {example}; "
                                                 f"{_quoted(token)} in {_quoted(text)} is not") from None
        return values

    parse.__name__ = "list"
    return parse


def int_list(lo: int | None = None, hi: int | None = None, example: str = "0,3,5") -> Callable[[str], list[int]]:
    """An argparse type: comma-separated whole numbers, each in [lo, hi]."""
    bounds = Range(lo, hi)
    words = "integers" + ("" if lo is None and hi is None else f" {bounds.describe()}")
    return _list_type(int_range(lo, hi), words, example)


def float_list(lo: float | None = None, hi: float | None = None, example: str = "0,0.5,1") -> Callable[[str], list[float]]:
    """An argparse type: comma-separated finite numbers, each in [lo, hi]."""
    bounds = Range(lo, hi)
    words = "finite numbers" + ("" if lo is None and hi is None else f" {bounds.describe()}")
    return _list_type(float_range(lo, hi), words, example)


positive_int = int_range(1)
nonnegative_int = int_range(0)
seed_int = int_range(0, MAX_SEED)
thread_count = int_range(1, MAX_THREADS)
finite_float = float_range()
positive_float = float_range(0.0, lo_open=True)
nonnegative_float = float_range(0.0)

_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def config_type(key: str) -> Callable[[str], float]:
    """The argparse type of a flag that sets config key `key` ("train.epochs"): the key's own type and range."""
    import typing

    section, name = key.split(".")
    cls = _SECTIONS[section]
    bounds = cls.__dataclass_fields__[name].metadata.get("range") or Range()
    hint = typing.get_type_hints(cls)[name]
    if int in (hint, *typing.get_args(hint)):
        return int_range(bounds.lo, bounds.hi)
    return float_range(bounds.lo, bounds.hi, lo_open=bounds.lo_open, hi_open=bounds.hi_open)


def output_path(text: str) -> str:
    """An argparse type for --out: a path, never an empty or blank one (which would otherwise read as no --out and
    write to the default location instead)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a file or folder path, got {text!r}")
    return text


output_path.__name__ = "path"


def guard_output(path: str | None, force: bool) -> None:
    """Never overwrite a file the user already has unless --force."""
    if path and Path(path).exists() and not force:
        raise VaekitError(f"{path} already exists; choose another --out or pass --force to overwrite it")


def guard_json_output(path: str | None, force: bool) -> None:
    """`guard_output` for a command whose --out is a JSON report: a name of another type (out.png, out.npy, no
    suffix) is refused rather than given JSON text under it."""
    if path:
        from ..core.outputs import check_output_suffix

        check_output_suffix(path, (".json",))
    guard_output(path, force)


def device_type(text: str) -> str:
    """An argparse type: a device string (auto, cpu, cuda, cuda:N, mps) that this machine has, so that an
    unavailable device ends with argparse's one-line error and exit status 2 before any work."""
    from ..core.runtime import check_device

    try:
        return check_device(text, "device")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


device_type.__name__ = "device"


def add_device_arg(p) -> None:
    """--device: where the model runs (default cpu)."""
    p.add_argument("--device", type=device_type, default="cpu",
                   help="where the model runs: auto (cuda when available), cpu (default), cuda, cuda:N or mps")


def run_args(p, out_help: str) -> None:
    """The RUN folder argument, --out (help text `out_help`), --force and --device."""
    p.add_argument("run", help="run folder written by `vaekit train`")
    p.add_argument("--out", type=output_path, help=out_help)
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    add_device_arg(p)


def runtime_of(args):
    """The `vaekit.core.runtime.Runtime` of the command-line flags (--device, and --threads where a command has it)."""
    from ..core.runtime import Runtime

    return Runtime.from_flags(getattr(args, "device", "cpu"), threads=getattr(args, "threads", None))


def load_run_of(args, path=None):
    """The run folder `path` (default `args.run`) loaded onto the device of --device."""
    from ..io import load_run

    return load_run(args.run if path is None else path, device=runtime_of(args).device)


def load_with_data(args, run=None):
    """(run, data bundle) of `args.run` (or of the already loaded `run`) with the model on --device, the data
    read from `args.data_root` when given."""
    from ..training.train import load_run_bundle

    run = run or load_run_of(args)
    if getattr(args, "data_root", None):
        run.config.data.root = args.data_root
    return run, load_run_bundle(run.config, run.model)


def class_names_of(run) -> list[str]:
    """The class names of a run's data set, or '0', '1', ... when the data set has none or cannot be read."""
    from ..training.train import load_bundle

    try:
        names = load_bundle(run.config).class_names
    except VaekitError:
        names = None
    return list(names) if names else [str(i) for i in range(run.model.num_classes)]


def check_index(i: int, n: int, split: str) -> int:
    """Index `i` into a split of `n` examples (negative counts from the end), or a ConfigError."""
    if not -n <= i < n:
        raise ConfigError(f"index {i} is out of range: the {split} split has {n} examples (0..{n - 1})")
    return i % n


# Steps of a command whose work differs by modality: (modality name, step) -> handler, registered by the command
# module of that modality (commands/text.py for sentences). A step that no module registered for the run's
# modality runs the command's own (array) code.
MODALITY_STEPS: dict[tuple[str, str], Callable] = {}


def modality_step(model, step: str) -> Callable | None:
    """The handler that the run's modality registered for `step` ("sample", "reconstruct", "eval", ...), or None."""
    from ..modalities import modality_of

    return MODALITY_STEPS.get((modality_of(model).name, step))


def registers_step(modality: str, step: str) -> Callable[[Callable], Callable]:
    """Decorator: `handler` does `step` of a command for runs of `modality`."""

    def decorator(handler: Callable) -> Callable:
        MODALITY_STEPS[(modality, step)] = handler
        return handler

    return decorator
