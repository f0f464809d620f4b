"""`vaekit latent ACTION RUN`: latent-space analysis of a trained run (see docs/latent.md).

    embed        posterior means / variances (+ samples) of a split -> .npz
    plot         2-D / 3-D scatter of the codes (direct, PCA, t-SNE, UMAP) -> .png or interactive .html
    traverse     one row per latent dimension, ordered by KL -> .png
    interpolate  linear and slerp paths between two examples, or the latent grid of a 2-D model -> .png
    cluster      k-means / GMM on the codes vs raw inputs vs PCA, scored against labels -> .json + confusion .png
    arithmetic   attribute vectors (label or boolean column) applied with strengths, and analogies -> .png + .json

Defaults need only the run folder: the run's own data set, its test split, outputs in RUN/latent/.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .common import (
    check_index,
    float_list,
    guard_output,
    int_list,
    int_range,
    load_with_data,
    modality_step,
    nonnegative_int,
    positive_float,
    positive_int,
    run_args,
    runtime_of,
    seed_int,
    thread_count,
)

OUT_DIR = "latent"


def register(sub) -> None:
    """Adds `latent` and its actions."""
    parser = sub.add_parser("latent", help="latent-space analysis: embed, plot, traverse, interpolate, cluster, "
                                           "arithmetic")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = _action(actions, "embed", cmd_embed, "encode a split to posterior means and variances (.npz)",
                "output .npz (default: RUN/latent/latents.npz)", max_points=None)
    p.add_argument("--samples", type=nonnegative_int, default=0,
                   help="also store this many draws z ~ q(z|x) per example")

    p = _action(actions, "plot", cmd_plot, "2-D / 3-D scatter plot of the latent codes coloured by label",
                "output .png (static) or .html (interactive) (default: RUN/latent/plot_METHOD_DIMSd.png)",
                max_points=10000)
    p.add_argument("--method", default="auto", choices=("auto", "none", "pca", "tsne", "umap"),
                   help="projection: auto = the codes themselves for 2-D/3-D latent spaces, else PCA")
    p.add_argument("--dims", type=int_range(2, 3), default=2, help="2-D or 3-D plot")
    p.add_argument("--embedding", help="plot a saved embedding (.npz from `latent embed`) instead of encoding")

    p = _action(actions, "traverse", cmd_traverse, "vary one latent dimension at a time and decode",
                "output .png grid or .npy array (default: RUN/latent/traversal.png)", max_points=2000)
    p.add_argument("--dims", type=int_list(0), help="latent dimensions to vary, e.g. 0,3,5 (default: all)")
    p.add_argument("--index", type=int_range(), help="traverse around this example of the split (default: the prior "
                                                    "mean; negative counts from the end)")
    p.add_argument("--span", type=positive_float, default=3.0, help="range in prior standard deviations (default 3)")
    p.add_argument("--steps", type=int_range(2), default=9, help="images per row, >= 2 (default 9)")
    p.add_argument("--label", help="class to decode with (conditional models)")

    p = _action(actions, "interpolate", cmd_interpolate, "decode linear / slerp paths between two examples",
                "output .png or .npy (default: RUN/latent/interpolation.png, or grid.png with --grid)")
    p.add_argument("--a", default="0", help="first end: an index into the split, an image / .npy file, or (text "
                                            "runs) a sentence")
    p.add_argument("--b", default="1", help="second end: an index into the split, an image / .npy file, or (text "
                                            "runs) a sentence")
    p.add_argument("--method", default="both", choices=("linear", "slerp", "both"))
    p.add_argument("--steps", type=int_range(2), default=10, help="points on each path, >= 2 (default 10)")
    p.add_argument("--grid", action="store_true", help="the latent-plane grid (manifold plot) instead")
    p.add_argument("--grid-size", type=int_range(2), default=15, help="grid points per side, >= 2 (default 15)")
    p.add_argument("--grid-dims", type=int_list(0, example="0,1"),
                   help="the two dimensions the grid varies, e.g. 0,1 (needed unless 2-D)")
    p.add_argument("--label", help="class to decode with (conditional models)")

    p = _action(actions, "cluster", cmd_cluster, "k-means / GMM clustering of the codes, scored against labels",
                "output .json; the confusion figure goes beside it (default: RUN/latent/clusters.json)",
                max_points=None)
    p.add_argument("--k", type=positive_int, help="number of clusters (default: the number of classes, else 10)")
    p.add_argument("--methods", default="kmeans,gmm", help="comma-separated: kmeans, gmm")
    p.add_argument("--no-baselines", action="store_true", help="skip clustering the raw inputs and their PCA")
    p.add_argument("--embedding", help="cluster a saved embedding (.npz) instead of encoding")

    p = _action(actions, "arithmetic", cmd_arithmetic, "attribute vectors between two groups, and analogies",
                "output .png or .npy; the vector goes beside it as .json (default: RUN/latent/arithmetic.png)")
    p.add_argument("--target", help="target group: a label (number or class name)")
    p.add_argument("--source", help="source group: a label (default: all other examples)")
    p.add_argument("--attribute", help="boolean attribute column instead of labels: 'ink' (thick strokes), a "
                                       "feature of tabular data, or a column of --attributes")
    p.add_argument("--attributes", help="CSV (with header) or .npy file with one row per example of the split")
    p.add_argument("--negate", action="store_true", help="use the attribute's False group as the target")
    p.add_argument("--apply", type=int_list(example="0,5,9"),
                   help="indices of the examples to move, e.g. 0,5,9 (default: 8 of the source group)")
    p.add_argument("--strength", type=float_list(), default="0,0.5,1,1.5,2",
                   help="strengths of the vector, finite numbers (default 0,0.5,1,1.5,2)")
    p.add_argument("--analogy", action="append", default=[], metavar="A,B,C", type=int_list(example="3,8,5"),
                   help="decode mu(A) - mu(B) + mu(C) for three indices (repeatable); replaces the vector figure")
    p.add_argument("--label", help="class to decode analogies with (conditional models)")


def _action(actions, name, handler, help_text, out_help, max_points: int | None = 0):
    p = actions.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(func=_with_threads(handler))
    run_args(p, out_help)
    p.add_argument("--split", default="test", help="which split to use (default: test)")
    p.add_argument("--data-root", help="folder holding the data files")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=thread_count, help="CPU threads for torch, t-SNE/UMAP and clustering (default: all); "
                                               "1 is often faster on a machine busy with other work")
    if max_points != 0:
        default = "all" if max_points is None else max_points
        p.add_argument("--max-points", type=positive_int, default=max_points,
                       help=f"use a random subset of at most this many examples (default: {default})")
    return p


def _with_threads(handler):
    """Runs `handler` with torch and the OpenMP/BLAS pools (threadpoolctl) limited to --threads."""

    def run(args) -> int:
        if args.threads is None:
            return handler(args)
        from threadpoolctl import threadpool_limits

        runtime_of(args).apply_threads()
        with threadpool_limits(limits=args.threads):
            return handler(args)

    return run


# --- helpers ------------------------------------------------------------------------------------------------


def _out(args, run, default: str, suffixes: tuple[str, ...]) -> Path:
    """--out (checked: suffix, not overwritten without --force) or RUN/latent/<default>."""
    guard_output(args.out, args.force)
    path = Path(args.out) if args.out else run.path / OUT_DIR / default
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"cannot write {str(path)!r}: use a file ending in {' or '.join(suffixes)}")
    return path


def _beside(args, path: Path, suffix: str) -> Path:
    """A second output next to `path` (same stem), under the same no-overwrite rule."""
    other = path.with_name(path.stem + suffix)
    if args.out:
        guard_output(str(other), args.force)
    return other


def _load(args):
    """(run, data bundle, the split named by --split)."""
    run, data = load_with_data(args)
    split = data.split(args.split)
    return run, data, split


def _rows(args, n: int) -> np.ndarray:
    from ..analysis import subsample_indices

    return subsample_indices(n, getattr(args, "max_points", None), args.seed)


def _embed(run, split, rows: np.ndarray, progress: bool = True, n_samples: int = 0):
    from ..analysis import encode_dataset
    from ..analysis.latents import Embedding

    idx = torch.as_tensor(rows)
    y = None if split.y is None else split.y[idx]
    # All rows in order: the split itself, which encode_dataset reads in chunks (streamed data are never loaded
    # whole); a subsample is read first (at most --max-points rows).
    whole = len(rows) == len(split) and bool((idx == torch.arange(len(split))).all())
    emb = encode_dataset(run.model, split.x if whole else split.x[idx], y, n_samples=n_samples, progress=progress)
    return Embedding(mean=emb.mean, var=emb.var, index=rows, labels=emb.labels, samples=emb.samples,
                     kl_per_dim=emb.kl_per_dim)


def _label(text: str | None, data) -> int | None:
    """A class given as a number or as one of the data set's class names."""
    if text is None:
        return None
    names = list(data.class_names or [])
    if text in names:
        return names.index(text)
    try:
        value = int(text)
    except ValueError:
        known = f" (classes: {', '.join(names)})" if names else ""
        raise ConfigError(f"unknown label {text!r}{known}") from None
    if data.num_classes and not 0 <= value < data.num_classes:
        raise ConfigError(f"label {value} is out of range: this data set has labels 0..{data.num_classes - 1}")
    return value


