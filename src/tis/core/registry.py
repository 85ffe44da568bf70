"""Lazy registries: names map to "module:attr" strings, imported only when used.

This keeps torch and transformers out of the CLI's start-up path: `tis --help` imports no
backend at all.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from tis.core.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "package.module:Attribute"
    summary: str = ""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str, summary: str = "") -> None:
        self._entries[name] = Entry(name, target, summary)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown {self.kind} '{name}'.{hint} Known {self.kind}s: {', '.join(self.names())}."
            )
        return self._entries[name]

    def load(self, name: str) -> Any:
        target = self.entry(name).target
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


class PluginRegistry(Registry):
    """A registry that also reads an entry-point group (`name = "package.module:Attr"`) of installed
    packages, on the first lookup of a name it does not know or the first listing (`name in registry`
    reads none: it says what is known so far). Targets are only recorded: a plugin is imported when
    it is used. A plugin cannot replace a built-in name."""

    def __init__(self, kind: str, group: str):
        super().__init__(kind)
        self.group = group
        self._entry_points_loaded = False

    def load_entry_points(self) -> list[str]:
        from importlib.metadata import entry_points

        self._entry_points_loaded = True
        added = []
        for ep in entry_points(group=self.group):
            if ep.name in self._entries or ":" not in ep.value:
                continue
            dist = getattr(ep.dist, "name", None)
            self.register(ep.name, ep.value, f"from the {dist} package" if dist else "from an installed package")
            added.append(ep.name)
        return added

    def _ensure(self) -> None:
        if not self._entry_points_loaded:
            self.load_entry_points()

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            self._ensure()
        return super().entry(name)

    def names(self) -> list[str]:
        self._ensure()
        return super().names()
