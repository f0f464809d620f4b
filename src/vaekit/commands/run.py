"""Core subcommands: train, eval, sample, reconstruct, ls.

Every command module in `vaekit.commands` has `register(subparsers)`, which adds its subcommands with
`set_defaults(func=handler)`; a handler takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..errors import VaekitError
from .common import (
    class_names_of,
    config_type,
    device_type,
    guard_json_output,
    guard_output,
    int_range,
    load_run_of,
    load_with_data,
    modality_step,
    nonnegative_float,
    output_path,
    positive_int,
    run_args,
    seed_int,
)
from .text import add_decoding_args, refuse_text_options

# Importance samples per example of `vaekit eval` when --iw-samples is not given.
DEFAULT_IW_SAMPLES = 1000


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a VAE and write a run folder")
    p.set_defaults(func=cmd_train)
    p.add_argument("--config", help="TOML or JSON config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. model.latent_dim=32 (repeatable)")
    p.add_argument("--data", help="registered data set name or a path (file or folder)")
    p.add_argument("--data-root", help="folder holding the data files (default: $VAEKIT_DATA/<name>)")
    p.add_argument("--epochs", type=config_type("train.epochs"), help="training epochs (train.epochs, >= 1)")
    p.add_argument("--batch-size", type=config_type("train.batch_size"))
    p.add_argument("--lr", type=config_type("train.lr"), help="learning rate (train.lr, > 0)")
    p.add_argument("--latent-dim", type=config_type("model.latent_dim"))
    p.add_argument("--network", help="e.g. mlp, conv")
    p.add_argument("--likelihood", help="e.g. bernoulli, gaussian, gaussian-learned")
    p.add_argument("--beta", type=nonnegative_float, help="KL weight (objective.beta, >= 0)")
    p.add_argument("--seed", type=config_type("train.seed"))
    # No default: without the flag the config's train.device holds (cpu unless a file or --set says otherwise).
    p.add_argument("--device", type=device_type, help="where to train (train.device): auto (cuda when available), "
                   "cpu, cuda, cuda:N or mps")
    p.add_argument("--out", type=output_path, help="run folder (default: runs/<data>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint, with "
                   "its saved settings (--epochs N extends it)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress output (by default: a bar on a terminal, one line per epoch in a log file)")
    # (not --log: torchrun reads a prefix of its own --log-dir in the arguments it passes on, and stops)
    p.add_argument("--track", action="append", metavar="TRACKER", help="also send the metrics and images to "
                   "tensorboard (RUN/tensorboard/) or mlflow (train.log; repeatable)")


def register(sub) -> None:
    """Adds train, eval, sample, reconstruct and ls."""
    _train_parser(sub)

    p = sub.add_parser("eval", help="test-set ELBO, importance-sampled NLL, bits/dim, active units")
    p.set_defaults(func=cmd_eval)
    run_args(p, "where to write the metrics (default: RUN/eval.json)")
    p.add_argument("--iw-samples", type=positive_int,
                   help=f"importance samples per example (default {DEFAULT_IW_SAMPLES}); given with --samples or "
                        "--disentanglement, the likelihood is computed too")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=positive_int, help="evaluate only the first N examples")
    p.add_argument("--data-root", help="folder holding the data files")
    p.add_argument("--samples", action="store_true",
                   help="also measure generated samples: the report of `vaekit quality RUN` (a classifier trained on "
                        "the data, cached in RUN: conditional accuracy, mode coverage, Frechet distance) in eval.json")
    p.add_argument("--n-samples", type=int_range(2), default=10_000,
                   help="samples for --samples, >= 2 for a Frechet distance (default 10000)")
    p.add_argument("--disentanglement", action="store_true",
                   help="also compute MIG, beta-VAE, FactorVAE, DCI and SAP scores (data sets with factors)")
    p.add_argument("--likelihood", action="store_true",
                   help="with --samples or --disentanglement, compute the ELBO and importance-sampled NLL too "
                        "(they are skipped there by default: over a test set they take minutes)")
    p.add_argument("--skip-likelihood", action="store_true", help="skip the ELBO and NLL")

    p = sub.add_parser("sample", help="draw new data from the prior and save an image grid")
    p.set_defaults(func=cmd_sample)
    run_args(p, "output file: .png grid, or .npy/.csv array (default: RUN/samples.png)")
    p.add_argument("-n", type=positive_int, default=64, help="number of samples")
    p.add_argument("--label", type=int_range(),  # its range, 0..classes-1, is the model's (checked by it)
                   help="class to generate (conditional models; without it, one row per class)")
    p.add_argument("--per-class", type=positive_int, help="conditional models without --label: samples per class row "
                   "(default: n / classes, rounded up)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--draw", action="store_true", help="draw x ~ p(x|z) instead of its mean")
    add_decoding_args(p, "sample")

    p = sub.add_parser("reconstruct", help="encode and decode data and save originals vs reconstructions")
    p.set_defaults(func=cmd_reconstruct)
    run_args(p, "output file (default: RUN/reconstructions.png, or .txt for text runs)")
    p.add_argument("-n", type=positive_int, default=32, help="examples to show (at most the split's size)")
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", help="folder holding the data files")
    p.add_argument("--text", action="append", metavar="SENTENCE",
                   help="text runs: a sentence to reconstruct (repeatable; default: the split's first n)")
    add_decoding_args(p, "greedy")

    sub.add_parser("ls", help="list registered data sets, networks, likelihoods, priors and objectives").set_defaults(
        func=cmd_ls)


def cmd_train(args) -> int:
    from .. import build_run_config, fit
    from ..training.distributed import Cluster

    flags = {"data.name": args.data, "data.root": args.data_root, "train.epochs": args.epochs,
             "train.batch_size": args.batch_size, "train.lr": args.lr, "model.latent_dim": args.latent_dim,
             "model.network": args.network, "model.likelihood": args.likelihood, "objective.beta": args.beta,
             "train.seed": args.seed, "train.device": args.device, "train.log": args.track}
    overrides = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None] + args.overrides
    if args.no_progress:
        overrides.append("train.progress=false")
    if args.resume:
        # Every setting comes from the run folder; flags may only extend the run (see vaekit.training.resume).
        from ..io import load_config
        from ..training.resume import requested_config

        if not args.out:
            raise VaekitError("--resume needs --out RUN, the run folder to continue")
        if args.config:
            raise VaekitError("--config cannot be combined with --resume: a resumed run keeps the settings of "
                              "RUN/config.json (flags such as --epochs may extend it)")
        config = requested_config(load_config(args.out), overrides)
    else:
        config = build_run_config(args.config, overrides)
    out = Path(args.out or f"runs/{Path(config.data.name).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    result = fit(config, out, resume=args.resume, figures=True)
    cluster = Cluster.from_environment()
    if not cluster.is_main:  # a process of a torchrun job: rank 0 reports
        return 0
    last = result.history[-1] if result.history else {}
    print(f"run folder: {out}")
    if last:
        processes = f", {cluster.world} processes" if cluster.distributed else ""
        valid = f"  valid loss: {last['valid_loss']:.3f}" if "valid_loss" in last else ""
        print(f"epochs: {last['epoch']}  train loss: {last['train_loss']:.3f}{valid} nats  "
              f"({last['samples_per_s']:.0f} samples/s{processes})")
    print("wrote: " + ", ".join(p.name for p in result.figures))
    return 0


def cmd_eval(args) -> int:
    from ..evaluate import evaluate
    from ..io import atomic_write_text

    guard_output(args.out, args.force)
    run, data = load_with_data(args)
    if args.disentanglement:  # before any other evaluation work
        from ..metrics.factors import factor_source

        factor_source(data)
    report: dict = {"split": args.split}
    rows: list[tuple[str, str]] = []
    if args.skip_likelihood and (args.likelihood or args.iw_samples is not None):
        raise VaekitError("--skip-likelihood contradicts --likelihood and --iw-samples: give one or the other")
    guard_json_output(args.out, args.force)
    # The likelihood is what `eval` measures alone; next to --samples or --disentanglement it is skipped unless
    # asked for (--likelihood, or an --iw-samples of one's own), since its importance sampling takes minutes.
    others = args.samples or args.disentanglement
    if others and not (args.likelihood or args.iw_samples is not None or args.skip_likelihood):
        print("the ELBO and NLL are not computed next to --samples or --disentanglement (add --likelihood for them)",
              file=sys.stderr)
    if not args.skip_likelihood and (not others or args.likelihood or args.iw_samples is not None):
        split = data.split(args.split)
        x, y = split.x, split.y
        if args.limit:
            x, y = x[: args.limit], None if y is None else y[: args.limit]
        iw_samples = DEFAULT_IW_SAMPLES if args.iw_samples is None else args.iw_samples
        result = evaluate(run.model, x, y, iw_samples=iw_samples, progress=True)
        report.update(result.to_dict())
        rows += _likelihood_rows(result, continuous=getattr(run.model.likelihood, "support", "") == "continuous")
        own = modality_step(run.model, "eval")  # e.g. how well sentences are reconstructed
        if own is not None:
            extra, extra_rows = own(run, x)
            report.update(extra)
            rows += extra_rows
    if args.disentanglement:
        from ..metrics.disentanglement import disentanglement_report

        scores = disentanglement_report(run.model, data, progress=True)
        report["disentanglement"] = scores.to_dict()
        rows += [(name.replace("_", " "), f"{value:.3f}") for name, value in scores.scores().items()]
    if args.samples:
        from ..metrics.sample_quality import sample_quality_report
        from .quality import cached_classifier

        quality = sample_quality_report(run, data, n=args.n_samples, classifier=cached_classifier(run, data))
        report["samples"] = quality.to_dict()
        rows += quality.rows()
    out = Path(args.out or run.path / "eval.json")
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    width = max((len(r[0]) for r in rows), default=0)
    print(f"{run.path} ({args.split} split)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"wrote {out}")
    return 0


def _likelihood_rows(result, continuous: bool = False) -> list[tuple[str, str]]:
    from ..evaluate import MI_EXAMPLES

    # A Gaussian likelihood is a density over real values: its NLL can be negative and is not a code length.
    note = "  (a density: not a code length)" if continuous else ""
    rows = [("examples", f"{result.n}"), ("negative ELBO", f"{result.neg_elbo:.3f} nats"),
            ("  reconstruction", f"{result.recon:.3f} nats"), ("  KL", f"{result.kl:.3f} nats"),
            (f"NLL (IWAE, k={result.iw_samples})" if not result.point_mass else "NLL (bound)",
             f"{result.nll:.3f} nats{note}" + ("  (q(z|x) is a point mass: the negative ELBO)" if result.point_mass
                                               else "")),
            ("bits/dim", f"{result.bits_per_dim:.4f}{note}")]
    if result.perplexity_word is not None:  # text: bits per token, and perplexities
        rows[-1] = ("bits/token", f"{result.bits_per_dim:.4f}")
        rows += [("words / tokens", f"{result.words} / {result.tokens} (tokens: words and <eos>)"),
                 ("perplexity per word", f"{result.perplexity_word:.2f}"),
                 ("perplexity per token", f"{result.perplexity_token:.2f}")]
    if result.active_units is not None:
        rows.append(("active units", f"{result.active_units} / {result.latent_dim}"))
    own = result.model_diagnostics or {}
    if "codebook_usage" in own:  # a VQ-VAE
        size = round(own["codes_used"] / max(own["codebook_usage"], 1e-12))
        rows.append(("codebook", f"{own['codes_used']} of {size} codes used ({100 * own['codebook_usage']:.1f}%), "
                                 f"perplexity {own['codebook_perplexity']:.1f}"))
    if result.latent_layers:  # a hierarchical model: each stochastic layer, bottom first
        rows.append(("per layer (bottom first)", "; ".join(
            f"z{i + 1}: {size} dims, KL {kl:.2f} nats, {units} active"
            for i, (size, kl, units) in enumerate(zip(result.latent_layers, result.kl_per_layer,
                                                      result.active_units_per_layer)))))
    if result.mutual_information is not None:
        rows.append(("mutual information", f"{result.mutual_information:.3f} nats (I(x; z), at most log of "
                                           f"min(n, {MI_EXAMPLES}))"))
    if result.kl_per_dim is not None:
        rows.append(("KL per dim", " ".join(f"{v:.2f}" for v in result.kl_per_dim)))
    if result.sharpness_ratio is not None:
        rows.append(("sharpness (recon / data)", f"{result.sharpness_recon:.4f} / {result.sharpness_data:.4f} = "
                                                 f"{result.sharpness_ratio:.3f}"))
    return rows


def cmd_sample(args) -> int:
    from ..figures.plots import check_grid_size
    from ..figures.report import OUTPUT_SUFFIXES, check_output_suffix, draw_samples, sample_output
    from ..training.writer import write_output

    run = load_run_of(args)
    refuse_text_options(args, run.model)
    own = modality_step(run.model, "sample")  # e.g. sentences, printed and written to a .txt file
    if own is not None:
        return own(args, run)
    guard_output(args.out, args.force)
    if args.out:  # before any work
        check_output_suffix(args.out, OUTPUT_SUFFIXES)
    if Path(args.out or "samples.png").suffix.lower() == ".png" and len(run.model.event_shape) in (2, 3):
        check_grid_size(args.n)
    if args.label is not None and not run.model.conditional:
        raise VaekitError("--label needs a conditional model; train one with --set model.conditional=true")
    if run.model.conditional and args.label is None:  # one row per class, the same z down each column
        from ..figures.class_grid import class_rows_output, samples_per_class

        per_class = -(-args.n // run.model.num_classes) if args.per_class is None else args.per_class
        images = samples_per_class(run.model, per_class, args.seed, mean=not args.draw)
        out = Path(args.out or run.path / "samples.png")
        write_output(class_rows_output(images, out.suffix, class_names_of(run)), out)
        print(f"wrote {out}")
        return 0
    samples = draw_samples(run.model, args.n, args.label, args.seed, mean=not args.draw)
    title = "Samples" if args.label is None else f"Samples of class {args.label}"
    out = Path(args.out or run.path / "samples.png")
    write_output(sample_output(samples, run.model, out.suffix, title=title), out)
    print(f"wrote {out}")
    return 0


def cmd_reconstruct(args) -> int:
    from ..figures.report import OUTPUT_SUFFIXES, check_output_suffix, reconstruction_output
    from ..training.writer import write_output

    run = load_run_of(args)
    refuse_text_options(args, run.model)
    own = modality_step(run.model, "reconstruct")  # e.g. sentences in and out
    if own is not None and args.text:  # the sentences given: no data set needed
        return own(args, run)
    guard_output(args.out, args.force)
    if args.out and own is None:  # before any work
        check_output_suffix(args.out, OUTPUT_SUFFIXES)
    run, data = load_with_data(args, run)
    split = data.split(args.split)
    if own is not None:
        return own(args, run, split)
    n = min(args.n, len(split))
    if n < args.n:  # said, not silently changed
        print(f"the {args.split} split has {len(split)} examples: showing {n} (-n {args.n})", file=sys.stderr)
    out = Path(args.out or run.path / "reconstructions.png")
    write_output(reconstruction_output(run.model, split.x[:n], None if split.y is None else split.y[:n], out.suffix),
                 out)
    print(f"wrote {out}")
    return 0


def cmd_ls(args) -> int:
    import vaekit  # noqa: F401  (imports every registry)

    from ..core.registry import REGISTRIES

    for kind, registry in REGISTRIES.items():
        print(f"{kind[:-1] + 'ies' if kind.endswith('y') else kind + 's'}:")
        for name in registry.names():
            print(f"  {name:<18} {registry.help(name)}")
            if kind not in ("dataset", "modality"):  # a data set's options are the data.* keys; a modality has none
                options = registry.options(name).values()
                print(f"  {'':<18}   options: {', '.join(o.describe() for o in options) or 'none'}")
    return 0


