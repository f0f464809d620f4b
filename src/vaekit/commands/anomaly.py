"""`vaekit anomaly fit | score | eval | map | surfaces`: anomaly detection with a VAE (vaekit.apps.anomaly).

DATA is a registered data set (mnist, digits, ...) or a file (.npz with X and optional y as in ADBench/ODDS,
.npy, .csv). Files are read whole, in order; registered sets use --split (fit: train, score/eval: test).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..apps.choices import SCALINGS, SCORES
from ..config import MAX_EPOCHS
from ..core.outputs import check_output_suffix
from ..errors import DataError, VaekitError
from .common import (
    add_device_arg,
    config_type,
    float_range,
    guard_output,
    int_range,
    output_path,
    positive_int,
    refuse_nonempty,
    runtime_of,
    seed_int,
)


def _data_args(p, default_split: str) -> None:
    p.add_argument("data", help="registered data set or a .npz/.npy/.csv file (labels: y in .npz, --label-column)")
    p.add_argument("--split", default=default_split, help=f"split of a registered data set (default {default_split})")
    p.add_argument("--label-column", help="CSV column holding labels (excluded from the features)")
    p.add_argument("--data-root", help="folder holding the data files (default: $VAEKIT_DATA)")
    p.add_argument("--normal-class", help="label of the normal class: every other label is an anomaly")
    add_device_arg(p)  # every command reading data here runs a model


def register(sub) -> None:
    """Adds `vaekit anomaly` and its subcommands."""
    group = sub.add_parser("anomaly", help="anomaly detection: fit a detector, score data, evaluate, map defects")
    cmds = group.add_subparsers(dest="anomaly_command", required=True, metavar="ACTION")

    p = cmds.add_parser("fit", help="train a VAE anomaly detector and write a run folder")
    p.set_defaults(func=cmd_fit)
    _data_args(p, "train")
    p.add_argument("--out", type=output_path, required=True, help="run folder to create")
    p.add_argument("--score", choices=list(SCORES),
                   help="anomaly score (default: elbo for tables, nll for images; see vaekit.apps.anomaly)")
    p.add_argument("--scaling", choices=list(SCALINGS), default="robust",
                   help="tables: per-column scaling, median/IQR (robust, default), mean/std (standard) or ranks onto "
                        "N(0, 1) (quantile)")
    p.add_argument("--contamination", type=float_range(0.0, 0.5, lo_open=True), default=0.1,
                   help="expected anomaly fraction, in (0, 0.5]: the threshold is that upper quantile of the "
                        "training scores (default: 0.1)")
    p.add_argument("--epochs", type=int_range(1, MAX_EPOCHS),
                   help="training epochs (default: a short automatic length)")
    p.add_argument("--trim", type=float_range(0.0, 0.5, hi_open=True),
                   help="fraction of each training batch with the highest loss left out of the gradient, in [0, 0.5) "
                        "(default: 0.3 for tables, 0 for images)")
    p.add_argument("--latent-dim", type=config_type("model.latent_dim"))
    p.add_argument("--likelihood", help="gaussian-learned (tables), bernoulli (images), gaussian, ...")
    p.add_argument("--network", default="mlp", help="mlp or conv (images)")
    p.add_argument("--model-kind", default="vae",
                   help="vae (default) or vqvae (discrete codes; adds the score 'codes', their prior NLL)")
    p.add_argument("--types", help="CSV tables: column types, NAME=TYPE,... (as for `vaekit impute`); a table with "
                   "text columns, or with --types, gets the mixed-type detector with per-column contributions")
    p.add_argument("--seed", type=seed_int, default=0)

    p = cmds.add_parser("score", help="anomaly scores of each example, as CSV (higher = more anomalous)")
    p.set_defaults(func=cmd_score)
    p.add_argument("run", help="run folder written by `vaekit anomaly fit`")
    _data_args(p, "test")
    p.add_argument("--out", type=output_path, help="CSV file (default: RUN/scores-DATA.csv)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")

    p = cmds.add_parser("eval", help="ROC-AUC, average precision, precision@n, and a histogram of the scores")
    p.set_defaults(func=cmd_eval)
    p.add_argument("run", help="run folder written by `vaekit anomaly fit`")
    _data_args(p, "test")
    p.add_argument("--out", type=output_path,
                   help="metrics JSON (default: RUN/eval-DATA.json; the histogram goes beside it as .png)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")

    p = cmds.add_parser("map", help="per-pixel anomaly heat maps over images")
    p.set_defaults(func=cmd_map)
    p.add_argument("run", help="run folder of an image detector")
    _data_args(p, "test")
    p.add_argument("-n", type=positive_int, default=8, help="images to show (the highest-scoring ones)")
    p.add_argument("--out", type=output_path, help="PNG file (default: RUN/anomaly-maps.png)")
    p.add_argument("--force", action="store_true")

    p = cmds.add_parser("surfaces", help="demo: synthetic surface inspection with image- and pixel-level ROC-AUC")
    p.set_defaults(func=cmd_surfaces)
    p.add_argument("--out", type=output_path, required=True, help="run folder to create (detector, figure, metrics)")
    p.add_argument("--n-train", type=positive_int, default=2000, help="defect-free training images")
    p.add_argument("--n-test", type=int_range(2), default=400, help="test images, half of them defective (>= 2)")
    p.add_argument("--size", type=int_range(8), default=32, help="image side in pixels (>= 8)")
    p.add_argument("--epochs", type=int_range(1, MAX_EPOCHS), default=30)
    p.add_argument("--seed", type=seed_int, default=0)
    add_device_arg(p)


def read_data(args) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, tuple[str, ...] | None]:
    """(x in the file's own units, labels or None, feature names or None, class names or None)."""
    from ..data import DATASETS, load_data

    if args.data in DATASETS:
        bundle = load_data(args.data, args.data_root)
        split = bundle.split(args.split)
    else:
        bundle = load_data(args.data, args.data_root, valid_fraction=0.0, test_fraction=0.0,
                           label_column=args.label_column)
        split = bundle.split("train")  # the whole file, in its order
    x = split.x.double().numpy()
    if bundle.standardizer is not None:  # the loader standardised a table; the detector does its own scaling
        x = bundle.standardizer.inverse(x)
    names = bundle.meta.get("feature_names")
    y = None if split.y is None else split.y.numpy()
    return x, y, None if names is None else list(names), bundle.class_names


def _class_index(value: str, class_names: tuple[str, ...] | None) -> int:
    if class_names is not None and value in class_names:
        return class_names.index(value)
    try:
        return int(value)
    except ValueError:
        known = ", ".join(class_names) if class_names else "whole numbers"
        raise DataError(f"--normal-class {value!r} is not a label of the data (labels: {known})") from None


def anomaly_labels(y: np.ndarray | None, class_names, normal_class: str | None) -> np.ndarray | None:
    """1 = anomaly: labels other than --normal-class, or 0/1 labels as they are; None without labels."""
    if y is None:
        if normal_class is not None:
            raise DataError("--normal-class needs labels (y in a .npz, or --label-column for a CSV)")
        return None
    if normal_class is not None:
        return (y != _class_index(normal_class, class_names)).astype(np.int64)
    if class_names is not None and tuple(class_names) != ("0", "1"):
        raise DataError(f"labels are {', '.join(class_names)}: say which one is normal with --normal-class")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"labels take {len(np.unique(y))} values, not 0/1: say which is normal with --normal-class")
    return y.astype(np.int64)


