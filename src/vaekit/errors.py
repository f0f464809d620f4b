"""Exceptions with a message meant for the user.

The CLI turns every `VaekitError` into a one-line message and a non-zero exit; anything else is a bug.
"""


class VaekitError(Exception):
    """Base class of all errors whose message is written for the user."""


class ConfigError(VaekitError):
    """A configuration value, key or override is invalid."""


class DataError(VaekitError):
    """A data set is missing, unreadable or holds invalid values."""


class CheckpointError(VaekitError):
    """A run folder or checkpoint is missing, unreadable or inconsistent."""


class TrainingError(VaekitError):
    """Training cannot go on (e.g. the loss became non-finite)."""


class ResourceError(VaekitError):
    """A request would need more memory (or other resources) than this machine allows."""


class PeerError(TrainingError):
    """Another process of a distributed run (rank 0) stopped with an error, which it reports itself; the other
    processes stop too, without repeating it."""
