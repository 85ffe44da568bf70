"""The typed shape of a run's outputs: result rows, the manifest and the summary.

`results.jsonl` holds one `ResultRow` per completion, `manifest.json` is a `Manifest`, and
`summary.json` is the dump of a `Summary` (with `schema_version`). `docs/results.md` documents every
field; a change of meaning or a removed field raises `SCHEMA_VERSION`, an added field does not.

Rates are fractions in [0, 1]; an interval is `[low, high]` or None where it has no denominator
(see the conventions in `tis.core.stats`). Counts of what decided nothing (unparsed, failed and not
applicable verdicts, failed generations) are kept beside every rate and never folded into it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from tis.core.types import Usage
from tis.reasoning.formats import ThoughtFormat

SCHEMA_VERSION = 1
MANIFEST_VERSION = 1


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """Read with unknown keys kept (a newer tis may add some)."""

    model_config = ConfigDict(extra="allow")


# --- results.jsonl ----------------------------------------------------------------------------


class RowVerdict(Model):
    """One judge's verdict on one target of a completion (judge and target are the keys above it)."""

    label: str | None = None
    safe: bool | None = None
    score: float | None = None
    rationale: str = ""
    status: str = "ok"  # ok | unparsed | failed | not_applicable
    error: str | None = None


class ImageRef(Model):
    path: str | None = None
    sha256: str | None = None


