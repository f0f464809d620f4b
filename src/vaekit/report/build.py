"""Assembling the run report from its sections (`vaekit.report.page` makes the HTML)."""

from __future__ import annotations

from typing import Any

from ..io import Run
from .model_views import kl_section, latent_map_section, output_sections, unavailable
from .page import Section, page
from .run_files import configuration_section, curves_section, eval_section

MAX_POINTS = 2000  # codes drawn on the latent map: enough to see the classes, few enough to stay fast


def run_report_html(run: Run, data: Any | None, *, history: list[dict] | None = None, seed: int = 0,
                    max_points: int = MAX_POINTS, data_error: str | None = None) -> str:
    """The report of a loaded run (`vaekit.io.load_run`) as one self-contained HTML page.

    `data` is the run's `DataBundle` (`vaekit.training.train.load_run_bundle`), or None when it cannot be read
    (`data_error` says why, shown on the page): samples, reconstructions and the latent map are then left out.
    `history` holds the records of metrics.jsonl (read from the run folder when None). Samples and the
    subsample of the latent map are drawn with `seed`, so the same run gives the same page. Nothing is written.
    """
    if history is None:
        from ..training.writer import read_history

        history = read_history(run.path)
    sections: list[Section | None] = [configuration_section(run, history, data), curves_section(history)]
    if data is not None:
        sections += output_sections(run, data, seed)
        sections.append(latent_map_section(run, data, max_points, seed))
    else:
        sections.append(unavailable(data_error or "no data given"))
    sections += [kl_section(run, data, history), eval_section(run.path)]
    name = run.path.resolve().name or str(run.path)
    subtitle = f"{run.path}: {run.config.data.name} data, {run.config.model.kind.name} model, latent size " \
               f"{run.model.latent_dim}"
    return page(f"vaekit run report: {name}", subtitle, [s for s in sections if s is not None])
