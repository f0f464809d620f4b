"""The `vaekit` command line: parse arguments, call the library, turn known errors into one-line messages.

Subcommands live in `vaekit.commands`: each module there with `register(subparsers)` is found automatically,
so a new command is one new file; modules without it (`commands.common`) hold shared helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import pkgutil
import sys
import time

from . import commands
from .core.atomic import all_or_nothing
from .errors import PeerError, VaekitError

EXIT_USAGE_OR_INPUT = 2
# Seconds a torchrun process waits before exiting after rank 0 failed, so that rank 0 reports its error first.
PEER_EXIT_DELAY = 5.0


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with a one-line error: "vaekit sample: error: argument -n: must be an integer >= 1,
    got '-5' (see vaekit sample --help)", exit status 2 (its subcommand parsers are of this class too)."""

    def error(self, message: str):  # type: ignore[override]
        message = " ".join(message.split())  # one line, whatever argparse composed
        self.exit(EXIT_USAGE_OR_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of every module in `vaekit.commands`."""
    parser = ArgumentParser(prog="vaekit", description="Variational autoencoders and their latent spaces.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    for name in ["run"] + [m for m in modules if m != "run"]:  # core commands first in --help
        register = getattr(importlib.import_module(f"{commands.__name__}.{name}"), "register", None)
        if register is not None:  # helper modules add no subcommand
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vaekit` command: its exit status (argument errors and --help included)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # argparse has printed its one-line error (or the help)
        return exit.code if isinstance(exit.code, int) else EXIT_USAGE_OR_INPUT
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    # A command's files are written all or nothing, but training's: a stopped run keeps what it needs to resume.
    outputs = contextlib.nullcontext() if args.command == "train" else all_or_nothing()
    try:
        with outputs:
            return args.func(args)
    except PeerError:  # a process of a torchrun job: rank 0 prints the message, and should exit first (torchrun
        time.sleep(PEER_EXIT_DELAY)  # stops the other processes when one exits with an error)
        return EXIT_USAGE_OR_INPUT
    except VaekitError as error:
        print(f"vaekit {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE_OR_INPUT
    except KeyboardInterrupt:
        print(f"vaekit {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        print(f"vaekit {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
