"""Applications of a trained VAE, one task per module: anomaly detection (`anomaly`, `surfaces`), missing-data
imputation (`impute`, `imputer`, `tables`, `inpaint`), class-conditional generation and style (`style`).

The scikit-learn-style estimators are exported here; the task functions live in their modules.
"""

__all__ = ["VAEAnomalyDetector", "VAEImputer"]


def __getattr__(name: str):
    """The estimators load on first use: they import scikit-learn, which the command line's parser need not."""
    if name == "VAEAnomalyDetector":
        from .anomaly import VAEAnomalyDetector

        return VAEAnomalyDetector
    if name == "VAEImputer":
        from .imputer import VAEImputer

        return VAEImputer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
