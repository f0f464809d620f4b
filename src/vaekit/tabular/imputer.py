"""`TableImputer`: fills the missing cells of a mixed table (numbers, counts, categories, yes/no, ordered levels)
with valid values of each column's type, by a VAE with one likelihood per column (HI-VAE, Nazabal et al. 2020)
trained as MIWAE (Mattei & Frellsen 2019): the IWAE bound over the observed cells, an encoder that reads the
features with their mask.

    imputer = TableImputer(types={"rating": "ordinal"}, random_state=0)
    filled = imputer.fit_transform(df)       # DataFrame, structured array or 2-D array; observed cells kept

Single imputation is the importance-sampling mixture of the per-sample predictions (`vaekit.apps.impute`), read
as a valid value by each column type: the most probable label, the median ordered level, a whole count, a
number in the column's own format. `sample_transform` draws completed tables (multiple imputation).
The training defaults (MLP 128-128 tanh, k = 20, about 4,000 steps with early stopping on 5% of the observed
cells) are those `VAEImputer` uses for numeric tables (docs/bench_impute.md).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ..apps.budget import ESTIMATOR_THREADS, auto_epochs
from ..apps.impute import METHODS, impute, impute_importance
from ..apps.imputer import (
    AUTO_EPOCHS,
    AUTO_STEPS,
    PATIENCE_EPOCHS,
    PATIENCE_STEPS,
    VALID_FRACTION,
    _held_out_error,
    held_out_entries,
)
from ..config import MAX_EPOCHS, DataConfig, ModelConfig, Plugin, RunConfig, TrainConfig
from ..core.rng import seeded
from ..core.runtime import to_model
from ..data import DataBundle
from ..errors import ConfigError, DataError
from ..training.train import fit, torch_threads
from .frames import Cells, as_cells, filled_copy
from .schema import Schema, infer_schema, types_of


def expand_to_features(schema: Schema, cell_mask: np.ndarray) -> np.ndarray:
    """A per-cell mask (N, C modelled) repeated over each column's features (N, F)."""
    return np.concatenate([np.repeat(cell_mask[:, [k]], c.width, 1) for k, c in enumerate(schema.modelled)], 1)


def check_rows_observed(schema: Schema, cell_mask: np.ndarray, source: str, first_line: int = 1) -> None:
    """A DataError when a row has no observed cell in any modelled column (nothing to impute from)."""
    empty = np.flatnonzero(~cell_mask.any(1))
    if empty.size:
        raise DataError(f"{source}: {empty.size} row(s) have no value in any modelled column (first: line "
                        f"{int(empty[0]) + first_line}); drop them, there is nothing to impute from")


