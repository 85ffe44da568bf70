"""Real components for tests and benchmark scripts (a loopback OpenAI-compatible server)."""

from __future__ import annotations

from typing import Any

__all__ = ["LoopbackServer"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m tis.testing.openai_server` does not import the module twice.
    if name == "LoopbackServer":
        from tis.testing.openai_server import LoopbackServer

        return LoopbackServer
    raise AttributeError(name)
