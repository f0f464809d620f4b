"""`vaekit impute`: fill missing values of a CSV table (MIWAE), or hidden pixels of images with a trained run.

    vaekit impute DATA.csv --out filled.csv                   empty cells / NA filled; everything else kept
    vaekit impute RUN --mask bottom-half [--image FILE]       inpaint images, draw a figure
"""

from __future__ import annotations

from pathlib import Path

from ..config import MAX_EPOCHS
from ..errors import DataError, VaekitError
from .common import (
    add_device_arg,
    guard_output,
    int_range,
    load_run_of,
    output_path,
    positive_int,
    runtime_of,
    seed_int,
)


def register(sub) -> None:
    """Adds `vaekit impute`."""
    p = sub.add_parser("impute", help="fill missing values in a CSV table, or hidden pixels of images (RUN)")
    p.set_defaults(func=cmd_impute)
    p.add_argument("source", help="a CSV/TSV file with empty or NA cells, or a run folder (image inpainting)")
    p.add_argument("--out", type=output_path,
                   help="output file (table: DATA.imputed.csv beside it; images: RUN/inpainting.png)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists (never the input)")
    p.add_argument("--method", default="importance", choices=["importance", "pseudo-gibbs", "metropolis"],
                   help="importance sampling (default), pseudo-Gibbs or Metropolis-within-Gibbs")
    p.add_argument("--samples", type=positive_int, default=1000,
                   help="importance samples, or Gibbs steps (default 1000)")
    p.add_argument("--seed", type=seed_int, default=0)
    add_device_arg(p)
    t = p.add_argument_group("tables")
    t.add_argument("--epochs", type=int_range(1, MAX_EPOCHS),
                   help="training epochs, run exactly (default: automatic, stopping early once held-out entries "
                        "stop improving)")
    t.add_argument("--no-header", action="store_true", help="the first row is data, not column names")
    i = p.add_argument_group("images (SOURCE is a run folder)")
    i.add_argument("--image", help="PNG/JPEG or .npy/.npz of images (default: the run's test images)")
    i.add_argument("--mask", default="bottom-half",
                   help="hidden pixels: bottom-half (default), top-half, left-half, right-half, center, random:F, "
                        "or a PNG/.npy file with white/nonzero = hidden")
    i.add_argument("-n", type=positive_int, default=8, help="test images to fill when --image is not given")
    i.add_argument("--array", help="also save the filled images as .npy")
    i.add_argument("--data-root", help="folder holding the run's data files")


def cmd_impute(args) -> int:
    source = Path(args.source)
    if source.is_dir():
        return _impute_images(args)
    return _impute_table(args)


def _impute_table(args) -> int:
    import numpy as np

    from ..apps.imputer import VAEImputer
    from ..apps.tables import filled_table, read_table, write_table

    source = Path(args.source)
    if not source.is_file():
        raise DataError(f"{source} does not exist (give a CSV file, or a run folder for images)")
    out = Path(args.out) if args.out else source.with_name(f"{source.stem}.imputed{source.suffix or '.csv'}")
    if out.resolve() == source.resolve():
        raise VaekitError(f"--out {out} is the input file; the input is never overwritten: choose another --out")
    guard_output(str(out), args.force)
    table = read_table(source, header=False if args.no_header else None)
    empty_rows = np.flatnonzero(np.isnan(table.values).all(1))
    if empty_rows.size:
        line = int(empty_rows[0]) + 1 + (table.header is not None)
        raise DataError(f"{source}: {empty_rows.size} row(s) have no numeric value (first: row {line}); drop them, "
                        "there is nothing to impute from")
    n_missing = int(np.isnan(table.values).sum())
    if n_missing == 0:
        write_table(table, out)
        print(f"no missing values in the {len(table.numeric)} numeric columns; wrote an unchanged copy to {out}")
        return 0
    imputer = VAEImputer(epochs=args.epochs, method=args.method, samples=args.samples, random_state=args.seed,
                         verbose=True, device=str(runtime_of(args).device))
    try:
        filled = imputer.fit_transform(table.values)
    except DataError as error:  # name the table's columns rather than array positions
        message = str(error)
        for k, j in enumerate(table.numeric):
            message = message.replace(f"column {k})", f"column {table.column_name(j)})")
        raise DataError(f"{source}: {message}") from None
    write_table(filled_table(table, filled), out)
    kept = len(table.cells[0]) - len(table.numeric)
    print(f"filled {n_missing} missing values in {len(table.numeric)} numeric columns "
          f"({kept} other column(s) kept as they were)")
    print(f"wrote {out}")
    return 0


def _impute_images(args) -> int:

    from ..apps.impute import impute
    from ..apps.inpaint import as_images, hole_pattern, inpainting_figure, observation_mask, read_array_or_image
    from ..figures.plots import write_output

    guard_output(args.out, args.force)
    guard_output(args.array, args.force)
    run = load_run_of(args, args.source)
    model = run.model
    if len(model.event_shape) != 3:
        raise VaekitError(f"{args.source} models tabular data; use `vaekit impute DATA.csv` for tables")
    if model.conditional:
        raise VaekitError(f"{args.source} is a conditional model; inpainting needs an unconditional run")
    if args.image:
        images = as_images(read_array_or_image(args.image, "image"), model.event_shape, "image")
    else:
        from .common import load_with_data

        _, data = load_with_data(argparse_namespace(run=args.source, data_root=args.data_root), run)
        images = data.split("test").x[: args.n]
    if Path(args.mask).is_file() or Path(args.mask).suffix.lower() in (".png", ".jpg", ".jpeg", ".npy", ".npz"):
        hole = read_array_or_image(args.mask, "mask")
    else:
        hole = hole_pattern(args.mask, model.event_shape, seed=args.seed)
    observed = observation_mask(hole, images)
    if observed.all():
        raise DataError("the mask hides no pixel: nothing to fill (white / nonzero marks a hidden pixel)")
    filled = impute(model, images, observed, args.method, args.samples, seed=args.seed, progress=True)
    hidden = observed < 0.5
    err = float((filled[hidden] - images[hidden]).pow(2).mean().sqrt())
    out = write_output(inpainting_figure(images, observed, {args.method: filled},
                                         title=f"Inpainting ({args.method}, {args.mask})"),
                       args.out or run.path / "inpainting.png")
    if args.array:
        from ..figures.plots import save_npy

        save_npy(args.array, filled.numpy())  # atomic, and under exactly the name given
    known = "" if args.image else f" (RMSE vs the original test images {err:.4f})"
    print(f"filled {int(hidden.sum())} hidden pixels in {len(images)} images{known}")
    print(f"wrote {out}" + (f", {args.array}" if args.array else ""))
    return 0


def argparse_namespace(**values):
    import argparse

    return argparse.Namespace(**values)
