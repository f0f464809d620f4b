"""A run report: one self-contained HTML page of a trained run (`vaekit report RUN`).

    html = run_report_html(run, data)          # the page as text; the command writes it
    html = run_report_html(run, None)          # without the data: configuration, curves, KL and evaluation only

The page holds the configuration and a model summary, the training curves, samples and reconstructions as the
run's modality shows them (image grids, table rows, a 2-D scatter, sentences), the latent map of the test split
coloured by label, the KL of each latent dimension, and the evaluation table when RUN/eval.json exists. Sections
that do not apply to a run are left out. Images are embedded as PNG data URIs and the style sheet is inline: the
file opens offline and needs no script.
"""

from .build import run_report_html

__all__ = ["run_report_html"]
