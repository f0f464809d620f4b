"""Applications of a trained VAE, one task per module: anomaly detection (`anomaly`, `surfaces`), missing-data
imputation (`impute`, `imputer`, `tables`, `inpaint`), class-conditional generation and style (`style`).

The scikit-learn-style estimators are exported here; the task functions live in their modules.
"""

from .anomaly import VAEAnomalyDetector
from .imputer import VAEImputer

__all__ = ["VAEAnomalyDetector", "VAEImputer"]