class TableImputer(BaseEstimator):
    """Fills the missing cells of a table with mixed column types (see the module docstring).

    Parameters: `types` ({column name or 1-based position: type}, or a string "age=count,colour=categorical";
    other columns are inferred, `describe()` shows the result); `latent_dim` (None: min(10, C - 1) for C modelled
    columns); `hidden`; `epochs` (None: automatic, with early stopping); `batch_size`; `lr`; `k` importance samples
    of the training bound; `method` ("importance", "pseudo-gibbs", "metropolis"); `samples` (importance samples, or
    chain steps); `random_state`; `verbose`; `device`; `early_stopping`.

    Fitted attributes: `schema_` (the column types), `model_`, `config_`, `history_`, `valid_history_`.
    """

    def __init__(self, types: dict[str, str] | str | None = None, latent_dim: int | None = None,
                 hidden: Sequence[int] = (128, 128), epochs: int | None = None, batch_size: int = 64,
                 lr: float = 1e-3, k: int = 20, method: str = "importance", samples: int = 1000,
                 random_state: int | None = None, verbose: bool = False, device: str = "cpu",
                 early_stopping: bool = True) -> None:
        self.types = types
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.k = k
        self.method = method
        self.samples = samples
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.early_stopping = early_stopping

    # --- fitting -----------------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> "TableImputer":
        """Infers the column types of X and trains the model on its observed cells."""
        cells = as_cells(X)
        return self.fit_cells(cells.header, cells.rows)

    def fit_cells(self, header: list[str] | None, rows: list[list[str]], source: str = "X",
                  first_line: int = 1) -> "TableImputer":
        """`fit` on a table as texts (a CSV file's header and rows; `first_line` numbers its first data row)."""
        self.schema_ = self.infer(header, rows, source, first_line)
        x, mask, cell_mask = self.schema_.encode(rows)
        check_rows_observed(self.schema_, cell_mask, source, first_line)
        xt, mt = torch.from_numpy(x), torch.from_numpy(mask)
        config = self._run_config(len(rows))
        score = None
        if self.epochs is None and self.early_stopping:
            held_cells = held_out_entries(cell_mask, VALID_FRACTION, np.random.default_rng([config.train.seed, 7919]))
            if held_cells.any():
                held = torch.from_numpy(expand_to_features(self.schema_, held_cells))
                score = _held_out_error(xt, mt, held, config.train.seed)
                mt = mt * ~held  # hidden from training only
                per_epoch = -(-len(rows) // self.batch_size)
                config.train.patience = max(PATIENCE_EPOCHS, -(-PATIENCE_STEPS // per_epoch))
        result = fit(config, data=DataBundle.from_arrays(xt, mask=mt), validate=False, valid_score=score)
        self.model_, self.config_ = result.model, result.config
        self.history_ = [record["train_loss"] for record in result.history]
        self.valid_history_ = [record["valid_loss"] for record in result.history if "valid_loss" in record]
        self.n_features_in_ = len(self.schema_.columns)
        return self

    def infer(self, header: list[str] | None, rows: list[list[str]], source: str = "X",
              first_line: int = 1) -> Schema:
        """The column types of a table as texts (the user's `types`, the others inferred), without training."""
        self._check_params()
        types = types_of(self.types)
        return infer_schema(header, rows, types, source, first_line)

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown imputation method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if self.samples < 1 or self.k < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError("samples, k and batch_size must be >= 1 and lr > 0")
        for name in ("latent_dim", "epochs"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or not 1 <= value <= MAX_EPOCHS):
                raise ConfigError(f"{name} must be None (automatic) or an integer in [1, {MAX_EPOCHS:,}], got "
                                  f"{value!r}")
        if self.types is not None and not isinstance(self.types, (str, dict)):
            raise ConfigError(f"types must be a dict {{column: type}} or a string 'name=type,...', got "
                              f"{type(self.types).__name__}")

    def _run_config(self, n: int) -> RunConfig:
        columns = len(self.schema_.modelled)
        seed = int(np.random.default_rng().integers(2**31 - 1)) if self.random_state is None else int(self.random_state)
        return RunConfig(
            data=DataConfig(name="arrays"),
            model=ModelConfig(latent_dim=self.latent_dim or max(1, min(10, columns - 1)),
                              network=Plugin("network", "mlp", {"hidden": list(self.hidden), "activation": "tanh",
                                                                "mask_input": True}),
                              likelihood=Plugin("likelihood", "mixed", self.schema_.likelihood_options),
                              prior=Plugin("prior", "normal")),
            objective=Plugin("objective", "iwae", {"k": self.k}),
            train=TrainConfig(epochs=self.epochs or auto_epochs(n, self.batch_size, AUTO_STEPS, AUTO_EPOCHS),
                              batch_size=self.batch_size, lr=self.lr, seed=seed, threads=ESTIMATOR_THREADS,
                              progress=bool(self.verbose), device=self.device),
        )

    # --- filling -----------------------------------------------------------------------------------------

    def describe(self) -> str:
        """The column types the imputer uses, as a table."""
        self._check_fitted()
        return self.schema_.describe()

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ConfigError("this TableImputer is not fitted yet: call fit(X) first")

    def _encoded(self, rows: list[list[str]], source: str, first_line: int):
        self._check_fitted()
        if rows and len(rows[0]) != len(self.schema_.columns):
            raise DataError(f"{source} has {len(rows[0])} columns, the imputer was fitted on "
                            f"{len(self.schema_.columns)}")
        # the fitted schema reads the new rows: an unknown label or a word in a number column is an error
        self.schema_.check_cells(rows, source, first_line)
        x, mask, cell_mask = self.schema_.encode(rows)
        check_rows_observed(self.schema_, cell_mask, source, first_line)
        return torch.from_numpy(x), torch.from_numpy(mask), cell_mask

    def fill_cells(self, rows: list[list[str]], source: str = "X", first_line: int = 1) -> dict[tuple[int, int], str]:
        """The text of every missing cell of a modelled column: {(row, column): text}."""
        xt, mt, cell_mask = self._encoded(rows, source, first_line)
        if cell_mask.all():
            return {}
        seed = 0 if self.random_state is None else int(self.random_state)
        with torch_threads(ESTIMATOR_THREADS):
            filled = impute(self.model_, xt, mt, self.method, self.samples, seed=seed, progress=bool(self.verbose))
        sigmas = self.model_.likelihood.log_scale.detach().exp().cpu().double().numpy()
        return self._new_cells(filled.double().numpy(), cell_mask, sigmas)

    def _new_cells(self, features: np.ndarray, cell_mask: np.ndarray,
                   sigmas: np.ndarray | None = None) -> dict[tuple[int, int], str]:
        missing_rows = np.flatnonzero(~cell_mask.all(1))
        texts = self.schema_.decode(features[missing_rows], sigmas)
        out = {}
        for r, i in enumerate(missing_rows):
            for k, c in enumerate(self.schema_.modelled):
                if not cell_mask[i, k]:
                    out[(int(i), c.index)] = texts[r][k]
        return out

    def sample_cells(self, rows: list[list[str]], n_draws: int, source: str = "X",
                     first_line: int = 1) -> list[dict[tuple[int, int], str]]:
        """`n_draws` multiple imputations: for each, the text of every missing cell, drawn from p(x_mis | x_obs)
        by importance resampling."""
        if n_draws < 1:
            raise ConfigError(f"n_draws must be >= 1, got {n_draws}")
        xt, mt, cell_mask = self._encoded(rows, source, first_line)
        draws = []
        seed = 0 if self.random_state is None else int(self.random_state)
        with seeded(seed), torch_threads(ESTIMATOR_THREADS):
            for start in range(0, xt.shape[0], 256):
                _, d = impute_importance(self.model_, to_model(self.model_, xt[start : start + 256]),
                                         to_model(self.model_, mt[start : start + 256]), k=self.samples, draws=n_draws)
                draws.append(d.cpu())
        features = torch.cat(draws, dim=1).double().numpy()  # (n_draws, N, F)
        return [self._new_cells(features[d], cell_mask) for d in range(n_draws)]

    def transform(self, X: Any) -> Any:
        """A copy of X with every missing cell of a modelled column filled (observed cells unchanged)."""
        cells = as_cells(X)
        self._check_header(cells)
        return filled_copy(X, cells, self.fill_cells(cells.rows), self._numeric_columns())

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """`fit(X)` then `transform(X)`."""
        return self.fit(X).transform(X)

    def sample_transform(self, X: Any, n_draws: int = 5) -> list[Any]:
        """`n_draws` completed copies of X (multiple imputation)."""
        cells = as_cells(X)
        self._check_header(cells)
        return [filled_copy(X, cells, new, self._numeric_columns())
                for new in self.sample_cells(cells.rows, n_draws)]

    def _numeric_columns(self) -> set[int]:
        from .columns import column_type

        return {c.index for c in self.schema_.modelled if column_type(c.type).numeric}

    def _check_header(self, cells: Cells) -> None:
        self._check_fitted()
        if cells.header is not None and self.schema_.names_given:
            names = [c.name for c in self.schema_.columns]
            if [h.strip() for h in cells.header] != names:
                raise DataError(f"the columns differ from the training data's ({names[:4]}...)")


__all__ = ["TableImputer", "expand_to_features", "check_rows_observed"]
