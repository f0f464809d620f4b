"""Subcommands of the `vaekit` CLI; each module has `register(subparsers)`."""
