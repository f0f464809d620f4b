"""Supervised disentanglement metrics: MIG, the beta-VAE score, the FactorVAE score, DCI and SAP.

Each metric takes a factor source (`FactorGrid`: sample factors, render observations) and a representation
(observations -> codes (n, D)), and returns a `MetricResult` whose `score` lies in [0, 1] (1 = disentangled).
The defaults are the settings of disentanglement_lib (Locatello et al. 2019, "Challenging common assumptions in
the unsupervised learning of disentangled representations"); `MetricSettings.scaled` shrinks every count.

    MIG (Chen et al. 2018)           codes discretised into 20 equal-width bins per dimension (histogram);
                                     I(c_d; v_k) by scikit-learn's `mutual_info_score`; per factor the gap between
                                     the two most informative codes divided by H(v_k), averaged. 10,000 points.
    beta-VAE score (Higgins 2017)    a point: pick factor k, draw 64 pairs (x1, x2) that share factor k, feature =
                                     mean_pairs |z(x1) - z(x2)|; logistic regression predicts k; score = accuracy
                                     on 5,000 held-out points (10,000 to train).
    FactorVAE score (Kim & Mnih      codes divided by their std over 10,000 draws; dimensions with std < 0.05 are
    2018)                            pruned; a point: pick factor k, draw 64 with factor k fixed to one value, vote
                                     for the dimension of least variance; majority-vote classifier dimension ->
                                     factor; score = its accuracy on 5,000 held-out votes (10,000 to train).
    DCI (Eastwood & Williams 2018)   one gradient-boosted tree classifier per factor (scikit-learn defaults, 100
                                     trees) on 10,000 points; importance R_dk; disentanglement = sum_d rho_d (1 -
                                     H_K(P_d.)), rho_d = R_d. / R..; completeness likewise per factor; informativeness
                                     = mean test accuracy on 5,000 points. The score is the disentanglement.
    SAP (Kumar et al. 2018)          for every (code d, factor k) a linear SVM (C = 0.01, balanced classes) on the
                                     single code predicts k; S_dk = test accuracy; per factor the gap between the two
                                     best codes, averaged. 10,000 train / 5,000 test points (discrete factors).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy.stats import entropy

from ..core.progress import progress as progress_bar
from ..errors import DataError
from .factors import FactorGrid, Representation, encode_samples

log = logging.getLogger(__name__)

STANDARD_N_TRAIN = 10_000  # disentanglement_lib's training points for every metric


@dataclass(frozen=True)
class MetricResult:
    """A metric's headline `score` in [0, 1], its other numbers, and the settings it ran with."""

    name: str
    score: float
    details: dict[str, float] = field(default_factory=dict)
    settings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class MetricSettings:
    """Sample counts of every metric; the defaults are disentanglement_lib's (Locatello et al. 2019)."""

    mig_train: int = 10_000
    mig_bins: int = 20
    beta_vae_batch: int = 64
    beta_vae_train: int = 10_000
    beta_vae_eval: int = 5_000
    factor_vae_batch: int = 64
    factor_vae_train: int = 10_000
    factor_vae_eval: int = 5_000
    factor_vae_variance: int = 10_000
    factor_vae_prune: float = 0.05
    dci_train: int = 10_000
    dci_test: int = 5_000
    dci_trees: int = 100  # boosting stages of each factor's classifier (scikit-learn's default)
    sap_train: int = 10_000
    sap_test: int = 5_000

    def scaled(self, n_train: int) -> "MetricSettings":
        """Every count times n_train / 10,000 (at least 20); batch sizes, bins and thresholds unchanged."""
        if n_train < 1:
            raise DataError(f"the number of training points must be positive, got {n_train}")
        ratio = n_train / STANDARD_N_TRAIN
        counts = {name: max(20, round(getattr(self, name) * ratio)) for name in (
            "mig_train", "beta_vae_train", "beta_vae_eval", "factor_vae_train", "factor_vae_eval",
            "factor_vae_variance", "dci_train", "dci_test", "sap_train", "sap_test")}
        return replace(self, **counts)


