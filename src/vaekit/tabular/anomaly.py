"""`TableAnomalyDetector`: anomaly scores for tables with mixed column types, with each column's share of the
score, so that a flagged row says which column made it unusual.

A VAE with one likelihood per column (`vaekit.tabular.likelihood`, HI-VAE) is trained by the ELBO on the rows,
its encoder reading the mask, so that rows with missing cells are trained and scored on their observed cells. A
row's score is its negative ELBO, which splits over the columns:

    score(x) = sum_j c_j(x) + KL(q(z|x) || p(z)),   c_j(x) = -E_q[log p_j(x_j | z)]   (0 for a missing cell)

estimated with `k` draws of z. Column contributions are compared with their training medians: a column's
excess, c_j(x) - median_train c_j, is how much more surprising it is in this row than usual (a column of many
labels always costs more nats than a yes/no one). Defaults follow the numeric detector's tabular ones
(`vaekit.apps.anomaly`: latent 8, MLP 64-32, about 600 optimiser steps, beta 0.25).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .. import io
from ..apps.budget import ESTIMATOR_THREADS, auto_epochs
from ..config import MAX_EPOCHS, DataConfig, ModelConfig, Plugin, RunConfig, TrainConfig
from ..core.jsonfile import read_json
from ..core.rng import seeded
from ..core.runtime import to_model
from ..data import DataBundle
from ..errors import CheckpointError, ConfigError, DataError
from ..training.train import fit, torch_threads
from .frames import as_cells
from .imputer import check_rows_observed
from .schema import Schema, infer_schema, types_of

DETECTOR_FILE = "detector.json"
SCHEMA_FILE = "schema.json"
AUTO_STEPS = 600
AUTO_EPOCHS = (10, 300)


@torch.no_grad()
def column_contributions(model, x: torch.Tensor, mask: torch.Tensor, cell_mask: torch.Tensor, k: int = 20,
                         batch_size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(c (N, C): -E_q[log p_j(x_j | z)] per modelled column, 0 where the cell is missing; KL (N,)), by `k` draws
    of z ~ q(z | x_obs) per row."""
    model.eval()
    parts, kls = [], []
    with seeded(seed):
        for start in range(0, x.shape[0], batch_size):
            xb, mb = to_model(model, x[start : start + batch_size]), to_model(model, mask[start : start + batch_size])
            qz = model.encode(xb * mb, mask=mb)
            z = qz.sample((k,))  # (k, B, D)
            px = model.decode(z)
            per_column = -px.base_dist.column_log_prob(xb * mb).mean(0)  # (B, C)
            kl = (qz.log_prob(z) - model.prior().log_prob(z)).mean(0)  # (B,) Monte Carlo KL
            parts.append((per_column * to_model(model, cell_mask[start : start + batch_size])).double().cpu())
            kls.append(kl.double().cpu())
    return torch.cat(parts).numpy(), torch.cat(kls).numpy()


