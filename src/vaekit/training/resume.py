"""What a resumed run may change: the settings of a run come from its folder, not from the command line.

`vaekit train --out RUN --resume` continues the run that was started: data, model, objective and every train
setting are read from RUN/config.json. A setting given again with `--resume` must either equal the saved one,
or be one of the few that do not change what the run computes so far:

    train.epochs      more epochs than saved: the run is extended (written back to config.json, logged)
    train.time_limit  the budget of this session of training
    train.threads, train.progress, train.device, train.compile, train.log, train.log_images_every,
    data.memory_limit, data.workers
                      how it runs here (and what it reports to), not what it computes

Anything else that differs (a seed, a learning rate, a data option) is refused with a message naming it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from ..config import RunConfig, build_run_config, to_dict
from ..errors import CheckpointError

log = logging.getLogger(__name__)

# Keys a resumed run may take from the caller instead of its config.json.
RESUMABLE = ("train.epochs", "train.time_limit", "train.peer_timeout", "train.threads", "train.progress", "train.device",
             "train.compile", "train.log", "train.log_images_every",
             "data.memory_limit", "data.workers")


def requested_config(saved: RunConfig, overrides: list[str] | None = None) -> RunConfig:
    """The saved config with the caller's dotted overrides applied (`fit` then checks it with `check_resume`)."""
    return build_run_config(None, overrides or [], base=to_dict(saved))


def check_resume(saved: RunConfig, requested: RunConfig) -> RunConfig:
    """`requested` when it differs from `saved` only in RESUMABLE keys (and train.epochs only upwards);
    a CheckpointError naming the first other difference otherwise."""
    requested = _filled_from(requested, saved)
    changes = _differences(to_dict(saved), to_dict(requested))
    for key, (old, new) in changes.items():
        if key not in RESUMABLE:
            raise CheckpointError(f"--resume continues the saved run, whose {key} is {old!r}; {new!r} would change "
                                  f"it (on resume only {', '.join(RESUMABLE)} may change)")
    if "train.epochs" in changes:
        old, new = changes["train.epochs"]
        if new < old:
            raise CheckpointError(f"--resume can extend the run's {old} epochs, not shorten them to {new}")
        else:
            log.warning("extending the run from %s to %s epochs (schedules over all epochs, such as a cosine "
                        "learning rate or a cyclical KL weight, stretch accordingly)", old, new)
    for key in changes:
        if key != "train.epochs":
            log.info("resuming with %s = %r (saved: %r)", key, changes[key][1], changes[key][0])
    return requested


def _filled_from(requested: RunConfig, saved: RunConfig) -> RunConfig:
    """`requested` with what it leaves to be resolved (modality, data shape, class count, vocabulary size, an
    unnamed likelihood, the default length, options left at their defaults) taken as resolved in `saved`, so
    that only real differences remain."""
    requested = copy.deepcopy(requested)
    model = requested.model
    if model.event_shape is None:
        model.event_shape, model.num_classes = saved.model.event_shape, saved.model.num_classes
    if model.modality is None:
        model.modality = saved.model.modality
    if model.vocab_size == 0:
        model.vocab_size = saved.model.vocab_size
    for kind in ("kind", "network", "likelihood", "prior", "posterior"):
        section = getattr(model, kind)
        if section.name is None:
            section.name = getattr(saved.model, kind).name
        setattr(model, kind, section.resolved(f"model.{kind}"))
    requested.objective = requested.objective.resolved("objective")
    if requested.train.epochs is None:
        requested.train.epochs = saved.train.epochs
    return requested


def _differences(a: Any, b: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two nested dicts -> (a's value, b's value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(a) | set(b)):
            out.update(_differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key))
        return out
    return {} if a == b else {prefix: (a, b)}
