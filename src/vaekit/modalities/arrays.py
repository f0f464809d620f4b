"""The array modalities: images (C, H, W), tables (F,) of numbers, and 2-D points.

They share everything of `Modality` (fixed-size examples, the MLP or a data set's own network, the likelihood of
the values' kind); they differ in what a run folder shows (`vaekit.figures.report.array_run_outputs`: grids of images,
CSV rows of a table, and for 2-D points a scatter of samples against the training data). The explorer page shows
each as PNG (`Modality.show_example`: an enlarged image, or a row of grey cells for a table or a point).
"""

from __future__ import annotations

from typing import Any, Iterator

from torch import nn

from ..figures.plots import training_curves_figure
from ..figures.report import array_run_outputs, samples_2d_output
from .base import MODALITIES, Modality


class ArrayModality(Modality):
    """What the array modalities share: a run shows samples and reconstructions (grids for images, CSV rows for
    other arrays) and the training curves."""

    def run_outputs(self, model: nn.Module, data: Any, history: list[dict]) -> Iterator[tuple[str, Any]]:
        yield from array_run_outputs(model, data, history)


@MODALITIES.register("image")
class ImageModality(ArrayModality):
    """Images (C, H, W): grey levels or binary pixels; runs show sample and reconstruction grids."""

    name = "image"
    values = "images"


@MODALITIES.register("table")
class TableModality(ArrayModality):
    """Rows of numbers (F,): standardised reals, [0, 1] values or bits; runs show samples as CSV rows."""

    name = "table"
    values = "table rows"


@MODALITIES.register("points")
class PointsModality(ArrayModality):
    """2-D points (2,), the toy multi-modal data: runs also show a scatter of samples against the data."""

    name = "points"
    values = "2-D points"

    def run_outputs(self, model: nn.Module, data: Any, history: list[dict]) -> Iterator[tuple[str, Any]]:
        yield from array_run_outputs(model, data, history=[])  # samples and reconstructions as CSV rows
        if not model.conditional:
            yield "samples_2d.png", samples_2d_output(model, data)
        if history:
            yield "curves.png", training_curves_figure(history)
