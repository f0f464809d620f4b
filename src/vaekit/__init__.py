"""vaekit: variational autoencoders and their latent spaces, on PyTorch.

    import vaekit
    result = vaekit.fit(vaekit.RunConfig(), run_dir="runs/digits")    # train on the bundled digits
    model = vaekit.load("runs/digits")                                # encode / decode / sample / reconstruct
    print(vaekit.evaluate(model, test_x))
"""

from .core.openmp import choose_wait_policy

# Before torch loads its OpenMP runtime: on a machine that other work keeps busy, OpenMP threads that spin while
# they wait would fight it for the cores; then they sleep instead (vaekit.core.openmp; a policy the user set stays).
choose_wait_policy()

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
