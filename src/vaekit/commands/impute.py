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
    t.add_argument("--types", help="column types, overriding the inferred ones: NAME=TYPE,... with TYPE real, positive, "
                   "count, binary, categorical, ordinal (levels in order: size=ordinal:S<M<L) or text (kept as it is); "
                   "NAME is a header name or a 1-based position")
    t.add_argument("--draws", type=positive_int,
                   help="also write N multiple imputations, OUT.draw1.csv ... (drawn from p(missing | observed))")
    t.add_argument("--show-types", action="store_true", help="print the column types and stop")
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
        given = [flag for flag, value in (("--epochs", args.epochs), ("--no-header", args.no_header),
                                          ("--types", args.types), ("--draws", args.draws),
                                          ("--show-types", args.show_types)) if value]
        if given:  # table options: used or refused, never dropped
            raise VaekitError(f"{', '.join(given)} apply to CSV tables, and {source} is a run folder (images)")
        return _impute_images(args)
    return _impute_table(args)


def _impute_table(args) -> int:
    from ..tabular.csvtext import read_csv_text, write_replaced
    from ..tabular.imputer import TableImputer
    from ..tabular.schema import has_header

    source = Path(args.source)
    if not source.is_file():
        raise DataError(f"{source} does not exist (give a CSV file, or a run folder for images)")
    if args.show_types:
        given = [flag for flag, value in (("--out", args.out), ("--draws", args.draws), ("--epochs", args.epochs),
                                          ("--force", args.force)) if value]
        if given:  # used or refused, never dropped
            raise VaekitError(f"--show-types prints the column types and writes nothing: leave out {', '.join(given)}")
    out = Path(args.out) if args.out else source.with_name(f"{source.stem}.imputed{source.suffix or '.csv'}")
    draw_paths = [out.with_name(f"{out.stem}.draw{d + 1}{out.suffix}") for d in range(args.draws or 0)]
    for path in (out, *draw_paths):
        if path.resolve() == source.resolve():
            raise VaekitError(f"{path} is the input file; the input is never overwritten: choose another --out")
        guard_output(str(path), args.force)
    csv = read_csv_text(source)
    rows = csv.values()
    if not rows:
        raise DataError(f"{source}: the file is empty")
    for i, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise DataError(f"{source}: row {i + 1} has {len(row)} cells, the first row has {len(rows[0])}")
    header = not args.no_header and has_header(rows)
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"{source}: no data rows below the header")
    imputer = TableImputer(types=args.types, epochs=args.epochs, method=args.method, samples=args.samples,
                           random_state=args.seed, verbose=True, device=str(runtime_of(args).device))
    first = 1 + header
    schema = imputer.infer(rows[0] if header else None, body, str(source), first)
    print(schema.describe())
    missing = sum(c.missing for c in schema.modelled)
    if args.show_types:
        return 0
    if missing == 0:
        write_replaced(csv, {}, out)
        print(f"no missing values in the {len(schema.modelled)} modelled columns; wrote an unchanged copy to {out}")
        return 0
    imputer.fit_cells(rows[0] if header else None, body, str(source), first)
    new = imputer.fill_cells(body, str(source), first)
    write_replaced(csv, {(i + header, j): text for (i, j), text in new.items()}, out)
    kept = len(schema.columns) - len(schema.modelled)
    print(f"filled {len(new)} missing cells in {len(schema.modelled)} modelled columns"
          + (f" ({kept} text column(s) kept as they were)" if kept else ""))
    if draw_paths:
        for path, cells in zip(draw_paths, imputer.sample_cells(body, len(draw_paths), str(source), first)):
            write_replaced(csv, {(i + header, j): text for (i, j), text in cells.items()}, path)
        print(f"wrote {len(draw_paths)} multiple imputations: {draw_paths[0]} ... {draw_paths[-1].name}")
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