def _stem(spec: str) -> str:
    return Path(spec).stem or "data"


def _is_csv(spec: str) -> bool:
    return Path(spec).suffix.lower() in (".csv", ".tsv") and Path(spec).is_file()


def read_table_cells(args, label_column: str | None = None):
    """A CSV file as texts for the mixed-type detector: (header, rows, line of the first row, labels or None, class
    names or None); the label column, when named, is left out of the model (typed "text")."""
    from ..tabular.csvtext import read_csv_text
    from ..tabular.schema import has_header, is_missing

    rows = read_csv_text(args.data).values()
    if not rows:
        raise DataError(f"{args.data}: the file is empty")
    for i, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise DataError(f"{args.data}: row {i + 1} has {len(row)} cells, the first row has {len(rows[0])}")
    header = has_header(rows)
    names, body = (rows[0], rows[1:]) if header else (None, rows)
    if not body:
        raise DataError(f"{args.data}: no data rows below the header")
    y = class_names = None
    if label_column is not None:
        stripped = [n.strip() for n in names or []]
        if label_column not in stripped:
            raise DataError(f"{args.data} has no column {label_column!r} (--label-column)")
        j = stripped.index(label_column)
        texts = [row[j].strip() for row in body]
        if any(is_missing(t) for t in texts):
            raise DataError(f"{args.data}: column {label_column!r} has missing labels")
        class_names = tuple(sorted(set(texts)))
        y = np.array([class_names.index(t) for t in texts])
    return names, body, 1 + header, y, class_names


