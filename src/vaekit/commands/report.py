"""`vaekit report RUN [--out FILE]`: one self-contained HTML page of a run (see `vaekit.report`).

    vaekit report RUN                     RUN/report.html
    vaekit report RUN --out run.html      anywhere else (.html only; an existing file needs --force)
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import guard_output, int_range, load_run_of, run_args, seed_int

REPORT_FILE = "report.html"


def register(sub) -> None:
    """Adds `report`."""
    p = sub.add_parser("report", help="one self-contained HTML page of a run: config, curves, samples, latent map, "
                                      "KL, evaluation")
    p.set_defaults(func=cmd_report)
    run_args(p, f"where to write the page, a .html file (default: RUN/{REPORT_FILE})")
    p.add_argument("--data-root", help="folder holding the data files")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the samples and of the latent map's subsample")
    p.add_argument("--max-points", type=int_range(10, 100_000), default=2000,
                   help="codes drawn on the latent map, at most (default 2000)")


def cmd_report(args) -> int:
    from ..core.outputs import check_output_suffix
    from ..errors import VaekitError
    from ..io import atomic_write_text
    from ..report import run_report_html
    from ..training.train import load_run_bundle

    if args.out:  # refused before the run is loaded
        check_output_suffix(args.out, (".html",))
        guard_output(args.out, args.force)
    run = load_run_of(args)
    out = Path(args.out or run.path / REPORT_FILE)
    guard_output(str(out), args.force)
    if args.data_root:
        run.config.data.root = args.data_root
    data, data_error = None, None
    try:
        data = load_run_bundle(run.config, run.model)
    except VaekitError as error:  # the page is still worth having: what needs the data is left out, and said so
        data_error = str(error)
        print(f"vaekit report: the run's data could not be read ({error}); samples, reconstructions and the latent "
              "map are left out", file=sys.stderr)
    page = run_report_html(run, data, seed=args.seed, max_points=args.max_points, data_error=data_error)
    atomic_write_text(out, page)
    print(f"wrote {out}")
    return 0