class ResultRow(Open):
    """One completion of one sample with every verdict on it: a line of results.jsonl."""

    sample_id: str
    benchmark: str
    category: str | None = None
    group: str | None = "custom"
    sample_index: int = 0
    generation_key: str | None = None
    prompt: str = ""
    images: list[ImageRef] = Field(default_factory=list)
    status: str = "ok"  # ok | failed
    error: str | None = None
    thought: str = ""
    answer: str = ""
    split_source: str | None = None
    truncated: bool = False
    finish_reason: str | None = None
    usage: Usage | None = None
    latency_s: float | None = None
    verdicts: dict[str, dict[str, RowVerdict]] = Field(default_factory=dict)  # judge -> target -> verdict
    meta: dict[str, Any] = Field(default_factory=dict)
    _thought_tokens: tuple[int, bool] | None = PrivateAttr(default=None)  # computed once (metrics.thought_tokens)

    @field_validator("thought", "answer", "prompt", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return "" if v is None else v

    @field_validator("usage", mode="before")
    @classmethod
    def _usage(cls, v: Any) -> Any:
        if isinstance(v, dict):  # a server may report more than tis reads
            return {k: v.get(k) for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens")}
        return v

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def verdict(self, judge: str, target: str) -> RowVerdict | None:
        return self.verdicts.get(judge, {}).get(target)

    def plain(self) -> dict[str, Any]:
        """The row as its results.jsonl line reads (verdicts without their empty fields)."""
        data = self.model_dump(mode="json")
        data["verdicts"] = {j: {t: {k: x for k, x in v.items() if x is not None} for t, v in ts.items()}
                            for j, ts in data["verdicts"].items()}
        return data


# --- manifest.json ----------------------------------------------------------------------------


def as_format(value: Any) -> Any:
    """A thought format written by name (manifests before the whole format was stored) as the object."""
    if isinstance(value, str):
        from tis.reasoning.formats import get_format

        return get_format(value)
    return value


class JudgeInfo(Open):
    spec: str
    id: str


class BenchmarkInfo(Open):
    """What the loader reported (`Benchmark.describe()`), including its declared metric."""

    name: str
    group: str | None = None
    licence: str | None = None
    citation: str | None = None
    data: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    #: the benchmark's metric kind (a name in `tis.results.metrics.METRIC_KINDS`)
    metric_kind: str | None = None
    #: a different metric kind for samples of some groups (e.g. a custom set with over-refusal items)
    metric_by_group: dict[str, str] = Field(default_factory=dict)
    #: further kinds a benchmark reads from judges of another vocabulary (SIUO: effectiveness)
    extra_metrics: list[str] = Field(default_factory=list)
    rubric: str | None = None


class Selection(Open):
    limit: int | None = None
    sample: int | None = None
    sample_seed: int | None = None
    samples: int | None = None
    skipped_bad: int | None = None


class RunnerSettings(Open):
    concurrency: int | None = None
    max_retries: int | None = None
    timeout_s: float | None = None


class Manifest(Open):
    """Everything needed to re-run, re-split and re-judge a run on another machine."""

    manifest_version: int = MANIFEST_VERSION
    tis_version: str | None = None
    created: str | None = None
    command: str | None = None
    model: dict[str, Any] = Field(default_factory=dict)  # {"spec": ..., backend.describe()}
    benchmark: BenchmarkInfo
    judges: list[JudgeInfo] = Field(default_factory=list)
    generation: dict[str, Any] = Field(default_factory=dict)  # GenerationParams
    #: the thought format's name, and the whole format (a custom one too) so that re-splitting and
    #: re-judging work on any machine without the profiles file that defined it
    thought_format: str | None = None
    thought_format_spec: ThoughtFormat | None = None
    run_identity: Any = None
    profile: str | None = None
    base_profile: str | None = None
    selection: Selection = Field(default_factory=Selection)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    stats: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _format_object(cls, data: Any) -> Any:
        """A format written whole under `thought_format` is the spec, and its name the name."""
        if isinstance(data, dict) and isinstance(data.get("thought_format"), dict):
            data = {**data, "thought_format_spec": data.get("thought_format_spec") or data["thought_format"],
                    "thought_format": data["thought_format"].get("name")}
        return data

    def format(self) -> ThoughtFormat:
        """The run's thought format: the stored one, else the built-in of that name."""
        if self.thought_format_spec is not None:
            return self.thought_format_spec
        return as_format(self.thought_format or "auto")

    @property
    def model_name(self) -> str:
        return str(self.model.get("spec") or self.model.get("name") or "unknown model")

    @property
    def judge_ids(self) -> list[str]:
        return [j.id for j in self.judges]


# --- summary.json -----------------------------------------------------------------------------


class Rate(Model):
    """k of n, with a 95% Wilson interval."""

    k: int
    n: int
    rate: float | None
    ci: list[float] | None


class MetricValue(Model):
    """A benchmark's own metric over the completions that decided it."""

    kind: str
    name: str
    higher_is_better: bool
    n: int
    k: int
    value: float | None
    ci: list[float] | None
    interval: str  # "wilson" | "bootstrap" | ...
    # stratified metrics (MSSBench): the accuracy per stratum
    strata: dict[str, "StratumValue"] = Field(default_factory=dict)

    # MSSBench's names, kept readable
    @property
    def safe_accuracy(self) -> float | None:
        s = self.strata.get("safe")
        return s.value if s else None

    @property
    def unsafe_accuracy(self) -> float | None:
        s = self.strata.get("unsafe")
        return s.value if s else None


class StratumValue(Model):
    n: int
    value: float | None


class TargetStats(Model):
    """One judge on one target (thought, answer, full) over a cell's completions."""

    judged: int = 0  # ok verdicts with a safety reading
    safe: int = 0
    unsafe: int = 0
    unparsed: int = 0
    failed: int = 0
    not_applicable: int = 0
    unsafe_rate: float | None = None
    unsafe_ci: list[float] | None = None
    labels: dict[str, int] = Field(default_factory=dict)
    label_rates: dict[str, float] = Field(default_factory=dict)
    metric: MetricValue

    @property
    def undecided(self) -> int:
        return self.unparsed + self.failed


class Matrix(Model):
    """Thought x answer, over completions where both were judged and read."""

    n: int
    no_thought: int
    undecided: int
    both_safe: Rate
    self_correction: Rate  # unsafe thought, safe answer
    safe_thought_unsafe_answer: Rate
    collapse: Rate  # both unsafe
    correction_rate: Rate  # among unsafe thoughts, how often the answer still came out safe


class SafeAt1(Model):
    rate: float | None
    n: int
    ci: list[float] | None


class AtK(Model):
    prompts: int
    k_min: int
    k_max: int
    safe_at_1: SafeAt1
    safe_at_k: Rate
    majority_safe: Rate  # a tie is not a majority (tis.core.stats.majority)


class LengthBucket(Model):
    bucket: str
    k: int
    n: int
    rate: float | None
    ci: list[float] | None


class LengthCurve(Model):
    target: str
    tokens: str  # reported | estimated | mixed
    buckets: list[LengthBucket]


class SiuoScore(Model):
    safety_judge: str
    effectiveness_judge: str
    items: int
    vote: str = "majority"
    safe: Rate
    effective: Rate
    safe_and_effective: Rate


class Headline(MetricValue):
    judge: str
    target: str


class Cell(Model):
    """Every figure for one set of completions (the whole benchmark, a category or a group)."""

    generations: int
    failed: int
    truncated: int
    prompts: int
    group: str | None
    judges: dict[str, dict[str, TargetStats]] = Field(default_factory=dict)  # judge -> target -> stats
    matrix: dict[str, Matrix] = Field(default_factory=dict)  # judge -> thought x answer
    at_k: dict[str, dict[str, AtK]] = Field(default_factory=dict)  # judge -> target -> Safe@K
    length: dict[str, LengthCurve] = Field(default_factory=dict)  # judge -> safety by thought length
    siuo: SiuoScore | None = None
    headline: Headline | None = None

    def stats(self, judge: str | None, target: str) -> TargetStats | None:
        return self.judges.get(judge, {}).get(target) if judge else None

    def metric(self, judge: str | None, target: str) -> MetricValue | None:
        t = self.stats(judge, target)
        return t.metric if t else None


class BenchmarkSummary(Model):
    group: str | None
    judges: list[str]  # the primary judge first
    primary_judge: str | None
    metric_kind: str | None
    overall: Cell
    categories: dict[str, Cell] = Field(default_factory=dict)
    groups: dict[str, Cell] = Field(default_factory=dict)  # only when the benchmark mixes groups


class PairAgreement(Model):
    judge_a: str
    judge_b: str
    target: str
    on: str  # "safe" | "label"
    n: int  # items both judges decided
    agree: int
    percent: float | None
    kappa: float | None  # None when undefined (tis.core.stats.cohen_kappa)
    only_a: int  # items only judge_a decided
    only_b: int


class MajorityCounts(Model):
    items: int
    decided: dict[str, int]
    ties: int
    undecided: int


class EnsembleSummary(Model):
    """How far the judges agree, and what their majority says: computed once, shown everywhere."""

    judges: list[str]
    on: str
    agreement: list[PairAgreement]
    majority: dict[str, MajorityCounts]  # target -> counts


class RunInfo(Open):
    tis_version: str | None = None
    model: dict[str, Any] = Field(default_factory=dict)
    benchmark: BenchmarkInfo | None = None
    judges: list[JudgeInfo] = Field(default_factory=list)
    generation: dict[str, Any] = Field(default_factory=dict)
    thought_format: str | None = None
    thought_format_spec: ThoughtFormat | None = None
    selection: Selection = Field(default_factory=Selection)


class Summary(Model):
    """summary.json."""

    schema_version: int = SCHEMA_VERSION
    run: RunInfo | None = None
    stats: dict[str, Any] = Field(default_factory=dict)
    skipped: list[str] = Field(default_factory=list)
    benchmarks: dict[str, BenchmarkSummary] = Field(default_factory=dict)
    ensemble: EnsembleSummary | None = None


MetricValue.model_rebuild()
Headline.model_rebuild()


# --- comparisons (tis compare, the report's comparison section) --------------------------------


class Flip(Model):
    sample_id: str
    sample_index: int
    category: str | None = None


class Flips(Model):
    worse: list[Flip] = Field(default_factory=list)  # good in the baseline, bad in the model
    better: list[Flip] = Field(default_factory=list)


class PairedEntry(Model):
    """Baseline and model on the same completions: their values, the paired difference and McNemar's test."""

    n: int
    baseline: float | None
    model: float | None
    baseline_ci: list[float] | None
    model_ci: list[float] | None
    diff: float | None  # model - baseline
    ci: list[float] | None  # paired bootstrap 95% interval of the difference
    p_value: float  # exact McNemar on the discordant pairs
    worse: int
    better: int
    flips: Flips | None = None  # listed once, under overall


class BenchmarkComparison(Model):
    judge: str | None
    completions_baseline: int
    completions_model: int
    only_baseline: int
    only_model: int
    paired: int
    note: str | None = None  # why nothing was compared (no judge in common)
    kind: str | None = None
    name: str | None = None
    higher_is_better: bool | None = None
    overall: dict[str, PairedEntry] = Field(default_factory=dict)  # target -> entry
    categories: dict[str, dict[str, PairedEntry]] = Field(default_factory=dict)  # category -> target -> entry


class ModelComparison(Model):
    baseline: str
    model: str
    benchmarks: dict[str, BenchmarkComparison]
    only_baseline_benchmarks: list[str]
    only_model_benchmarks: list[str]


class Comparison(Model):
    baseline: str
    models: list[str]
    resamples: int
    seed: int
    comparisons: list[ModelComparison]


class TableColumn(Model):
    benchmark: str
    group: str | None
    target: str
    metric: str
    higher_is_better: bool

    @property
    def key(self) -> str:
        return f"{self.benchmark}:{self.target}"


class TableCell(Model):
    value: float | None
    ci: list[float] | None
    n: int
    judge: str


class TableRow(Model):
    model: str
    cells: dict[str, TableCell | None]  # column key -> cell
    groups: dict[str, float]  # group -> mean of its benchmarks' values


class MainTable(Model):
    """Models as rows, (benchmark, target) as columns, then each group's mean."""

    columns: list[TableColumn]
    group_columns: list[str]
    rows: list[TableRow]
