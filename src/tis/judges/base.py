"""The judge interface: one judge, one target (thought / answer / full), one verdict."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from tis.core.types import Generation, Sample, Target, Verdict


class Judge(ABC):
    #: the targets this judge reads; the runner gives empty targets `not_applicable` itself
    targets: tuple[Target, ...] = ("thought", "answer")
    #: how many judgements may run at once
    max_concurrency: int = 16

    @property
    @abstractmethod
    def id(self) -> str:
        """A short, stable name under which its verdicts are stored (e.g. "refusal")."""

    @property
    def identity(self) -> dict[str, Any]:
        """Everything that changes this judge's verdicts (for the verdict cache key)."""
        return {"id": self.id}

    async def start(self) -> None:
        pass

    @abstractmethod
    async def judge(self, sample: Sample, generation: Generation, target: Target, text: str) -> Verdict:
        ...

    async def close(self) -> None:
        pass


def target_text(generation: Generation, target: Target) -> str:
    if target == "thought":
        return generation.thought
    if target == "answer":
        return generation.answer
    if generation.thought and generation.answer:
        return f"{generation.thought}\n\n{generation.answer}"
    return generation.thought or generation.answer