def _mixed_table(args) -> bool:
    """A CSV file that needs the mixed-type detector: --types given, or a column (other than the labels) of text."""
    if not _is_csv(args.data):
        return False
    if getattr(args, "types", None):
        return True
    from ..tabular.schema import _mostly_numbers

    names, body, _, _, _ = read_table_cells(args)
    skip = [n.strip() for n in names or []].index(args.label_column) if args.label_column in (names or []) else -1
    return any(not _mostly_numbers([row[j] for row in body]) for j in range(len(body[0])) if j != skip)


def _fit_table(args, out: Path) -> int:
    from ..tabular.anomaly import TableAnomalyDetector
    from ..tabular.schema import parse_types

    names, body, first, y, class_names = read_table_cells(args, args.label_column)
    if args.normal_class is not None:
        keep = anomaly_labels(y, class_names, args.normal_class) == 0
        if not keep.any():
            raise DataError(f"no example has label {args.normal_class!r}")
        body = [row for row, k in zip(body, keep) if k]
    types = parse_types(args.types)
    if args.label_column is not None:
        types[args.label_column] = "text"
    for flag, value, default in (("--score", args.score, None), ("--scaling", args.scaling, "robust"),
                                 ("--likelihood", args.likelihood, None), ("--network", args.network, "mlp"),
                                 ("--model-kind", args.model_kind, "vae"), ("--trim", args.trim, None)):
        if value != default:  # used or refused, never dropped
            raise VaekitError(f"{flag} does not apply to a mixed-type table (one likelihood per column, scored by "
                              "-ELBO); leave it out")
    detector = TableAnomalyDetector(types=types, latent_dim=args.latent_dim or 8, epochs=args.epochs,
                                    contamination=args.contamination, random_state=args.seed, verbose=True,
                                    device=str(runtime_of(args).device))
    detector.fit_cells(names, body, args.data, first)
    print(detector.schema_.describe())
    detector.save(out)
    share = detector.labels_.mean()
    print(f"run folder: {out}")
    print(f"trained on {len(body)} rows (mixed-type table); threshold {detector.threshold_:.3f} "
          f"({share:.1%} of the training data above it)")
    return 0


def cmd_fit(args) -> int:
    from ..apps.anomaly import VAEAnomalyDetector
    from ..config import DataConfig

    out = Path(args.out)
    refuse_nonempty(out)
    if _mixed_table(args):
        return _fit_table(args, out)
    x, y, names, class_names = read_data(args)
    if args.normal_class is not None:
        keep = anomaly_labels(y, class_names, args.normal_class) == 0
        if not keep.any():
            raise DataError(f"no example has label {args.normal_class!r}")
        x = x[keep]
    detector = VAEAnomalyDetector(latent_dim=args.latent_dim, epochs=args.epochs, score=args.score,
                                  contamination=args.contamination, likelihood=args.likelihood, network=args.network,
                                  scaling=args.scaling, random_state=args.seed, verbose=True,
                                  device=str(runtime_of(args).device), model_kind=args.model_kind, trim=args.trim)
    detector.fit(x, feature_names=names)
    detector.save(out, data=DataConfig(name=args.data, root=args.data_root))  # `vaekit reconstruct RUN` finds it
    share = detector.labels_.mean()
    print(f"run folder: {out}")
    print(f"trained on {len(x)} examples ({detector.input_kind_}); threshold {detector.threshold_:.3f} "
          f"({share:.1%} of the training data above it)")
    return 0


def _scores(args):
    from ..apps.anomaly import VAEAnomalyDetector
    from ..tabular.anomaly import TableAnomalyDetector, is_table_run

    if is_table_run(args.run):
        detector = TableAnomalyDetector.load(args.run, device=runtime_of(args).device)
        if not _is_csv(args.data):
            raise DataError(f"{args.run} is a mixed-type table detector: give a CSV file, not {args.data!r}")
        names, body, first, y, class_names = read_table_cells(args, args.label_column)
        expected = [c.name for c in detector.schema_.columns]
        if names is not None and detector.schema_.names_given and [n.strip() for n in names] != expected:
            raise DataError(f"{args.data}: the columns differ from the training table's ({', '.join(expected[:6])}"
                            f"{', ...' if len(expected) > 6 else ''})")
        scores, excess = detector.score_cells(body, args.data, first)
        detector.top_columns_ = [detector.column_names_[j] for j in excess.argmax(1)]
        return detector, scores, y, class_names
    detector = VAEAnomalyDetector.load(args.run, device=runtime_of(args).device)
    detector.verbose = True
    x, y, names, class_names = read_data(args)
    return detector, detector.decision_function(x, feature_names=names), y, class_names


