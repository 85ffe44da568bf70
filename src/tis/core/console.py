"""One rich console on stderr for progress, logs and messages; stdout stays for results."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, highlight=False)