def _example(text: str, split, model, split_name: str) -> tuple[torch.Tensor, int | None, str]:
    """An index into the split or a file (.npy array, or a PNG/JPEG image of the model's size)."""
    from ..analysis import read_example

    try:
        i = check_index(int(text), len(split), split_name)
        return split.x[i], None if split.y is None else int(split.y[i]), f"#{i}"
    except ValueError:
        pass
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"{text!r} is neither an index into the {split_name} split nor an existing file")
    return read_example(path, model.event_shape), None, path.name


# --- actions ------------------------------------------------------------------------------------------------


def cmd_embed(args) -> int:
    from .outputs import save_embedding

    run, data, split = _load(args)
    out = _out(args, run, "latents.npz", (".npz",))
    emb = _embed(run, split, _rows(args, len(split)), n_samples=args.samples)
    save_embedding(emb, out)
    print(f"encoded {len(emb)} examples of the {args.split} split to {emb.latent_dim} dimensions")
    if emb.kl_per_dim is not None:
        print("KL per dim (nats): " + " ".join(f"{v:.2f}" for v in emb.kl_per_dim)
              + f"  (active units: {int(emb.active().sum())} of {emb.latent_dim})")
    print(f"wrote {out}")
    return 0


def cmd_plot(args) -> int:
    from ..analysis import load_embedding, project, scatter_figure, scatter_html
    from ..analysis.projection import check_dims, require_backend, resolve_method
    from ..figures.plots import write_output

    run, data, split = _load(args)
    check_dims(run.model.latent_dim, args.dims)
    method = resolve_method(args.method, run.model.latent_dim, args.dims)
    require_backend(method)  # before the encoding, so that a missing package fails at once
    out = _out(args, run, f"plot_{method}_{args.dims}d.png", (".png", ".html"))
    if args.embedding:
        emb = load_embedding(args.embedding)
        emb = emb.subset(_rows(args, len(emb)))
    else:
        emb = _embed(run, split, _rows(args, len(split)))
    if method in ("tsne", "umap"):
        print(f"running {method} on {len(emb)} codes ...", file=sys.stderr, flush=True)
    proj = project(emb.mean, args.dims, method, seed=args.seed, n_jobs=args.threads)
    name = {"none": "latent codes", "pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}[proj.method]
    title = f"{data.name} {args.split} split: {name} of {len(emb)} posterior means ({run.model.latent_dim}-D latent)"
    if out.suffix.lower() == ".html":
        write_output(scatter_html(proj.coords, emb.labels, emb.index, data.class_names, proj.axis_names, title), out)
    else:
        write_output(scatter_figure(proj.coords, emb.labels, data.class_names, proj.axis_names, title), out)
    print(f"{name} of {len(emb)} codes to {args.dims}D took {proj.seconds:.1f} s")
    print(f"wrote {out}")
    return 0


def cmd_traverse(args) -> int:
    from ..analysis import decoded_output, traverse
    from ..figures.plots import write_output

    run, data, split = _load(args)
    model = run.model
    dims = args.dims
    out = _out(args, run, "traversal.png", (".png", ".npy"))
    base, where, label = None, "the prior mean", _label(args.label, data)
    if args.index is not None:
        i = check_index(args.index, len(split), args.split)
        y = None if split.y is None else split.y[i : i + 1]
        if label is None and y is not None:
            label = int(y[0])  # decode in the example's own class (ignored by unconditional models)
        with torch.no_grad():
            base = model.embed(split.x[i : i + 1].to(runtime_of(args).device), y)[0]
        where = f"example {i}"
    emb = _embed(run, split, _rows(args, len(split)), progress=False)  # KL per dimension, for the row order
    result = traverse(model, dims, base, span=args.span, steps=args.steps, embedding=emb, label=label)
    cols = [f"{v:+.1f}σ" if i % max(1, args.steps // 9) == 0 else "" for i, v in enumerate(result.values)]
    title = f"Latent traversal around {where} (rows: most informative first)"
    write_output(decoded_output(result.images, model.event_shape, out.suffix, args.steps, title,
                                row_labels=result.row_labels(), col_labels=cols), out)
    for text in result.row_labels():
        print(f"  {text}")
    print(f"wrote {out}")
    return 0


def cmd_interpolate(args) -> int:
    from ..analysis import decoded_output, interpolate, latent_grid
    from ..figures.plots import write_output

    run, data, split = _load(args)
    model = run.model
    text_like = modality_step(model, "interpolate")  # e.g. between two sentences
    if text_like is not None:
        return text_like(args, run, split)
    label = _label(args.label, data)
    if args.grid:
        out = _out(args, run, "grid.png", (".png", ".npy"))
        grid = latent_grid(model, args.grid_size, args.grid_dims, label=label)
        n = args.grid_size
        every = max(1, n // 8)
        cols = [f"{v:.2f}" if j % every == 0 else "" for j, v in enumerate(grid.values[0])]
        rows = [f"{v:.2f}" if j % every == 0 else "" for j, v in enumerate(grid.values[1])]
        title = f"Latent grid: z{grid.dims[0]} across (columns), z{grid.dims[1]} down (rows)"
        write_output(decoded_output(grid.images, model.event_shape, out.suffix, n, title,
                                    row_labels=rows, col_labels=cols), out)
        print(f"wrote {out}")
        return 0
    out = _out(args, run, "interpolation.png", (".png", ".npy"))
    x_a, y_a, name_a = _example(args.a, split, model, args.split)
    x_b, y_b, name_b = _example(args.b, split, model, args.split)
    methods = ("linear", "slerp") if args.method == "both" else (args.method,)
    if label is None:
        label = y_a  # decode in the class of a (ignored by unconditional models)
    strips, row_labels = [], []
    for method in methods:
        path = interpolate(model, x_a, x_b, args.steps, method, y_a, y_b, label)
        strips.append(torch.cat([x_a[None], path.images, x_b[None]]))  # (steps + 2, *event): data | path | data
        row_labels.append(method)
    t = np.linspace(0, 1, args.steps)
    cols = ["a"] + [f"{v:.2f}" if i in (0, args.steps - 1) or args.steps <= 10 else "" for i, v in enumerate(t)]
    title = f"Interpolation from {name_a} (a) to {name_b} (b)"
    write_output(decoded_output(torch.stack(strips), model.event_shape, out.suffix, args.steps + 2, title,
                                row_labels=row_labels, col_labels=cols + ["b"]), out)
    print(f"wrote {out}")
    return 0


def cmd_cluster(args) -> int:
    from ..analysis import compare_clusterings, confusion_figure, load_embedding, matched_confusion
    from ..analysis.clustering import METHODS
    from ..figures.plots import write_output
    from ..io import atomic_write_text

    run, data, split = _load(args)
    out = _out(args, run, "clusters.json", (".json",))
    methods = tuple(m for m in args.methods.replace(" ", "").split(",") if m)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown clustering method {(unknown or [''])[0]!r}; choose from {', '.join(METHODS)}")
    if args.k is not None and not args.embedding and args.k > len(_rows(args, len(split))):  # before encoding
        raise ConfigError(f"--k must be between 1 and the number of examples ({len(_rows(args, len(split)))}), "
                          f"got {args.k}")
    if args.embedding:
        emb = load_embedding(args.embedding)
    else:
        emb = _embed(run, split, _rows(args, len(split)))
    labels = emb.labels
    k = args.k or (data.num_classes if labels is not None and data.num_classes else 10)
    inputs = None
    if not args.no_baselines:  # the baselines cluster the raw inputs: they must fit in memory
        from ..core.limits import check_allocation

        n_values = len(emb.index) * int(np.prod(split.x.shape[1:]))
        check_allocation(4 * n_values, f"the clustering baselines on {len(emb.index):,} raw inputs (skip them "
                                       "with --no-baselines, or lower --max-points)")
        inputs = split.x[torch.as_tensor(emb.index)].numpy()
    started = time.perf_counter()
    results = compare_clusterings(emb.mean, inputs, labels, k, methods, args.seed, progress=True)
    figures = []
    if labels is not None:
        names = [str(n) for n in (data.class_names or range(int(labels.max()) + 1))]
        for r in results:
            if r.features != "latent means":
                continue
            matrix, clusters = matched_confusion(labels, r.assignments)
            fig = confusion_figure(matrix, names[: matrix.shape[0]],
                                   f"{r.method} on latent means of {data.name} ({args.split}): "
                                   f"accuracy {r.scores.accuracy:.3f}, NMI {r.scores.nmi:.3f}",
                                   col_names=[f"c{c}" for c in clusters])
            figures.append(write_output(fig, _beside(args, out, f"_{r.method}.png")))
    report = {"run": str(run.path), "split": args.split, "n": len(emb), "k": k,
              "results": [r.to_dict() for r in results]}
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"{len(emb)} examples of the {args.split} split, k = {k} ({time.perf_counter() - started:.0f} s)")
    header = f"  {'features':<26} {'method':<7}" + ("   ARI    NMI    acc" if labels is not None else "")
    print(header)
    for r in results:
        scores = "" if r.scores is None else f" {r.scores.ari:6.3f} {r.scores.nmi:6.3f} {r.scores.accuracy:6.3f}"
        print(f"  {r.features:<26} {r.method:<7}{scores}")
    if labels is None:
        print("  (no labels: scores need a labelled split)")
    for line in clustering_verdicts(results):
        print(line)
    print("wrote " + ", ".join(str(p) for p in [out, *figures]))
    return 0


def clustering_verdicts(results) -> list[str]:
    """One line per method saying whether the latent means cluster better or worse (by NMI) than the best
    baseline (raw inputs, their PCA) with the same method; nothing without labels or baselines."""
    lines = []
    for method in dict.fromkeys(r.method for r in results):
        scored = [r for r in results if r.method == method and r.scores is not None]
        latent = [r for r in scored if r.features == "latent means"]
        others = [r for r in scored if r.features != "latent means"]
        if not latent or not others:
            continue
        best = max(others, key=lambda r: r.scores.nmi)
        gap = latent[0].scores.nmi - best.scores.nmi
        verdict = "better than" if gap > 0 else "worse than" if gap < 0 else "as well as"
        lines.append(f"  {method}: the latent means cluster {verdict} {best.features} (NMI {latent[0].scores.nmi:.3f} "
                     f"against {best.scores.nmi:.3f})")
    return lines


def cmd_arithmetic(args) -> int:
    from ..analysis import (
        analogy,
        apply_vector,
        attribute_vector,
        dataset_attribute,
        decoded_output,
        label_vector,
        read_attribute_file,
    )
    from ..figures.plots import write_output
    from ..io import atomic_write_text

    run, data, split = _load(args)
    model = run.model
    own = modality_step(model, "arithmetic")  # e.g. analogies of sentences
    if own is not None:
        return own(args, run, split)
    out = _out(args, run, "analogy.png" if args.analogy else "arithmetic.png", (".png", ".npy"))
    n = len(split)
    if args.analogy:
        rows, labels = [], []
        for triple in args.analogy:
            if len(triple) != 3:
                raise ConfigError(f"--analogy takes three indices A,B,C; got {','.join(map(str, triple))}")
            a, b, c = (check_index(i, n, args.split) for i in triple)
            decoded, _ = analogy(model, split.x[a], split.x[b], split.x[c], _label(args.label, data))
            rows.append(torch.stack([split.x[a], split.x[b], split.x[c], decoded[0]]))
            labels.append(f"#{a} - #{b} + #{c}")
        write_output(decoded_output(torch.stack(rows), model.event_shape, out.suffix, 4,
                                    "Latent analogies: decode(a - b + c)", row_labels=labels,
                                    col_labels=["a", "b", "c", "a - b + c"]), out)
        print(f"wrote {out}")
        return 0

    if (args.target is None) == (args.attribute is None):
        raise ConfigError("define the groups with --target LABEL [--source LABEL], or with --attribute NAME")
    if args.target is not None:  # labels and indices are checked before the data are encoded
        _label(args.target, data), _label(args.source, data)
    if args.apply is not None:
        [check_index(i, n, args.split) for i in args.apply]
    emb = _embed(run, split, np.arange(n))
    if args.attribute is not None:
        if args.attributes:
            mask = read_attribute_file(args.attributes, args.attribute, n)
        else:
            mask = dataset_attribute(split.x, args.attribute, data.meta.get("feature_names"), data.standardizer)
        target, source = (~mask, mask) if args.negate else (mask, ~mask)
        name = ("not " if args.negate else "") + args.attribute
        vec = attribute_vector(emb.mean, target, source, name)
    else:
        target_label, source_label = _label(args.target, data), _label(args.source, data)
        vec = label_vector(emb.mean, emb.labels, target_label, source_label, data.class_names)
        source = emb.labels == source_label if source_label is not None else emb.labels != target_label
    indices = args.apply
    if indices is None:
        indices = np.flatnonzero(source)[:8].tolist()
    indices = [check_index(i, n, args.split) for i in indices]
    outside = [i for i in indices if not source[i]]
    if outside:  # moving an example that is not of the source group is allowed, but rarely what was meant
        shown = ", ".join(f"#{i}" for i in outside[:8]) + (" ..." if len(outside) > 8 else "")
        print(f"note: {shown} {'is' if len(outside) == 1 else 'are'} not in the source group; without --apply the "
              "first 8 examples of the source group are moved", file=sys.stderr)
    strengths = args.strength
    idx = torch.as_tensor(indices)
    shifted = apply_vector(model, split.x[idx], vec.vector, strengths, None if split.y is None else split.y[idx])
    grid = torch.cat([split.x[idx][:, None], shifted.images], 1)  # (N, 1 + S, *event): data | shifted decodings
    title = f"Attribute vector '{vec.name}' added with strength s"
    write_output(decoded_output(grid, model.event_shape, out.suffix, 1 + len(strengths), title,
                                row_labels=[f"#{i}" for i in indices],
                                col_labels=["data"] + [f"s={s:g}" for s in strengths]), out)
    numbers = _beside(args, out, ".json")
    atomic_write_text(numbers, json.dumps({"name": vec.name, "n_target": vec.n_target, "n_source": vec.n_source,
                                           "norm": float(np.linalg.norm(vec.vector)),
                                           "vector": vec.vector.tolist(), "applied_to": indices,
                                           "strengths": strengths}, indent=2) + "\n")
    print(f"vector '{vec.name}': {vec.n_source} source and {vec.n_target} target examples, "
          f"norm {np.linalg.norm(vec.vector):.3f}")
    print(f"wrote {out}, {numbers}")
    return 0