def cmd_score(args) -> int:
    from ..io import atomic_write_text

    guard_output(args.out, args.force)
    if args.out:  # before any work
        check_output_suffix(args.out, (".csv",))
    detector, scores, y, class_names = _scores(args)
    labels = anomaly_labels(y, class_names, args.normal_class) if y is not None else None
    out = Path(args.out or Path(args.run) / f"scores-{_stem(args.data)}.csv")
    flagged = (scores > detector.threshold_).astype(int)
    top = getattr(detector, "top_columns_", None)  # mixed tables: the column most above its usual contribution
    header = "index,score,anomaly" + (",label" if labels is not None else "") + (",top_column" if top else "")
    lines = [f"{i},{s:.6g},{f}" + (f",{labels[i]}" if labels is not None else "")
             + (f",{_csv_cell(top[i])}" if top else "") for i, (s, f) in enumerate(zip(scores, flagged))]
    atomic_write_text(out, "\n".join([header, *lines]) + "\n")
    print(f"{len(scores)} examples, {flagged.sum()} above the threshold {detector.threshold_:.3f}")
    print(f"wrote {out}")
    return 0


def _csv_cell(text: str) -> str:
    from ..tabular.csvtext import quote_cell

    return quote_cell(text, ",")


def cmd_eval(args) -> int:
    from ..apps.anomaly import detection_metrics, save_score_histogram
    from ..io import atomic_write_text

    out = Path(args.out or Path(args.run) / f"eval-{_stem(args.data)}.json")
    figure = out.with_suffix(".png")
    guard_output(str(out), args.force)
    guard_output(str(figure), args.force)
    detector, scores, y, class_names = _scores(args)
    labels = anomaly_labels(y, class_names, args.normal_class)
    if labels is None:
        raise DataError(f"{args.data} has no labels: evaluation needs y (1 = anomaly) or --label-column")
    metrics = detection_metrics(labels, scores, detector.threshold_)
    atomic_write_text(out, json.dumps({"data": args.data, **metrics}, indent=2) + "\n")
    save_score_histogram(scores, labels, figure, detector.threshold_, title=f"Anomaly scores on {_stem(args.data)}")
    print(f"{args.run} on {args.data}: {metrics['n']} examples, {metrics['n_anomalies']} anomalies")
    for key in ("roc_auc", "average_precision", "precision_at_n", "precision", "recall", "f1"):
        print(f"  {key:<18} {metrics[key]:.4f}")
    print(f"wrote {out}, {figure}")
    return 0


def cmd_map(args) -> int:
    from ..apps.anomaly import VAEAnomalyDetector
    from ..apps.surfaces import anomaly_maps, pixel_scores, save_anomaly_figure

    guard_output(args.out, args.force)
    if args.out:  # before any work
        check_output_suffix(args.out, (".png",))
    from ..tabular.anomaly import is_table_run

    if is_table_run(args.run):
        raise VaekitError(f"{args.run} is a mixed-type table detector: anomaly maps need an image detector")
    detector = VAEAnomalyDetector.load(args.run, device=runtime_of(args).device)
    if detector.input_kind_ != "image":
        raise VaekitError(f"{args.run} is a tabular detector: anomaly maps need an image detector")
    x, _, _, _ = read_data(args)
    scores = detector.decision_function(x)
    top = np.argsort(-scores)[: args.n]
    if len(top) < args.n:  # said, not silently changed
        print(f"{args.data} has {len(scores)} images: showing {len(top)} (-n {args.n})", file=sys.stderr)
    images = detector.as_model_input(x[top])
    maps = pixel_scores(anomaly_maps(detector.model_, images))
    out = save_anomaly_figure(images.numpy(), maps, args.out or Path(args.run) / "anomaly-maps.png",
                              titles=[f"#{i} {scores[i]:.0f}" for i in top],
                              title="Highest-scoring images and their per-pixel NLL")
    print(f"wrote {out}")
    return 0


def cmd_surfaces(args) -> int:
    from ..apps.surfaces import run_surface_demo

    out = Path(args.out)
    refuse_nonempty(out)
    report = run_surface_demo(out, n_train=args.n_train, n_test=args.n_test, size=args.size, epochs=args.epochs,
                              seed=args.seed, device=str(runtime_of(args).device))
    print(f"image-level ROC-AUC {report['image_roc_auc']:.3f}, pixel-level ROC-AUC {report['pixel_roc_auc']:.3f}")
    print(f"wrote {out}")
    return 0
