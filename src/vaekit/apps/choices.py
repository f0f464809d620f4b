"""The names that the anomaly detector's options take, in a module that imports nothing: the command line builds
its argument parser from them without loading scikit-learn (`vaekit --help` stays fast)."""

SCORES = ("nll", "elbo", "recon", "nll-entropy", "codes")  # vaekit.apps.anomaly.anomaly_scores
SCALINGS = ("robust", "standard", "quantile")  # per-column scaling of tables: median/IQR, mean/std or ranks

__all__ = ["SCORES", "SCALINGS"]
