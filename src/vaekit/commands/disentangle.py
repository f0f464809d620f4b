"""`vaekit disentangle RUN`: MIG, beta-VAE, FactorVAE, DCI and SAP scores of a run on a data set with factors."""

from __future__ import annotations

import json
from pathlib import Path

from .common import guard_json_output, load_with_data, positive_int, run_args, seed_int


def register(sub) -> None:
    """Adds `disentangle`."""
    p = sub.add_parser("disentangle", help="disentanglement metrics (MIG, beta-VAE, FactorVAE, DCI, SAP) of a run "
                                           "trained on a data set with factors, such as 'shapes'")
    p.set_defaults(func=cmd_disentangle)
    run_args(p, "where to write the scores (default: RUN/disentanglement.json)")
    p.add_argument("--n", type=positive_int, default=None,
                   help="training points per metric; every count scales with it (default 2000, a fifth of "
                        "disentanglement_lib's; 10000 = the standard settings)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--data-root", help="folder holding the data files")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_disentangle(args) -> int:
    from ..io import atomic_write_text
    from ..metrics import disentanglement_report
    from ..metrics.disentanglement import REPORT_N_TRAIN

    guard_json_output(args.out, args.force)
    n = REPORT_N_TRAIN if args.n is None else args.n
    run, data = load_with_data(args)
    report = disentanglement_report(run.model, data, n_train=n, seed=args.seed, progress=not args.no_progress)
    out = Path(args.out or run.path / "disentanglement.json")
    atomic_write_text(out, json.dumps(report.to_dict(), indent=2) + "\n")
    print(format_report(report, f"{run.path} on {data.name!r}, n = {n}"))
    print(f"wrote {out}")
    return 0


def format_report(report, title: str) -> str:
    """The scores as an aligned text table."""
    rows = [("MIG", report.mig), ("beta-VAE score", report.beta_vae), ("FactorVAE score", report.factor_vae),
            ("DCI disentanglement", report.dci_disentanglement), ("DCI completeness", report.dci_completeness),
            ("DCI informativeness", report.dci_informativeness), ("SAP", report.sap)]
    width = max(len(name) for name, _ in rows)
    lines = [title, f"  factors: {', '.join(f'{n} ({s})' for n, s in zip(report.factor_names, report.factor_sizes))}"]
    lines += [f"  {name:<{width}}  {value:.3f}" for name, value in rows]
    lines.append(f"  ({report.seconds:.0f} s)")
    return "\n".join(lines)
