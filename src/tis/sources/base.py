"""The benchmark interface: a loader reads a published layout and yields Samples.

A loader is constructed with the dataset root (`data`, None where the benchmark ships with tis)
and its options (validated by the loader's `Options` model, so a wrong option name or value is
a clear error). `samples()` streams: a loader never holds a whole large set in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tis.core.errors import ConfigError, DataError
from tis.core.types import Frozen, Group, Sample


class Problem(Frozen):
    """A record that cannot be used: which file, which record, what is wrong."""

    file: str
    record: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.record}: {self.message}"


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Benchmark(ABC):
    name: ClassVar[str]
    group: ClassVar[Group]
    licence: ClassVar[str] = "unknown"
    citation: ClassVar[str] = ""
    #: True where the data ships with tis and `data` may be omitted
    bundled: ClassVar[bool] = False
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, data: str | Path | None = None, options: dict[str, Any] | None = None):
        if data is None and not self.bundled:
            raise ConfigError(f"benchmark '{self.name}' needs its data folder: pass --data PATH")
        self.data = Path(data).expanduser().resolve() if data is not None else None
        if self.data is not None and not self.data.exists():
            raise DataError(f"{self.name}: data path {self.data} does not exist")
        try:
            self.options = self.Options(**(options or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"benchmark '{self.name}': bad option ({problems})") from None

    @abstractmethod
    def records(self) -> Iterator[Sample | Problem]:
        """Yield a Sample per usable record and a Problem per unusable one, lazily.

        A fault that stops the whole set from being read (missing file, truncated JSON, missing
        columns, wrong root folder) raises DataError naming the file instead.
        """

    def samples(self, *, skip_bad: bool = False, problems: list[Problem] | None = None) -> Iterator[Sample]:
        """The usable samples. A bad record raises DataError unless `skip_bad`, in which case it is
        appended to `problems` (so the caller can count and report it: nothing is dropped silently)."""
        for item in self.records():
            if isinstance(item, Problem):
                if not skip_bad:
                    raise DataError(f"{item} (pass --skip-bad to skip unreadable items and count them)")
                if problems is not None:
                    problems.append(item)
                continue
            yield item

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "licence": self.licence,
            "citation": self.citation,
            "data": str(self.data) if self.data else None,
            "options": self.options.model_dump(),
        }

    def resolve_inside(self, relative: str, *, root: Path | None = None, record: str = "") -> Path:
        """Resolve a path from a record against the dataset root; refuse one that escapes it."""
        base = (root or self.data)
        assert base is not None
        path = (base / relative).resolve()
        if not path.is_relative_to(base.resolve()):
            raise DataError(f"{self.name}: {record}: image path '{relative}' points outside {base}")
        return path