def _checked(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise DataError(f"a representation must give codes of shape (n, D), got {codes.shape}")
    if not np.isfinite(codes).all():
        raise DataError("the representation returned non-finite codes")
    return codes


# ---- MIG -------------------------------------------------------------------------------------------------------


def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each code dimension cut into `bins` equal-width bins over its range: (n, D) floats -> (n, D) bin indices."""
    return np.stack([np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T], axis=1)


def mutual_information(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(c_d; v_k) in nats for every code dimension d and factor k, (D, K)."""
    from sklearn.metrics import mutual_info_score

    return np.array([[mutual_info_score(f, c) for f in factors.T] for c in discrete_codes.T])


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> tuple[float, np.ndarray]:
    """MIG = mean_k (I_(1)k - I_(2)k) / H(v_k), with I_(1) >= I_(2) the two largest I(c_d; v_k); and the (D, K) MI."""
    from sklearn.metrics import mutual_info_score

    mi = mutual_information(discretize(_checked(codes), bins), factors)  # (D, K)
    h = np.array([mutual_info_score(f, f) for f in factors.T])  # H(v_k), (K,)
    top = -np.sort(-np.vstack([mi, np.zeros((1, mi.shape[1]))]), axis=0)  # a zero row: one code has gap I_(1)
    gaps = np.where(h > 0, (top[0] - top[1]) / np.where(h > 0, h, 1.0), 0.0)
    return float(np.clip(gaps.mean(), 0.0, 1.0)), mi


def mig(source: FactorGrid, represent: Representation, *, n_train: int = 10_000, bins: int = 20,
        seed: int = 0) -> MetricResult:
    """Mutual information gap (Chen et al. 2018) on `n_train` uniform draws."""
    rng = np.random.default_rng(seed)
    codes, factors = encode_samples(source, represent, n_train, rng)
    score, mi = mig_from_codes(codes, factors, bins)
    return MetricResult("mig", score, {"max_mi_per_factor": float(mi.max(0).mean())},
                        {"n_train": n_train, "bins": bins, "discretizer": "histogram"})


# ---- beta-VAE score ----------------------------------------------------------------------------------------------


def _chunks(n_points: int, batch: int, rows: int = 4096):
    """Split n_points (each `batch` observations) into chunks of about `rows` observations."""
    per = max(1, rows // batch)
    return [(s, min(per, n_points - s)) for s in range(0, n_points, per)]


def _beta_vae_points(source: FactorGrid, represent: Representation, n_points: int, batch: int,
                     rng: np.random.Generator, progress: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Features mean_b |z(x1_b) - z(x2_b)| (n_points, D) and the fixed factor of each point (n_points,)."""

    labels = rng.integers(0, source.num_factors, n_points)
    features = []
    for start, m in progress_bar(_chunks(n_points, batch), disable=progress is None, desc=progress or "", unit="chunk"):
        ks = np.repeat(labels[start : start + m], batch)  # (m * batch,)
        f1, x1 = source.sample(len(ks), rng)
        _, x2 = source.sample_fixed(ks, f1[np.arange(len(ks)), ks], rng)  # pairs share factor ks
        z1, z2 = _checked(represent(x1)), _checked(represent(x2))  # (m * batch, D)
        features.append(np.abs(z1 - z2).reshape(m, batch, -1).mean(1))  # (m, D)
    return np.concatenate(features), labels


def beta_vae_score(source: FactorGrid, represent: Representation, *, batch_size: int = 64, n_train: int = 10_000,
                   n_eval: int = 5_000, seed: int = 0, progress: bool = False) -> MetricResult:
    """beta-VAE score (Higgins et al. 2017): accuracy of a linear classifier that tells the fixed factor."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x_train, y_train = _beta_vae_points(source, represent, n_train, batch_size, rng,
                                        "beta-VAE score (train)" if progress else None)
    x_eval, y_eval = _beta_vae_points(source, represent, n_eval, batch_size, rng,
                                      "beta-VAE score (eval)" if progress else None)
    # scikit-learn's default (lbfgs) as in disentanglement_lib, with more iterations so that it converges.
    model = LogisticRegression(max_iter=1000, random_state=seed).fit(x_train, y_train)
    train_acc, eval_acc = model.score(x_train, y_train), model.score(x_eval, y_eval)
    return MetricResult("beta_vae", float(eval_acc), {"train_accuracy": float(train_acc)},
                        {"batch_size": batch_size, "n_train": n_train, "n_eval": n_eval,
                         "classifier": "logistic regression"})


# ---- FactorVAE score ---------------------------------------------------------------------------------------------


def _factor_vae_votes(source: FactorGrid, represent: Representation, n_points: int, batch: int, scale: np.ndarray,
                      active: np.ndarray, rng: np.random.Generator, progress: str | None) -> np.ndarray:
    """Votes (K, D): for each point, the factor held fixed and the active dimension of least normalised variance."""

    votes = np.zeros((source.num_factors, len(scale)), dtype=np.int64)
    labels = rng.integers(0, source.num_factors, n_points)
    for start, m in progress_bar(_chunks(n_points, batch), disable=progress is None, desc=progress or "", unit="chunk"):
        ks = labels[start : start + m]
        values = np.array([rng.integers(0, source.sizes[k]) for k in ks])  # one value per point
        _, x = source.sample_fixed(np.repeat(ks, batch), np.repeat(values, batch), rng)
        z = _checked(represent(x)).reshape(m, batch, -1) / scale  # (m, batch, D), global std -> 1
        local = z.var(axis=1, ddof=1)  # (m, D)
        local[:, ~active] = np.inf
        np.add.at(votes, (ks, local.argmin(1)), 1)
    return votes


def factor_vae_score(source: FactorGrid, represent: Representation, *, batch_size: int = 64, n_train: int = 10_000,
                     n_eval: int = 5_000, n_variance: int = 10_000, prune: float = 0.05, seed: int = 0,
                     progress: bool = False) -> MetricResult:
    """FactorVAE score (Kim & Mnih 2018): accuracy of a majority-vote classifier from the least-varying dimension
    to the fixed factor."""
    rng = np.random.default_rng(seed)
    codes, _ = encode_samples(source, represent, n_variance, rng)
    scale = codes.std(0, ddof=1)  # (D,)
    active = scale >= prune  # dimensions collapsed to a constant carry no vote
    settings = {"batch_size": batch_size, "n_train": n_train, "n_eval": n_eval, "n_variance": n_variance,
                "prune_std": prune, "classifier": "majority vote"}
    if not active.any():
        return MetricResult("factor_vae", 0.0, {"train_accuracy": 0.0, "active_dims": 0}, settings)
    scale = np.where(active, scale, 1.0)
    train = _factor_vae_votes(source, represent, n_train, batch_size, scale, active, rng,
                              "FactorVAE score (train)" if progress else None)
    evaluation = _factor_vae_votes(source, represent, n_eval, batch_size, scale, active, rng,
                                   "FactorVAE score (eval)" if progress else None)
    assign = train.argmax(0)  # each dimension -> the factor it was most often the least-varying one for
    dims = np.arange(train.shape[1])
    train_acc = train[assign, dims].sum() / train.sum()
    eval_acc = evaluation[assign, dims].sum() / evaluation.sum()
    return MetricResult("factor_vae", float(eval_acc),
                        {"train_accuracy": float(train_acc), "active_dims": int(active.sum())}, settings)


# ---- DCI ---------------------------------------------------------------------------------------------------------


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """Disentanglement and completeness of an importance matrix R (D codes, K factors), entropies in base K and D."""
    importance = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = importance.shape
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    # 1 - H_K(P_d.) per code, weighted by the code's share of the total importance; 1e-11 as in disentanglement_lib
    per_code = 1.0 - entropy(importance.T + 1e-11, base=k) if k > 1 else np.ones(d)
    per_factor = 1.0 - entropy(importance + 1e-11, base=d) if d > 1 else np.ones(k)
    disentanglement = float(np.sum(per_code * weights.sum(1) / weights.sum()))
    completeness = float(np.sum(per_factor * weights.sum(0) / weights.sum()))
    return float(np.clip(disentanglement, 0, 1)), float(np.clip(completeness, 0, 1))


def dci_importance(codes_train: np.ndarray, factors_train: np.ndarray, codes_test: np.ndarray,
                   factors_test: np.ndarray, seed: int = 0, trees: int = 100,
                   progress: bool = False) -> tuple[np.ndarray, float, float]:
    """Feature importances (D, K) of one gradient-boosted tree classifier per factor, mean train and test accuracy."""
    from sklearn.ensemble import GradientBoostingClassifier

    importance = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    train_acc, test_acc = [], []
    for k in progress_bar(range(factors_train.shape[1]), disable=not progress, desc="DCI (trees per factor)",
                          unit="factor"):
        model = GradientBoostingClassifier(n_estimators=trees, random_state=seed).fit(codes_train, factors_train[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_acc.append(model.score(codes_train, factors_train[:, k]))
        test_acc.append(model.score(codes_test, factors_test[:, k]))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def dci(source: FactorGrid, represent: Representation, *, n_train: int = 10_000, n_test: int = 5_000,
        trees: int = 100, seed: int = 0, progress: bool = False) -> MetricResult:
    """DCI (Eastwood & Williams 2018): disentanglement (the score), completeness and informativeness."""
    rng = np.random.default_rng(seed)
    codes_train, factors_train = encode_samples(source, represent, n_train, rng)
    codes_test, factors_test = encode_samples(source, represent, n_test, rng)
    importance, train_acc, test_acc = dci_importance(_checked(codes_train), factors_train, _checked(codes_test),
                                                     factors_test, seed, trees, progress)
    disentanglement, completeness = dci_from_importance(importance)
    return MetricResult("dci", disentanglement,
                        {"completeness": completeness, "informativeness_train": train_acc,
                         "informativeness_test": test_acc},
                        {"n_train": n_train, "n_test": n_test, "trees": trees, "classifier": "gradient-boosted trees"})


# ---- SAP ---------------------------------------------------------------------------------------------------------


def sap_from_codes(codes_train: np.ndarray, factors_train: np.ndarray, codes_test: np.ndarray,
                   factors_test: np.ndarray) -> tuple[float, np.ndarray]:
    """SAP = mean_k (S_(1)k - S_(2)k) over the (D, K) test accuracies S of one-code linear SVMs; and S."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    d, k = codes_train.shape[1], factors_train.shape[1]
    scores = np.zeros((d, k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i in range(d):
            for j in range(k):
                svm = LinearSVC(C=0.01, class_weight="balanced").fit(codes_train[:, i : i + 1], factors_train[:, j])
                scores[i, j] = np.mean(svm.predict(codes_test[:, i : i + 1]) == factors_test[:, j])
    top = -np.sort(-np.vstack([scores, np.zeros((1, k))]), axis=0)
    return float(np.clip(np.mean(top[0] - top[1]), 0.0, 1.0)), scores


def sap_continuous(codes: np.ndarray, factors: np.ndarray) -> float:
    """SAP with every factor treated as continuous (Kumar et al. 2018): S_dk = R^2 of a linear fit of factor k on
    code d = corr(c_d, v_k)^2. Unlike the discrete variant it reaches 1 for the true factors of any cardinality."""
    c = codes - codes.mean(0)
    v = factors - factors.mean(0)
    cov = c.T @ v / len(c)  # (D, K)
    var_c, var_v = (c**2).mean(0), (v**2).mean(0)
    ok = (var_c[:, None] > 1e-12) & (var_v[None, :] > 0)
    r2 = np.where(ok, cov**2 / np.where(ok, var_c[:, None] * var_v[None, :], 1.0), 0.0)
    top = -np.sort(-np.vstack([r2, np.zeros((1, r2.shape[1]))]), axis=0)
    return float(np.clip(np.mean(top[0] - top[1]), 0.0, 1.0))


def sap(source: FactorGrid, represent: Representation, *, n_train: int = 10_000, n_test: int = 5_000,
        seed: int = 0) -> MetricResult:
    """Separated attribute predictability (Kumar et al. 2018) with discrete factors (the score, as in
    disentanglement_lib) and, in `details`, with continuous factors.

    The one-code linear SVM (one-vs-rest) cannot carve a many-valued factor into intervals, so the discrete SAP of
    even the true factors stays well below 1 (about 0.4 for factor sizes (3, 4, 8, 12, 12)); the continuous
    variant gives 1 for them."""
    rng = np.random.default_rng(seed)
    codes_train, factors_train = encode_samples(source, represent, n_train, rng)
    codes_test, factors_test = encode_samples(source, represent, n_test, rng)
    score, matrix = sap_from_codes(_checked(codes_train), factors_train, _checked(codes_test), factors_test)
    return MetricResult("sap", score, {"continuous": sap_continuous(codes_train, factors_train.astype(np.float64)),
                                       "best_accuracy_per_factor": float(matrix.max(0).mean())},
                        {"n_train": n_train, "n_test": n_test, "classifier": "linear SVM, C=0.01, balanced"})


def all_metrics(source: FactorGrid, represent: Representation, settings: MetricSettings = MetricSettings(),
                seed: int = 0, progress: bool = False) -> dict[str, MetricResult]:
    """The five metrics with `settings`, each from its own seeded draws."""
    s = settings
    results = {}
    results["mig"] = mig(source, represent, n_train=s.mig_train, bins=s.mig_bins, seed=seed)
    results["beta_vae"] = beta_vae_score(source, represent, batch_size=s.beta_vae_batch, n_train=s.beta_vae_train,
                                         n_eval=s.beta_vae_eval, seed=seed, progress=progress)
    results["factor_vae"] = factor_vae_score(source, represent, batch_size=s.factor_vae_batch,
                                             n_train=s.factor_vae_train, n_eval=s.factor_vae_eval,
                                             n_variance=s.factor_vae_variance, prune=s.factor_vae_prune, seed=seed,
                                             progress=progress)
    results["dci"] = dci(source, represent, n_train=s.dci_train, n_test=s.dci_test, trees=s.dci_trees, seed=seed,
                         progress=progress)
    results["sap"] = sap(source, represent, n_train=s.sap_train, n_test=s.sap_test, seed=seed)
    for name, result in results.items():
        log.info("%s: %.3f", name, result.score)
    return results


# ---- a trained model on a data set with factors ------------------------------------------------------------------

REPORT_N_TRAIN = 2_000  # one fifth of disentanglement_lib's counts: about a minute on a 2-core CPU


@dataclass(frozen=True)
class DisentanglementReport:
    """The five scores of a model's posterior means on a data set with generative factors."""

    data: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    latent_dim: int
    mig: float
    beta_vae: float
    factor_vae: float
    dci_disentanglement: float
    dci_completeness: float
    dci_informativeness: float
    sap: float
    seed: int
    seconds: float
    metrics: dict[str, MetricResult]

    def scores(self) -> dict[str, float]:
        """The headline numbers by name."""
        return {"mig": self.mig, "beta_vae": self.beta_vae, "factor_vae": self.factor_vae,
                "dci_disentanglement": self.dci_disentanglement, "dci_completeness": self.dci_completeness,
                "dci_informativeness": self.dci_informativeness, "sap": self.sap}

    def to_dict(self) -> dict:
        """JSON-ready dict: the headline scores, then every metric's details and settings."""
        out = asdict(self)
        out["factor_names"], out["factor_sizes"] = list(self.factor_names), list(self.factor_sizes)
        return out


def disentanglement_report(model, bundle, n_train: int | None = REPORT_N_TRAIN, seed: int = 0,
                           progress: bool = False, settings: MetricSettings | None = None) -> DisentanglementReport:
    """MIG, beta-VAE, FactorVAE, DCI and SAP scores of `model`'s posterior means on `bundle` (e.g. 'shapes').

    Observations are rendered fresh from the data set's factor grid (not read from its splits). Counts are
    disentanglement_lib's scaled by n_train / 10,000 (`n_train=10000` or None: the standard settings), unless
    `settings` are given. A DataError when the data set has no factors; a ConfigError for conditional models."""
    import time

    from .factors import factor_source, model_representation

    source = factor_source(bundle)
    if tuple(model.event_shape) != tuple(bundle.event_shape):
        raise DataError(f"the model expects data of shape {tuple(model.event_shape)}, data set {bundle.name!r} has "
                        f"{tuple(bundle.event_shape)}")
    represent = model_representation(model)
    if settings is None:
        settings = MetricSettings() if n_train is None else MetricSettings().scaled(n_train)
    started = time.perf_counter()
    results = all_metrics(source, represent, settings, seed=seed, progress=progress)
    dci_details = results["dci"].details
    return DisentanglementReport(
        data=bundle.name, factor_names=source.names, factor_sizes=source.sizes, latent_dim=model.latent_dim,
        mig=results["mig"].score, beta_vae=results["beta_vae"].score, factor_vae=results["factor_vae"].score,
        dci_disentanglement=results["dci"].score, dci_completeness=dci_details["completeness"],
        dci_informativeness=dci_details["informativeness_test"], sap=results["sap"].score, seed=seed,
        seconds=round(time.perf_counter() - started, 2), metrics=results,
    )
