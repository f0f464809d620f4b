"""Subcommands of the `vaekit` CLI; each module has `register(subparsers)`, except `common` (shared helpers)."""
