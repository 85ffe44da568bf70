"""The model backend interface. A model under test, a teacher and an LLM judge are all backends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from tis.core.types import Frozen, ModelOutput, Sample


class GenerationParams(Frozen):
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = 0
    n: int = 1  # completions per sample; each becomes its own sample_index
    # thought budget: the thought is closed after this many generated tokens (local backends);
    # over HTTP only max_tokens bounds it
    max_thought_tokens: int | None = Field(None, ge=1)

    def identity(self) -> dict[str, Any]:
        """The parameters that change what a single completion is (n does not).

        An unset thought budget is left out, so cache keys made before it existed still match.
        """
        exclude = {"n"} if self.max_thought_tokens is not None else {"n", "max_thought_tokens"}
        return self.model_dump(exclude=exclude)


class BackendOptions(BaseModel):
    """A backend's constructor options, validated before it is built.

    Each backend declares its own subclass as `Options`; unknown options are refused. A field
    named `model` receives what follows the colon in `--model KIND:MODEL`; a backend without one
    takes no argument there.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelArgOptions(BackendOptions):
    """The options of a backend that declares none: the model argument alone (a plugin's default)."""

    model: str | None = Field(None, description="what follows the colon in --model KIND:MODEL")


class ModelBackend(ABC):
    """Turns samples into completions.

    `generate` takes a batch of at most `batch_size` samples and returns, for each, `params.n`
    outputs. It raises `ModelError(retryable=True)` for transient failures (429, 5xx, timeouts,
    dropped connections), `FatalModelError` for what no retry fixes (401, unknown model).
    """

    #: how many samples one `generate` call takes (local backends batch; HTTP ones do not)
    batch_size: int = 1
    #: how many `generate` calls may run at once (None: the runner's --concurrency decides)
    max_concurrency: int | None = None
    #: the constructor's options (see BackendOptions)
    Options: ClassVar[type[BackendOptions]] = ModelArgOptions

    @classmethod
    def from_options(cls, options: BackendOptions) -> "ModelBackend":
        """Build the backend from validated options: the options that were given, as keyword
        arguments (the constructor's defaults stand for the rest)."""
        return cls(**options.model_dump(exclude_unset=True))

    @property
    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What identifies the model for caching: never a secret, never a replica's URL."""

    async def start(self) -> None:
        """Check the model is usable before any sample is sent (server reachable, folder loads)."""

    @abstractmethod
    async def generate(self, samples: list[Sample], params: GenerationParams) -> list[list[ModelOutput]]:
        ...

    async def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        """Settings for the run manifest (no secrets)."""
        return dict(self.identity)
