"""Progress bars that say up front when a job will take minutes.

A tqdm bar shows a rate and a remaining time once it runs, but a job of several minutes should say so before
the user has waited for it: `progress` times the first items (at least TIMING_ITEMS of them, or TIMING_SECONDS,
whichever comes first after the first item) and, when the whole job would take LONG_JOB_SECONDS or more, writes
one line above the bar:

    evaluating: about 7 min for 100 batches (timed on the first 2)

`announce_duration` is the same line for loops that drive a bar of their own (the training loop).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

LONG_JOB_SECONDS = 60.0  # jobs estimated at least this long are announced
TIMING_ITEMS = 2  # items timed before the estimate (the first one alone may include warm-up)
TIMING_SECONDS = 3.0  # ... or this long, once the first item is done
LOG_INTERVAL_SECONDS = 30.0  # between a bar's updates when stderr is not a terminal
PLURALS = {"batch": "batches"}
now = time.perf_counter  # the clock (a module attribute, so that tests can stand in for it)


def format_duration(seconds: float) -> str:
    """A rounded human duration: "45 s", "7 min", "1 h 20 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def duration_line(desc: str, seconds: float, total: int, unit: str, timed: int) -> str:
    """The announcement of a job estimated at `seconds` for `total` units, timed on the first `timed`."""
    units = PLURALS.get(unit, unit + "s")
    return f"{desc}: about {format_duration(seconds)} for {total:,} {units} (timed on the first {timed})"


def on_terminal(stream=None) -> bool:
    """True when `stream` (stderr by default) is a terminal: bars there, sparse lines in a log file."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or a bare stream
        return False


def in_notebook() -> bool:
    """True inside a Jupyter kernel (notebook, JupyterLab, VS Code, Colab), whose output is not a terminal but
    shows a live bar: a bar there, not one line per epoch. The same test as tqdm.autonotebook's."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and not any(k in type(shell).__name__.lower() for k in ("qt", "spyder"))


def interactive() -> bool:
    """True where a live progress bar can be seen: a terminal or a notebook."""
    return on_terminal() or in_notebook()


def bar_class():
    """The progress bar to draw: tqdm's widget bar in a notebook that has ipywidgets (pip install
    "vaekit[notebook]"), its text bar everywhere else (a notebook without ipywidgets shows that one too)."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401  (the widget bar's dependency)
            from tqdm.notebook import tqdm as notebook_bar

            return notebook_bar
        except ImportError:
            pass
    from tqdm import tqdm

    return tqdm


def above(bar) -> Callable[[str], None]:
    """Writes a line to stderr above the tqdm `bar` (stdout may be the command's data)."""
    return lambda line: bar.write(line, file=sys.stderr)


def announce_duration(write: Callable[[str], None], desc: str, elapsed: float, done: int, total: int,
                      unit: str) -> bool:
    """Writes the estimate for `total` units after `done` took `elapsed` seconds, when it is at least
    LONG_JOB_SECONDS; True when it wrote."""
    if done <= 0 or total <= done:
        return False
    estimate = elapsed / done * total
    if estimate < LONG_JOB_SECONDS:
        return False
    write(duration_line(desc, estimate, total, unit, done))
    return True


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it",
             disable: bool = False, leave: bool = True, clock: Callable[[], float] | None = None,
             write: Callable[[str], None] | None = None) -> Iterator[T]:
    """`iterable` behind a tqdm bar (unless `disable`) that announces a long job's estimated duration once its
    first items are timed. `total` defaults to len(iterable); `clock` and `write` are for tests."""
    tqdm = bar_class()
    if total is None:
        total = len(iterable)  # type: ignore[arg-type]
    # In a log file (not a terminal) a bar's every update would pile up on one line: one every LOG_INTERVAL s.
    interval = 0.1 if interactive() else LOG_INTERVAL_SECONDS
    bar = tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave, mininterval=interval)
    say, clock = write or above(bar), clock or now
    started, done, pending = clock(), 0, not disable
    try:
        for item in bar:
            yield item
            done += 1
            if pending:
                elapsed = clock() - started
                if done >= TIMING_ITEMS or elapsed >= TIMING_SECONDS:
                    announce_duration(say, desc or "this job", elapsed, done, total, unit)
                    pending = False
    finally:
        bar.close()


__all__ = ["progress", "announce_duration", "above", "on_terminal", "in_notebook", "interactive", "bar_class",
           "format_duration", "LONG_JOB_SECONDS"]
