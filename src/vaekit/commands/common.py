"""Helpers shared by the subcommands: the RUN/--out/--force arguments, output guards, loading a run with its data.

This module has no `register`: it adds no subcommand (the CLI skips it when it collects them).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import VaekitError
from ..outputs import refuse_nonempty  # output folders: the library's rule, re-exported for the commands

__all__ = ["class_names_of", "guard_output", "load_with_data", "refuse_nonempty", "run_args"]


def guard_output(path: str | None, force: bool) -> None:
    """Never overwrite a file the user already has unless --force."""
    if path and Path(path).exists() and not force:
        raise VaekitError(f"{path} already exists; choose another --out or pass --force to overwrite it")


def run_args(p, out_help: str) -> None:
    """The RUN folder argument, --out (help text `out_help`) and --force."""
    p.add_argument("run", help="run folder written by `vaekit train`")
    p.add_argument("--out", help=out_help)
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def load_with_data(args):
    """(run, data bundle) of `args.run`, the data read from `args.data_root` when given."""
    from ..io import load_run
    from ..train import load_bundle

    run = load_run(args.run)
    if getattr(args, "data_root", None):
        run.config.data.root = args.data_root
    return run, load_bundle(run.config)


def class_names_of(run) -> list[str]:
    """The class names of a run's data set, or '0', '1', ... when the data set has none or cannot be read."""
    from ..train import load_bundle

    try:
        names = load_bundle(run.config).class_names
    except VaekitError:
        names = None
    return list(names) if names else [str(i) for i in range(run.model.num_classes)]
