"""`vaekit quality`: classifier-based sample quality of a run (see `vaekit.metrics.sample_quality`).

    vaekit quality RUN                 conditional accuracy, class histogram and its KL, Frechet distance
The classifier is trained on the run's data set on first use and cached as RUN/classifier.safetensors + .json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    guard_json_output,
    int_range,
    load_with_data,
    run_args,
    runtime_of,
    seed_int,
    thread_count,
)

if TYPE_CHECKING:
    from ..data import DataBundle
    from ..io import Run
    from ..metrics.sample_quality import Classifier


def register(sub) -> None:
    """Adds `quality`."""
    p = sub.add_parser("quality", help="sample quality measured by a classifier trained on the real data")
    p.set_defaults(func=cmd_quality)
    run_args(p, "where to write the metrics (default: RUN/quality.json)")
    p.add_argument("-n", type=int_range(2), default=10_000,
                   help="number of samples, >= 2 for a Frechet distance (default 10000)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--retrain-classifier", action="store_true", help="train a new classifier even if one is cached")
    p.add_argument("--threads", type=thread_count, help="torch CPU threads (default: all); on a busy machine 1 is often "
                   "several times faster for this small classifier")
    p.add_argument("--data-root", help="folder holding the data files")


def cmd_quality(args) -> int:
    from ..io import atomic_write_text
    from ..metrics.sample_quality import sample_quality_report

    guard_json_output(args.out, args.force)
    runtime_of(args).apply_threads()
    run, data = load_with_data(args)
    classifier = cached_classifier(run, data, retrain=args.retrain_classifier)
    result = sample_quality_report(run, data, n=args.n, seed=args.seed, classifier=classifier)
    out = Path(args.out or run.path / "quality.json")
    atomic_write_text(out, json.dumps(result.to_dict(), indent=2) + "\n")
    rows = result.rows()
    width = max(len(name) for name, _ in rows)
    print(f"{run.path} (sample quality, classifier in {run.path / 'classifier.safetensors'})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"wrote {out}")
    return 0


def cached_classifier(run: Run, data: DataBundle, retrain: bool = False) -> Classifier:
    """The run's sample-quality classifier (`run_classifier`), written into the run folder when it was trained
    now, so that the next call reads it instead of training again."""
    from ..metrics.sample_quality import CLASSIFIER_FILE, run_classifier
    from .outputs import save_classifier

    classifier, trained = run_classifier(run, data, retrain=retrain)
    if trained:
        path = save_classifier(classifier, run.path / CLASSIFIER_FILE)
        logging.getLogger("vaekit.metrics.sample_quality").info("saved the classifier to %s", path)
    return classifier