class TableAnomalyDetector(BaseEstimator):
    """Unsupervised anomaly detector for mixed tables (see the module docstring).

    Parameters: `types` (as for `TableImputer`), `latent_dim`, `hidden`, `epochs` (None: about 600 optimiser
    steps), `batch_size`, `lr`, `beta` (KL weight while training), `k` (draws per score), `contamination`
    (training share above the threshold), `random_state`, `verbose`, `device`.

    Fitted attributes: `schema_`, `model_`, `config_`, `decision_scores_`, `threshold_`, `labels_`,
    `column_medians_` (training median of each column's contribution).
    """

    def __init__(self, types: dict[str, str] | str | None = None, latent_dim: int = 8, hidden=(64, 32),
                 epochs: int | None = None, batch_size: int = 64, lr: float = 1e-3, beta: float = 0.25, k: int = 20,
                 contamination: float = 0.1, random_state: int | None = None, verbose: bool = False,
                 device: str = "cpu") -> None:
        self.types = types
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.k = k
        self.contamination = contamination
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    def _check_params(self) -> None:
        if not 0.0 < self.contamination <= 0.5:
            raise ConfigError(f"contamination must be in (0, 0.5], got {self.contamination}")
        if self.epochs is not None and not 1 <= self.epochs <= MAX_EPOCHS:
            raise ConfigError(f"epochs must be in [1, {MAX_EPOCHS:,}] (or None for the automatic length), "
                              f"got {self.epochs}")
        if self.latent_dim < 1 or self.batch_size < 1 or self.k < 1 or not self.lr > 0 or not self.beta >= 0:
            raise ConfigError("latent_dim, batch_size and k must be >= 1, lr > 0 and beta >= 0")

    def fit(self, X: Any, y: Any = None) -> "TableAnomalyDetector":
        """Infers the column types of X, trains the model and sets the threshold (labels `y` are ignored)."""
        cells = as_cells(X)
        return self.fit_cells(cells.header, cells.rows)

    def fit_cells(self, header: list[str] | None, rows: list[list[str]], source: str = "X",
                  first_line: int = 1) -> "TableAnomalyDetector":
        """`fit` on a table as texts (a CSV file's header and rows)."""
        self._check_params()
        types = types_of(self.types)
        self.schema_ = infer_schema(header, rows, types, source, first_line)
        x, mask, cell_mask = self.schema_.encode(rows)
        check_rows_observed(self.schema_, cell_mask, source, first_line)
        seed = int(np.random.default_rng().integers(2**31 - 1)) if self.random_state is None else int(self.random_state)
        config = RunConfig(
            data=DataConfig(name="arrays"),
            model=ModelConfig(latent_dim=self.latent_dim,
                              network=Plugin("network", "mlp", {"hidden": list(self.hidden), "mask_input": True}),
                              likelihood=Plugin("likelihood", "mixed", self.schema_.likelihood_options),
                              prior=Plugin("prior", "normal")),
            objective=Plugin("objective", "elbo", {"beta": self.beta}),
            train=TrainConfig(epochs=self.epochs or auto_epochs(len(rows), self.batch_size, AUTO_STEPS, AUTO_EPOCHS),
                              batch_size=self.batch_size, lr=self.lr, seed=seed, threads=ESTIMATOR_THREADS,
                              progress=bool(self.verbose), device=self.device))
        result = fit(config, data=DataBundle.from_arrays(torch.from_numpy(x), mask=torch.from_numpy(mask)),
                     validate=False)
        self.model_, self.config_ = result.model, result.config
        contributions, kl = self._contributions(x, mask, cell_mask)
        self.decision_scores_ = contributions.sum(1) + kl
        self.column_medians_ = np.median(contributions, axis=0)
        self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - self.contamination))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    def _contributions(self, x, mask, cell_mask):
        with torch_threads(ESTIMATOR_THREADS):
            return column_contributions(self.model_, torch.from_numpy(x), torch.from_numpy(mask),
                                        torch.from_numpy(cell_mask.astype(np.float32)), self.k,
                                        seed=0 if self.random_state is None else int(self.random_state))

    def _encode(self, rows: list[list[str]], source: str, first_line: int):
        if not hasattr(self, "model_"):
            raise ConfigError("this TableAnomalyDetector is not fitted yet: call fit(X) first")
        if rows and len(rows[0]) != len(self.schema_.columns):
            raise DataError(f"{source} has {len(rows[0])} columns, the detector was fitted on "
                            f"{len(self.schema_.columns)}")
        self.schema_.check_cells(rows, source, first_line)  # an unseen label cannot be scored
        x, mask, cell_mask = self.schema_.encode(rows)
        check_rows_observed(self.schema_, cell_mask, source, first_line)
        return x, mask, cell_mask

    def explain_cells(self, rows: list[list[str]], source: str = "X", first_line: int = 1) -> np.ndarray:
        """Each row's column contributions (N, C modelled), in nats; 0 for a missing cell."""
        return self._contributions(*self._encode(rows, source, first_line))[0]

    def score_cells(self, rows: list[list[str]], source: str = "X", first_line: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(scores (N,), column excess over the training medians (N, C modelled)) of rows as texts."""
        contributions, kl = self._contributions(*self._encode(rows, source, first_line))
        return contributions.sum(1) + kl, contributions - self.column_medians_

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of each row (N,): higher = more anomalous."""
        return self.score_cells(as_cells(X).rows)[0]

    def explain(self, X: Any) -> np.ndarray:
        """Each row's column contributions minus their training medians (N, C modelled): the largest names the
        column that made the row unusual."""
        return self.score_cells(as_cells(X).rows)[1]

    def predict(self, X: Any) -> np.ndarray:
        """1 for rows above `threshold_`, else 0."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    @property
    def column_names_(self) -> list[str]:
        """The names of the modelled columns, in the order of `explain`'s columns."""
        return [c.name for c in self.schema_.modelled]

    # --- persistence -----------------------------------------------------------------------------------------

    def save(self, run_dir: str | Path) -> Path:
        """Writes a run folder: config.json, model.safetensors, schema.json and detector.json."""
        if not hasattr(self, "model_"):
            raise ConfigError("this TableAnomalyDetector is not fitted yet: nothing to save")
        run_dir = Path(run_dir)
        io.save_config(run_dir, self.config_)
        io.save_model(run_dir / io.MODEL_FILE, self.model_)
        io.atomic_write_text(run_dir / SCHEMA_FILE, json.dumps(self.schema_.to_dict()) + "\n")
        state = {"kind": "mixed-table", "params": {k: (list(v) if isinstance(v, tuple) else v)
                                                   for k, v in self.get_params().items()},
                 "threshold": self.threshold_, "column_medians": self.column_medians_.tolist(),
                 "train_scores": self.decision_scores_.tolist()}
        io.atomic_write_text(run_dir / DETECTOR_FILE, json.dumps(state) + "\n")
        return run_dir

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> "TableAnomalyDetector":
        """The detector `save` wrote, its model on `device`."""
        run_dir = Path(run_dir)
        run = io.load_run(run_dir, device=device)
        try:
            state = read_json(run_dir / DETECTOR_FILE, CheckpointError)
            detector = cls(**state["params"])
            detector.device = str(device)
            detector.schema_ = Schema.from_dict(read_json(run_dir / SCHEMA_FILE, CheckpointError))
            detector.threshold_ = float(state["threshold"])
            detector.column_medians_ = np.asarray(state["column_medians"], dtype=np.float64)
            detector.decision_scores_ = np.asarray(state["train_scores"], dtype=np.float64)
        except (KeyError, TypeError, ValueError, ConfigError) as error:
            raise CheckpointError(f"{run_dir}: the mixed-table detector's files are invalid ({error})") from None
        if len(detector.column_medians_) != len(detector.schema_.modelled):
            raise CheckpointError(f"{run_dir}: detector.json and schema.json disagree on the columns")
        detector.model_, detector.config_ = run.model, run.config
        detector.labels_ = (detector.decision_scores_ > detector.threshold_).astype(np.int64)
        return detector


def is_table_run(run_dir: str | Path) -> bool:
    """Whether a run folder holds a mixed-table detector (its schema.json)."""
    return (Path(run_dir) / SCHEMA_FILE).is_file()


__all__ = ["TableAnomalyDetector", "column_contributions", "is_table_run"]
