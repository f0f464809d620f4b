"""Anomaly detection with a VAE: a point the model finds improbable is an anomaly.

Scores (higher = more anomalous), for a VAE trained on data that are mostly normal:
    "nll"    -log p(x) ~ -log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),  z_k ~ q(z|x)      (Burda et al. 2016)
    "elbo"   -ELBO(x) = -E_q[log p(x|z)] + KL(q(z|x) || p(z)), averaged over K draws of z
    "recon"  ||x - E[x | z = E_q[z|x]]||^2, the reconstruction error of an autoencoder
    "nll-entropy"  "nll" - sum_i H(x_i), H(x) = -x log x - (1 - x) log(1 - x): for a Bernoulli likelihood with
             grey levels x_i in [0, 1] as soft targets, -log p(x|z) = sum_i H(x_i) + KL(Ber(x_i) || Ber(p_i)); the
             first part is the target's own entropy, which no model can remove and which grows with the amount of
             mid-grey in an image, so "nll" ranks grey-level images partly by how much texture they carry. This
             score subtracts it exactly (the NLL measured as a KL divergence to the target; 0 for binary pixels,
             where it equals "nll"). Bernoulli likelihood only, data in [0, 1].
    "codes"  -log p(k(x)), the learned prior's negative log-likelihood of the codes of a VQ-VAE (model kind
             "vqvae"): how unusual the code grid is, apart from how well it reconstructs ("recon"); for a VQ-VAE
             "nll" and "elbo" are the sum of both, -log p(x | z_q(x)) - log p(k(x)) (its q(z|x) is a point mass)
The likelihood-based use of a VAE for anomaly detection follows An & Cho (2015), "Variational autoencoder
based anomaly detection using reconstruction probability"; the importance-sampled likelihood is the
tighter version of the same idea.

`VAEAnomalyDetector` wraps this in the scikit-learn / PyOD estimator conventions: `fit(X)`, then
`decision_function(X)` (= `score_samples(X)`; note: PyOD's sign, higher = more anomalous, the opposite of
scikit-learn's `score_samples`), `predict(X)` -> 1 for anomalies, 0 for normal points, with the threshold set
from the `contamination` fraction of the training scores or from a clean validation set (`calibrate`).
Tabular data (N, F) are scaled per column inside (robust: median and IQR, so that the anomalies themselves do
not set the scale) and modelled with a learned-scale Gaussian likelihood, trained with the trimmed ELBO (each
batch's worst-fitted 30% of rows left out of the gradient, so that the anomalies in the data shape the model less)
and scored by "elbo"; images (N, H, W) or
(N, C, H, W) in [0, 1] (uint8 0..255 is scaled) with a learned-scale Gaussian likelihood too, scored by "nll",
unless `likelihood` / `score` say otherwise. Those defaults were chosen by protocols that keep tuning and reporting
apart (docs/bench_anomaly.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .. import io
from ..config import MAX_EPOCHS, DataConfig, ModelConfig, Plugin, RunConfig, TrainConfig
from ..core.jsonfile import read_json
from ..core.progress import progress as progress_bar
from ..core.rng import seeded
from ..core.runtime import to_model
from ..data import DataBundle
from ..data.quantile import QuantileScaler
from ..data.standardize import Standardizer
from ..errors import CheckpointError, ConfigError, DataError
from ..evaluate import importance_sampled_nll
from ..models.vae import VAE, Batch
from ..objectives import ELBO
from ..training.train import fit, torch_threads
from ..training.writer import STANDARDIZER_FILE
from .budget import ESTIMATOR_THREADS, auto_epochs
from .choices import SCALINGS, SCORES

log = logging.getLogger(__name__)

DETECTOR_FILE = "detector.json"
# Defaults that depend on the kind of input: (tabular, image). The tabular ones were chosen by the protocol of
# benchmarks/anomaly_protocol.py (docs/bench_anomaly.md: grid best over the 43 ADBench tabular sets, where each
# half's choice was reported on the other half): robust scaling, "elbo", about 600 optimiser steps, a small MLP.
# The image likelihood and score were chosen on Fashion-MNIST classes 0-4 and reported on other image sets
# (benchmarks/anomaly_images.py): a learned-scale Gaussian and "nll" (0.929; Bernoulli "nll-entropy" 0.928, the
# previous default Bernoulli "nll" 0.746).
AUTO_SCORE = {"tabular": "elbo", "image": "nll"}
AUTO_LIKELIHOOD = {"tabular": "gaussian-learned", "image": "gaussian-learned"}
AUTO_STEPS = {"tabular": 600, "image": 2000}
AUTO_EPOCHS = (10, 300)
AUTO_HIDDEN = {"tabular": (64, 32), "image": (256, 128)}
AUTO_LATENT = {"tabular": 8, "image": 16}
# The trimmed ELBO's fraction: tables are fitted with their anomalies in them (docs/bench_anomaly.md, issue 28);
# the image defaults were chosen without it, so images keep the plain ELBO.
AUTO_TRIM = {"tabular": 0.3, "image": 0.0}


@torch.no_grad()
def anomaly_scores(model: VAE, x: torch.Tensor, score: str = "nll", k: int = 100, batch_size: int = 256,
                   seed: int = 0, progress: bool = False) -> np.ndarray:
    """Anomaly score of every example of `x` (N, *event) under a trained `model`; (N,) float64, higher = worse.

    `score` is one of SCORES (see the module docstring); `k` is the number of importance
    samples ("nll") or Monte Carlo draws ("elbo"). Seeded with `seed` without touching torch's global RNG.
    `x` is read `batch_size` rows at a time, so it may be a streamed split's rows (`vaekit.data.streaming.Rows`).
    """

    if score not in SCORES:
        raise ConfigError(f"unknown anomaly score {score!r}; choose one of: {', '.join(SCORES)}")
    if k < 1:
        raise ConfigError(f"the number of samples k must be >= 1, got {k}")
    if score == "codes" and not hasattr(model, "code_prior"):
        raise ConfigError("score 'codes' is the prior NLL of a VQ-VAE's codes: it needs model kind 'vqvae'")
    if score == "nll-entropy":
        if getattr(model.likelihood, "support", None) != "binary":
            raise ConfigError(f"score 'nll-entropy' subtracts the entropy of Bernoulli targets: it needs the "
                              f"'bernoulli' likelihood, the model has {type(model.likelihood).__name__}")
    was_training = model.training
    model.eval()
    out = []
    with seeded(seed):
        for start in progress_bar(range(0, x.shape[0], batch_size), disable=not progress, desc="scoring", unit="batch"):
            xb = to_model(model, x[start : start + batch_size])  # a batch at a time on the model's device
            if score in ("nll", "nll-entropy"):
                s = importance_sampled_nll(model, xb, None, k)  # (B,)
                if score == "nll-entropy":
                    s = s.double() - bernoulli_entropy(xb)
            elif score == "elbo":
                s = ELBO(n_samples=k)(model, Batch(xb)).terms["loss"]  # -ELBO, (B,)
            elif score == "codes":
                s = -model.prior_for(None, xb.shape[0]).log_prob(model.embed(xb))  # -log p(k(x)), (B,)
            else:
                s = (model.reconstruct(xb) - xb).pow(2).flatten(1).sum(1)  # (B,)
            out.append(s.double().cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def bernoulli_entropy(x: torch.Tensor) -> torch.Tensor:
    """sum_i H(x_i) over each example's entries, H(x) = -x log x - (1 - x) log(1 - x) (0 at x = 0 or 1), in nats,
    float64 (B,); a ConfigError unless every x_i is in [0, 1]."""
    x = torch.as_tensor(x).double()
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ConfigError(f"score 'nll-entropy' needs data in [0, 1] (grey levels); found values in "
                          f"[{x.min().item():.3g}, {x.max().item():.3g}]")
    h = -(torch.xlogy(x, x) + torch.xlogy(1 - x, 1 - x))
    return h.flatten(1).sum(1)


def _feature_names(X: Any, names: Sequence[str] | None) -> list[str] | None:
    """Column names given explicitly or carried by a data frame (`X.columns`)."""
    if names is None and hasattr(X, "columns"):
        names = [str(c) for c in X.columns]
    return None if names is None else [str(n) for n in names]


class VAEAnomalyDetector(BaseEstimator):
    """Unsupervised anomaly detector: a VAE fitted to X scores each point by how improbable it is.

    Parameters (all optional; None picks a default by input kind, tabular / image): `latent_dim` (8 / 16);
    `hidden` MLP sizes ((64, 32) / (256, 128)); `epochs` (about 600 / 2,000 optimiser steps); `batch_size`;
    `lr`; `beta` (KL weight of the training ELBO); `score` (one of SCORES; None: "elbo" for tables, "nll" for
    images); `k` samples per score;
    `contamination` (expected fraction of anomalies in the training data, sets the threshold); `likelihood`
    (None: "gaussian-learned", a learned scale per entry, for both kinds; "bernoulli" for binary images, with
    score "nll-entropy" when they have grey levels); `network` ("mlp" or "conv" for images);
    `scaling` of table columns ("robust": median and IQR / 1.349, the default; "standard": mean and std;
    "quantile": each column through its empirical CDF onto N(0, 1));
    `trim` (the fraction of each training batch with the highest loss left out of the gradient, so that the
    anomalies in the training data shape the model less; None: 0.3 for tables, 0 for images);
    `random_state`; `verbose` (progress bars); `device` the model trains and scores on ("cpu", "cuda", "cuda:N",
    "mps" or "auto"); `model_kind` (a registered model kind with its defaults: "vae", or "vqvae", whose codes
    also give the score "codes").

    Fitted attributes: `model_`, `config_` (the run config it trained with), `decision_scores_` (training
    scores), `threshold_`, `labels_` (0/1 on the training data), `n_features_in_`, `feature_names_in_`,
    `input_kind_` ("tabular" or "image"), `standardizer_` (tables: the per-column scaling; None for images),
    `history_` (training loss per epoch).
    """

    def __init__(self, latent_dim: int | None = None, hidden: Sequence[int] | None = None, epochs: int | None = None,
                 batch_size: int = 64, lr: float = 1e-3, beta: float = 0.25, score: str | None = None, k: int = 100,
                 contamination: float = 0.1, likelihood: str | None = None, sigma: float | None = None,
                 network: str = "mlp", scaling: str = "robust", random_state: int | None = None,
                 verbose: bool = False, device: str = "cpu", model_kind: str = "vae",
                 trim: float | None = None) -> None:
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.score = score
        self.k = k
        self.contamination = contamination
        self.likelihood = likelihood
        self.sigma = sigma
        self.network = network
        self.scaling = scaling
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.model_kind = model_kind
        self.trim = trim

    # --- fitting -----------------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, *, feature_names: Sequence[str] | None = None) -> "VAEAnomalyDetector":
        """Trains the VAE on X (labels `y` are ignored: the detector is unsupervised) and sets the threshold."""
        self._check_params()
        x_np = self._as_array(X, "X")
        self.input_kind_ = "tabular" if x_np.ndim == 2 else "image"
        self.feature_names_in_ = _feature_names(X, feature_names)
        # Tables are standardised per column (a constant column stays constant: 0 after centring).
        self.standardizer_ = _fit_scaling(x_np, self.scaling) if self.input_kind_ == "tabular" else None
        x = self._transform(x_np)
        self.event_shape_ = tuple(x.shape[1:])
        self.n_features_in_ = int(math.prod(self.event_shape_))
        # The one training loop, in memory: no validation pass, no run folder (`save` writes one).
        result = fit(self._run_config(x.shape[0], self._seed()), data=DataBundle.from_arrays(x), validate=False)
        self.model_, self.config_ = result.model, result.config
        self.history_ = [record["train_loss"] for record in result.history]
        self.decision_scores_ = self._scores(x)
        self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - self.contamination))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    def _check_params(self) -> None:
        if self.score is not None and self.score not in SCORES:
            raise ConfigError(f"unknown anomaly score {self.score!r}; choose one of: {', '.join(SCORES)}")
        from ..models import MODEL_KINDS

        if self.model_kind not in MODEL_KINDS.names():
            raise ConfigError(f"unknown model kind {self.model_kind!r}; choose one of: "
                              f"{', '.join(MODEL_KINDS.names())}")
        if self.score == "codes" and self.model_kind != "vqvae":
            raise ConfigError("score 'codes' is the prior NLL of a VQ-VAE's codes: it needs model_kind='vqvae'")
        if self.score == "nll-entropy" and self.likelihood != "bernoulli":
            raise ConfigError(f"score 'nll-entropy' subtracts the entropy of Bernoulli targets: it needs "
                              f"likelihood='bernoulli', got {self.likelihood!r}")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown scaling {self.scaling!r}; choose one of: {', '.join(SCALINGS)}")
        if self.trim is not None and not (isinstance(self.trim, (int, float)) and 0.0 <= self.trim < 0.5):
            raise ConfigError(f"trim must be in [0, 0.5) (or None for the default), got {self.trim}")
        if not 0.0 < self.contamination <= 0.5:
            raise ConfigError(f"contamination must be in (0, 0.5], got {self.contamination}")
        if self.epochs is not None and not 1 <= self.epochs <= MAX_EPOCHS:
            raise ConfigError(f"epochs must be in [1, {MAX_EPOCHS:,}] (or None for the automatic length), "
                              f"got {self.epochs}")
        if (self.latent_dim is not None and self.latent_dim < 1) or self.batch_size < 1 or self.k < 1 or self.lr <= 0:
            raise ConfigError("latent_dim, batch_size and k must be >= 1 and lr > 0")

    def _seed(self) -> int:
        if self.random_state is None:
            return int(np.random.default_rng().integers(2**31 - 1))
        return int(self.random_state)

    def _run_config(self, n: int, seed: int) -> RunConfig:
        kind = self.input_kind_
        epochs = self.epochs or auto_epochs(n, self.batch_size, AUTO_STEPS[kind], AUTO_EPOCHS)
        hidden = list(self.hidden if self.hidden is not None else AUTO_HIDDEN[kind])
        latent_dim = self.latent_dim or AUTO_LATENT[kind]
        likelihood = self.likelihood or AUTO_LIKELIHOOD[kind]
        # Scaled tables have about unit variance per column: start the (learned) sigma there.
        sigma = self.sigma or (1.0 if self.input_kind_ == "tabular" else 0.1)
        if self.hidden is not None and self.network != "mlp":
            raise ConfigError(f"hidden sets the sizes of the 'mlp' network; network {self.network!r} does not take it")
        network = {"hidden": hidden} if self.network == "mlp" else {}
        sigma_option = {"sigma": sigma} if likelihood in ("gaussian", "gaussian-learned") else {}
        if self.sigma is not None and not sigma_option:
            raise ConfigError(f"sigma applies to the gaussian likelihoods only, not to {likelihood!r}")
        return RunConfig(
            data=DataConfig(name="arrays"),
            model=ModelConfig(latent_dim=latent_dim, kind=Plugin("model kind", self.model_kind),
                              network=Plugin("network", self.network, network),
                              likelihood=Plugin("likelihood", likelihood, sigma_option),
                              prior=Plugin("prior", "normal")),
            objective=Plugin("objective", "elbo", {"beta": self.beta,
                                                   "trim": AUTO_TRIM[kind] if self.trim is None else self.trim}),
            train=TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr, seed=seed,
                              threads=ESTIMATOR_THREADS, progress=bool(self.verbose), device=self.device),
        )

    # --- input handling -----------------------------------------------------------------------------------

    def _as_array(self, X: Any, what: str) -> np.ndarray:
        """X as a float64 array (N, F), (N, H, W) or (N, C, H, W); one-line DataErrors for bad input."""
        try:
            x = np.asarray(X)
        except (TypeError, ValueError) as error:
            raise DataError(f"{what} is not an array of numbers ({error})") from None
        if x.dtype.kind not in "biuf":
            raise DataError(f"{what} holds non-numeric values ({x.dtype}); encode or drop those columns first")
        if x.ndim == 1:
            raise DataError(f"{what} must be 2-D (samples, features) or images; got a 1-D array: use X.reshape(-1, 1)")
        if x.ndim not in (2, 3, 4):
            raise DataError(f"{what} must be (samples, features) or images (N, H, W) / (N, C, H, W), got shape {x.shape}")
        if x.shape[0] == 0 or x[0].size == 0:
            raise DataError(f"{what} is empty (shape {x.shape})")
        uint8 = x.dtype == np.uint8
        x = x.astype(np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{what} holds {int(bad.sum())} missing or non-finite values (first at {first}); "
                            "impute them first (vaekit.apps.VAEImputer)")
        if x.ndim == 3:
            x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
        if x.ndim == 4:
            if uint8:
                x = x / 255.0
            if (self.likelihood in (None, "bernoulli")) and (x.min() < 0 or x.max() > 1):
                raise DataError(f"{what}: images must be in [0, 1] (or uint8 0..255) for the default and the Bernoulli "
                                f"likelihoods; "
                                f"found values in [{x.min():.3g}, {x.max():.3g}]")
        return x

    def _transform(self, x: np.ndarray) -> torch.Tensor:
        if self.standardizer_ is not None:
            x = self.standardizer_.transform(x)
        return torch.from_numpy(x.astype(np.float32))

    def _check_fitted_input(self, X: Any, feature_names: Sequence[str] | None) -> torch.Tensor:
        if not hasattr(self, "model_"):
            raise ConfigError("this VAEAnomalyDetector is not fitted yet: call fit(X) first")
        x = self._as_array(X, "X")
        names = _feature_names(X, feature_names)
        if tuple(x.shape[1:]) != tuple(self.event_shape_):
            shape = x.shape[1] if x.ndim == 2 else tuple(x.shape[1:])
            trained = self.event_shape_[0] if len(self.event_shape_) == 1 else self.event_shape_
            raise DataError(f"X has {shape} features per example, the detector was trained on {trained}")
        if names is not None and self.feature_names_in_ is not None and names != self.feature_names_in_:
            missing = [n for n in self.feature_names_in_ if n not in names]
            extra = [n for n in names if n not in self.feature_names_in_]
            detail = (f"missing {missing[:3]}" if missing else "") + (" " if missing and extra else "") + (
                f"unexpected {extra[:3]}" if extra else "")
            raise DataError(f"the columns differ from the training data's ({detail or 'same names, other order'})")
        return self._transform(x)

    def as_model_input(self, X: Any, feature_names: Sequence[str] | None = None) -> torch.Tensor:
        """X checked against the training data and scaled as the model sees it (float32 tensor)."""
        return self._check_fitted_input(X, feature_names)

    # --- scoring ------------------------------------------------------------------------------------------

    @property
    def score_(self) -> str:
        """The score in use: `score`, or by default AUTO_SCORE of the input kind."""
        return self.score if self.score is not None else AUTO_SCORE[self.input_kind_]

    def _scores(self, x: torch.Tensor) -> np.ndarray:
        with torch_threads(ESTIMATOR_THREADS):
            return anomaly_scores(self.model_, x, self.score_, self.k, seed=self._score_seed(), progress=bool(self.verbose))

    def _score_seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def decision_function(self, X: Any, *, feature_names: Sequence[str] | None = None) -> np.ndarray:
        """Anomaly score of each row (N,): higher = more anomalous (PyOD's convention)."""
        return self._scores(self._check_fitted_input(X, feature_names))

    def score_samples(self, X: Any, *, feature_names: Sequence[str] | None = None) -> np.ndarray:
        """Same as `decision_function` (higher = more anomalous; scikit-learn's own detectors use the opposite sign)."""
        return self.decision_function(X, feature_names=feature_names)

    def predict(self, X: Any, *, feature_names: Sequence[str] | None = None) -> np.ndarray:
        """1 for anomalies (score above `threshold_`), 0 for normal points, (N,) int64."""
        return (self.decision_function(X, feature_names=feature_names) > self.threshold_).astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None, *, feature_names: Sequence[str] | None = None) -> np.ndarray:
        """Fits on X and returns its 0/1 labels (the top `contamination` fraction of scores are 1)."""
        return self.fit(X, y, feature_names=feature_names).labels_

    def calibrate(self, X_valid: Any, quantile: float = 0.99) -> "VAEAnomalyDetector":
        """Sets `threshold_` to the `quantile` of the scores of X_valid, a set believed to be all normal."""
        if not 0.0 < quantile < 1.0:
            raise ConfigError(f"quantile must be in (0, 1), got {quantile}")
        self.threshold_ = float(np.quantile(self.decision_function(X_valid), quantile))
        return self

    # --- persistence ---------------------------------------------------------------------------------------

    def save(self, run_dir: str | Path, data: DataConfig | None = None) -> Path:
        """Writes a run folder: config.json + model.safetensors (loadable by `vaekit.load_run`), detector.json
        and, for tables, standardizer.json. `data` says where the training data came from (e.g. the file the
        CLI read), so that `vaekit reconstruct RUN` finds it; by default the run's data are in-memory arrays."""
        if not hasattr(self, "model_"):
            raise ConfigError("this VAEAnomalyDetector is not fitted yet: nothing to save")
        run_dir = Path(run_dir)
        config = self.config_ if data is None else dataclasses.replace(self.config_, data=data)
        io.save_config(run_dir, config)
        io.save_model(run_dir / io.MODEL_FILE, self.model_)
        if self.standardizer_ is not None:
            io.atomic_write_text(run_dir / STANDARDIZER_FILE, json.dumps(self.standardizer_.to_dict()) + "\n")
        state = {
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()},
            "input_kind": self.input_kind_,
            "event_shape": list(self.event_shape_),
            "threshold": self.threshold_,
            "feature_names": self.feature_names_in_,
            "train_scores": self.decision_scores_.tolist(),
        }
        io.atomic_write_text(run_dir / DETECTOR_FILE, json.dumps(state) + "\n")
        return run_dir

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> "VAEAnomalyDetector":
        """The detector saved by `save` (or by `vaekit anomaly fit`), its model on `device`."""
        run_dir = Path(run_dir)
        path = run_dir / DETECTOR_FILE
        if run_dir.is_dir() and not path.is_file():
            raise CheckpointError(f"{str(run_dir)!r} is not an anomaly run (no {DETECTOR_FILE}); "
                                  "make one with `vaekit anomaly fit`")
        run = io.load_run(run_dir, device=device)
        try:
            state = read_json(path, CheckpointError)
            detector = cls(**state["params"])
            detector.device = str(device)  # where it runs now, not where it was fitted
            detector.input_kind_ = state["input_kind"]
            detector.event_shape_ = tuple(state["event_shape"])
            detector.standardizer_ = _load_standardizer(run_dir, state)
            if detector.standardizer_ is None and detector.input_kind_ == "tabular":
                # the model learned scaled columns: scoring raw ones would give wrong scores without a word
                raise CheckpointError(f"{run_dir / STANDARDIZER_FILE} is missing: the table detector needs its "
                                      "column scaling to score new rows; fit the detector again")
            detector.threshold_ = float(state["threshold"])
            detector.feature_names_in_ = state["feature_names"]
            detector.decision_scores_ = np.asarray(state["train_scores"], dtype=np.float64)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, DataError) as error:
            raise CheckpointError(f"{path} is invalid ({error})") from None
        detector.model_, detector.config_ = run.model, run.config
        detector.n_features_in_ = int(math.prod(detector.event_shape_))
        detector.labels_ = (detector.decision_scores_ > detector.threshold_).astype(np.int64)
        detector.history_ = []
        return detector


