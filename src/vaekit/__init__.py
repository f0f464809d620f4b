"""vaekit: variational autoencoders and their latent spaces, on PyTorch.

    import vaekit
    result = vaekit.fit(vaekit.RunConfig(), run_dir="runs/digits")    # train on the bundled digits
    model = vaekit.load("runs/digits")                                # encode / decode / sample / reconstruct
    print(vaekit.evaluate(model, test_x))
"""

import os

# PyTorch's OpenMP threads spin while they wait for work; next to any other busy process (a browser, a second job,
# CI) that makes a 2-thread run several times slower. PASSIVE lets them sleep instead. It must be set before
# torch loads its OpenMP runtime, so here, first; a policy the user set is kept (docs/benchmarks.md measures both).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .build import build_model, resolve_model_config  # noqa: E402
from .config import DataConfig, ModelConfig, Plugin, RunConfig, TrainConfig, build_run_config
from .core.registry import REGISTRIES
from .data import DataBundle, Split, load_data
from .errors import CheckpointError, ConfigError, DataError, TrainingError, VaekitError
from .evaluate import EvalResult, evaluate, importance_sampled_nll
from .io import Run, load, load_run
from .likelihoods import LIKELIHOODS
from .models import VAE, Batch, VAEOutput
from .nets import NETWORKS
from .objectives import ELBO, IWAE, OBJECTIVES, Loss, build_objective
from .priors import PRIORS
from .training.train import FitResult, fit

__version__ = "0.1.0"


def __getattr__(name: str):
    """The applications load on first use, so that `import vaekit` stays light."""
    if name in ("VAEAnomalyDetector", "VAEImputer"):
        from . import apps

        return getattr(apps, name)
    if name in ("compress", "decompress"):  # lossless BB-ANS coding (vaekit.apps.compress)
        from .apps import compress as codec

        return getattr(codec, name)
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")

__all__ = [
    "VAE", "Batch", "VAEOutput", "ELBO", "IWAE", "Loss", "build_objective", "build_model", "resolve_model_config",
    "RunConfig", "DataConfig", "ModelConfig", "Plugin", "TrainConfig", "build_run_config",
    "DataBundle", "Split", "load_data", "fit", "FitResult", "load", "load_run", "Run", "evaluate", "EvalResult",
    "importance_sampled_nll", "VaekitError", "ConfigError", "DataError", "CheckpointError", "TrainingError",
    "LIKELIHOODS", "PRIORS", "NETWORKS", "OBJECTIVES", "REGISTRIES", "VAEAnomalyDetector", "VAEImputer",
    "compress", "decompress",
]
