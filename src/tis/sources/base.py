"""The benchmark interface: a loader reads a published layout and yields Samples.

A loader is constructed with the dataset root (`data`, None where the benchmark ships with tis)
and its options (validated by the loader's `Options` model, so a wrong option name or value is
a clear error). `samples()` streams: a loader never holds a whole large set in memory.

A loader also declares what it is measured by, so nothing downstream guesses it from its name,
group or labels:

- `metric_kind`: a kind registered in `tis.results.metrics` (`asr`, `safety_rate`, `refusal_rate`,
  `mss_accuracy`, `effective_rate`, or a plugin's own, registered with `register_metric`);
  `metric_by_group` gives another kind to samples of some groups, `extra_metrics` kinds read from
  judges of another vocabulary (SIUO's effectiveness judge).
- `rubric`: the LLM judge's rubric for its answers (`sample_rubric` may choose per sample); it is
  written into each `Sample.rubric`, so a judge never imports a loader.
- `Meta`: the pydantic model of its samples' `meta` (checked for every sample; a record whose
  metadata does not fit is a Problem naming it).
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


def validated_options(model: type[BaseModel], options: dict[str, Any] | None, what: str) -> Any:
    """A loader's `options` validated by its `Options` model; a wrong name or value is a
    ConfigError naming `what` (the loader) and the option."""
    try:
        return model(**(options or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{what}: bad option ({problems})") from None


class SampleMeta(BaseModel):
    """A loader's sample metadata: declared fields are typed and checked; others pass through."""

    model_config = ConfigDict(extra="allow", frozen=True)
    #: the behaviour the prompt asks for, in words (JailbreakBench's `goal`)
    goal: str | None = None


class Benchmark(ABC):
    name: ClassVar[str]
    group: ClassVar[Group]
    licence: ClassVar[str] = "unknown"
    citation: ClassVar[str] = ""
    #: True where the data ships with tis and `data` may be omitted
    bundled: ClassVar[bool] = False
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: how verdicts become this benchmark's figure: a kind in `tis.results.metrics.METRIC_KINDS`
    metric_kind: ClassVar[str] = "safety_rate"
    #: another kind for samples of these groups
    metric_by_group: ClassVar[dict[str, str]] = {}
    #: kinds read from judges that speak their vocabulary (e.g. effectiveness beside safety)
    extra_metrics: ClassVar[tuple[str, ...]] = ()
    #: the project's LLM-judge rubric for this benchmark's answers (tis/judges/rubrics/NAME.txt)
    rubric: ClassVar[str] = "harm"
    #: another rubric for samples of these groups
    rubric_by_group: ClassVar[dict[str, str]] = {}
    #: the model of its samples' `meta`
    Meta: ClassVar[type[BaseModel]] = SampleMeta

    def __init__(self, data: str | Path | None = None, options: dict[str, Any] | None = None):
        if data is None and not self.bundled:
            raise ConfigError(f"benchmark '{self.name}' needs its data folder: pass --data PATH")
        self.data = Path(data).expanduser().resolve() if data is not None else None
        if self.data is not None and not self.data.exists():
            raise DataError(f"{self.name}: data path {self.data} does not exist")
        self.options = validated_options(self.Options, options, f"benchmark '{self.name}'")

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
            if isinstance(item, Sample):
                item = self._declared(item)
            if isinstance(item, Problem):
                if not skip_bad:
                    raise DataError(f"{item} (pass --skip-bad to skip unreadable items and count them)")
                if problems is not None:
                    problems.append(item)
                continue
            yield item

    def sample_rubric(self, sample: Sample) -> str:
        """The rubric for one sample's answer (by its group, else the class's `rubric`; a loader may override)."""
        return self.rubric_by_group.get(sample.group, self.rubric)

    def _declared(self, sample: Sample) -> Sample | Problem:
        """The sample with its metadata checked against `Meta` and its rubric filled in."""
        try:
            self.Meta.model_validate(sample.meta)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(x) for x in e["loc"]) or "meta"
            return Problem(file=str(self.data or self.name), record=f"sample {sample.id}",
                           message=f"meta.{where}: {e['msg']}")
        if sample.rubric is None:
            sample = sample.model_copy(update={"rubric": self.sample_rubric(sample)})
        return sample

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "licence": self.licence,
            "citation": self.citation,
            "data": str(self.data) if self.data else None,
            "options": self.options.model_dump(),
            "metric_kind": self.metric_kind,
            "metric_by_group": dict(self.metric_by_group),
            "extra_metrics": list(self.extra_metrics),
            "rubric": self.rubric,
        }

    def resolve_inside(self, relative: str, *, root: Path | None = None, record: str = "") -> Path:
        """Resolve a path from a record against the dataset root; refuse one that escapes it."""
        base = (root or self.data)
        assert base is not None
        path = (base / relative).resolve()
        if not path.is_relative_to(base.resolve()):
            raise DataError(f"{self.name}: {record}: image path '{relative}' points outside {base}")
        return path