def _fit_scaling(x: np.ndarray, scaling: str) -> Standardizer | QuantileScaler:
    """Per-column scaling of a table (N, F). "standard": mean and standard deviation. "robust": median and
    IQR / 1.349 (the standard deviation of a normal column, but not inflated by the anomalies themselves); a column
    with IQR 0 (e.g. a sparse binary one) falls back to its standard deviation, a constant one to 1. "quantile":
    each column through its empirical CDF onto N(0, 1) (`QuantileScaler`), not affine: ranks, not distances."""
    if scaling == "quantile":
        return QuantileScaler.fit(x)
    standard = Standardizer.fit(x)
    if scaling == "standard":
        return standard
    q25, median, q75 = np.quantile(x, [0.25, 0.5, 0.75], axis=0)
    iqr = (q75 - q25) / 1.349
    return Standardizer(mean=median, scale=np.where(iqr > 0, iqr, standard.scale))


def _load_standardizer(run_dir: Path, state: dict) -> Standardizer | QuantileScaler | None:
    """standardizer.json of the run; detectors saved before it existed kept mean and scale in detector.json."""
    path = run_dir / STANDARDIZER_FILE
    if path.is_file():
        try:
            values = read_json(path, CheckpointError)
            if isinstance(values, dict) and values.get("kind") == "quantile":
                return QuantileScaler.from_dict(values)
            return Standardizer.from_dict(values)
        except DataError as error:
            raise CheckpointError(f"{path} is invalid ({error})") from None
    if state.get("mean") is not None:
        return Standardizer.from_dict({"mean": state["mean"], "scale": state["scale"]})
    return None


