"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


class TisError(Exception):
    """A user-facing error: the message names what is wrong and what to do."""


class ConfigError(TisError):
    """A bad option, an unknown name, an unusable setting."""


class DataError(TisError):
    """A benchmark file or record that cannot be read."""


class ModelError(TisError):
    """A model call failed. `retryable` errors are retried with backoff by the runner."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class FatalModelError(ModelError):
    """A failure that no retry can fix (bad key, unknown model): the run stops, results kept."""
