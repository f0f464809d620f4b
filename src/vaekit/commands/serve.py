"""`vaekit serve RUN`: the interactive latent-space explorer in the browser (vaekit.serve does the work)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .common import add_device_arg, int_range, runtime_of

MAX_POINTS = 20_000


def register(sub) -> None:
    """Adds `serve`."""
    p = sub.add_parser("serve", help="explore a run's latent space in the browser (a local web app)")
    p.set_defaults(func=cmd_serve)
    p.add_argument("run", help="run folder (anything vaekit.load opens)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int_range(0, 65535), default=0, help="port (default 0: a free one)")
    p.add_argument("--split", help="split whose examples are the points (default: test, or the data's first split "
                   "when it has no test split)")
    p.add_argument("--data-root", help="folder holding the run's data files (default: as when it was trained)")
    p.add_argument("--max-points", type=int_range(1, MAX_POINTS), default=2000,
                   help=f"points on the map, a seeded subsample of the split (default 2000, at most {MAX_POINTS:,})")
    add_device_arg(p)


def cmd_serve(args) -> int:
    from ..serve import serve

    if not Path(args.run).is_dir():
        raise CheckpointError(f"{args.run!r} is not a run folder")
    serve(args.run, host=args.host, port=args.port, split=args.split, max_points=args.max_points,
          data_root=args.data_root, device=runtime_of(args).device, announce=lambda line: print(line, flush=True))
    return 0