def detection_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """ROC-AUC, average precision, precision@n (n = number of true anomalies) and, with a threshold, the
    precision / recall / F1 of `scores > threshold`; `labels` 1 = anomaly."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    labels = np.asarray(labels).astype(np.int64)
    n_anomalies = int(labels.sum())
    if n_anomalies == 0 or n_anomalies == len(labels):
        raise DataError("ROC-AUC needs both normal points and anomalies among the labels")
    top = np.argsort(-scores, kind="stable")[:n_anomalies]
    metrics = {"n": int(len(labels)), "n_anomalies": n_anomalies, "roc_auc": float(roc_auc_score(labels, scores)),
               "average_precision": float(average_precision_score(labels, scores)),
               "precision_at_n": float(labels[top].mean())}
    if threshold is not None:
        p, r, f, _ = precision_recall_fscore_support(labels, (scores > threshold).astype(int), average="binary",
                                                     zero_division=0)
        metrics.update(threshold=float(threshold), precision=float(p), recall=float(r), f1=float(f))
    return metrics


LOG_AXIS_SPAN = 100.0  # positive scores whose 99th percentile is this many times the smallest: a log axis


def histogram_bins(scores: np.ndarray, threshold: float | None = None, count: int = 50) -> tuple[np.ndarray, bool]:
    """The score histogram's bin edges, from the lowest score to the 99th percentile (or the threshold), and
    whether they are log-spaced: positive scores spanning orders of magnitude would otherwise fall into the first
    bins of a linear axis."""
    lo, hi = np.quantile(scores, [0.0, 0.99])  # the top 1% would stretch the axis; they are counted in the legend
    hi = max(hi, threshold if threshold is not None else hi)
    logarithmic = bool(lo > 0 and hi / lo >= LOG_AXIS_SPAN)
    if logarithmic:
        return np.geomspace(lo, hi, count), True
    return np.linspace(lo, hi if hi > lo else lo + 1.0, count), False


def save_score_histogram(scores: np.ndarray, labels: np.ndarray, path: str | Path, threshold: float | None = None,
                         title: str = "Anomaly scores") -> Path:
    """Histograms of the scores of normal points and of anomalies (shared bins, densities), with the threshold."""
    from ..figures.plots import _pyplot

    plt = _pyplot()
    labels = np.asarray(labels).astype(bool)
    bins, logarithmic = histogram_bins(scores, threshold)
    lo = bins[0]
    beyond = int((scores > bins[-1]).sum())
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    if logarithmic:
        ax.set_xscale("log")
    for group, color, name in ((~labels, "tab:blue", "normal"), (labels, "tab:red", "anomaly")):
        values = np.clip(scores[group], lo, bins[-1])
        # bins of unequal width (log axis): each bin's share of the group, not a density per unit of score
        weights = np.full(len(values), 1.0 / max(1, len(values))) if logarithmic else None
        ax.hist(values, bins=bins, density=not logarithmic, weights=weights, alpha=0.6, color=color,
                label=f"{name} ({group.sum()})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.3g}")
    ax.set_xlabel("anomaly score (higher = more anomalous)" + (f"; {beyond} above the axis in the last bin"
                                                                if beyond else ""))
    ax.set_ylabel("share of each group" if logarithmic else "density")
    ax.set_title(title + (" (log axis)" if logarithmic else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    from ..figures.plots import save_figure

    save_figure(fig, path)  # atomic: whole or absent
    plt.close(fig)
    return path


__all__ = ["VAEAnomalyDetector", "anomaly_scores", "bernoulli_entropy", "detection_metrics", "save_score_histogram", "SCORES"]
