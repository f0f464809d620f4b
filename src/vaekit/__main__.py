"""`python -m vaekit ...`: the `vaekit` command (e.g. under `torchrun ... -m vaekit train`)."""

import sys

from .cli import main

sys.exit(main())
