"""A study's plan: every cell (a data build, an evaluation, a training run, an import) with its
settings, the cells it waits for and the model calls it costs. Pure computation, no model is loaded.

Evaluation cells: each model on each benchmark (its *plain* variant); each defence on each model it
applies to, on every benchmark; each fine-tuned model (model x training set) on the groups its
training entry names. A model's label in tables: `NAME` (plain), `NAME+DEFENCE`, `NAME@SET`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tis.core.types import content_hash
from tis.study.spec import (GROUP_TITLES, BenchmarkEntry, DefenceEntry, ModelEntry, StudyFile, defences_of)

_SAFE = re.compile(r"[^A-Za-z0-9._+@-]+")


def safe(text: str) -> str:
    return _SAFE.sub("-", text).strip("-") or "x"


@dataclass
class Cell:
    id: str
    kind: str  # build | eval | train | import
    #: the cells whose output this one needs
    needs: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    #: the fingerprints of the cells it needs: a retrained model's evaluations run again
    upstream: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        what: dict[str, Any] = {"kind": self.kind, "settings": self.settings}
        if self.upstream:
            what["upstream"] = self.upstream
        return content_hash(what)[:16]


@dataclass
class EvalCell(Cell):
    model: str = ""  # the model entry's name
    variant: str = "plain"  # plain | defence name | training set name
    variant_kind: str = "plain"  # plain | defence | trained
    label: str = ""  # the row's name in tables
    group: str = ""
    benchmark: str = ""  # the benchmark entry's key
    run_dir: Path = Path()
    model_calls: int | None = None  # None: the set's size is only known once it is read


@dataclass
class TrainCell(Cell):
    model: str = ""
    set: str = ""
    out: Path = Path()


@dataclass
class BuildCell(Cell):
    name: str = ""
    out: Path = Path()


@dataclass
class ImportCell(Cell):
    name: str = ""
    label: str = ""
    run_dir: Path = Path()


@dataclass
class Plan:
    study: StudyFile
    study_file: Path
    out: Path
    cells: list[Cell]
    #: model entry name -> its base's name (the collapse pairs)
    pairs: list[tuple[str, str]]
    #: benchmark key -> group
    groups: dict[str, str]

    @property
    def evals(self) -> list[EvalCell]:
        return [c for c in self.cells if isinstance(c, EvalCell)]

    @property
    def trainings(self) -> list[TrainCell]:
        return [c for c in self.cells if isinstance(c, TrainCell)]

    @property
    def builds(self) -> list[BuildCell]:
        return [c for c in self.cells if isinstance(c, BuildCell)]

    @property
    def imports(self) -> list[ImportCell]:
        return [c for c in self.cells if isinstance(c, ImportCell)]

    def model_calls(self) -> tuple[int, int]:
        """(known model calls, evaluation cells whose size is unknown until their data is read)."""
        known = sum(c.model_calls or 0 for c in self.evals)
        return known, sum(1 for c in self.evals if c.model_calls is None)

    def cell(self, cell_id: str) -> Cell:
        return next(c for c in self.cells if c.id == cell_id)


# --- models ------------------------------------------------------------------------------------------

def _profile(name: str | None):
    if not name:
        return None
    from tis.reasoning.profiles import get_profile

    return get_profile(name)


def model_spec(m: ModelEntry) -> str:
    if m.model:
        return m.model
    profile = _profile(m.profile)
    assert profile is not None and profile.hf_id  # checked when the file was read
    return f"openai:{profile.hf_id}" if m.base_url else f"hf:{profile.hf_id}"


def train_source(m: ModelEntry) -> str:
    """The weights a training run starts from: demo, a local folder, or a hub id in the cache."""
    if m.weights:
        return m.weights
    spec = model_spec(m)
    kind, _, arg = spec.partition(":")
    if kind == "demo":
        return "demo"
    if kind in ("hf", "vllm") and arg:
        return arg
    profile = _profile(m.profile)
    if profile and profile.hf_id:
        return profile.hf_id
    return arg or spec


def thought_kind(m: ModelEntry) -> str:
    """tags (a <think> family), other (another thought format), none (no thought)."""
    profile = _profile(m.profile)
    fmt_name = m.eval.get("thought_format") or (profile.thought_format if profile else None)
    if fmt_name is None or fmt_name == "auto":
        return "none"  # nothing says the model thinks
    from tis.reasoning.formats import get_format

    fmt = get_format(fmt_name)
    if fmt.kind == "none":
        return "none"
    return "tags" if fmt.kind in ("tags", "prefilled") and fmt.open.strip().lower() == "<think>" else "other"


def defence_applies(d: DefenceEntry, m: ModelEntry) -> bool:
    kind = thought_kind(m)
    if d.applies_to == "reasoning" and kind == "none":
        return False
    if d.needs == "think_tags":
        return kind == "tags"
    if d.needs == "no_thinking":
        return m.no_thinking if m.no_thinking is not None else kind == "tags"
    return True


def _size(b: BenchmarkEntry) -> int | None:
    counts = [n for n in (b.limit, b.sample) if n]
    size: int | None = None
    try:
        from tis.sources import BENCHMARKS

        size = getattr(BENCHMARKS.load(b.benchmark), "size", None)
    except Exception:  # a plugin that does not import: counted as unknown here, reported when run
        size = None
    if counts:
        return min(counts + ([size] if size else []))
    return size


def _resolve(base: Path, value: str | None) -> str | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


# --- the plan ---------------------------------------------------------------------------------------

def make_plan(study: StudyFile, study_file: Path, *, out: str | Path | None = None) -> Plan:
    here = study_file.resolve().parent
    root = Path(out) if out is not None else Path(study.out) if study.out else Path("runs") / f"study-{study.name}"
    cells: list[Cell] = []
    models = {m.name: m for m in study.models}
    benches = study.benchmarks.items()
    groups = {b.key: GROUP_TITLES[g] for g, b in benches}
    defences = defences_of(study)
    sizes = {b.key: _size(b) for _, b in benches}

    for b in study.data_builds:
        config = b.config if isinstance(b.config, dict) else {"file": _resolve(here, b.config)}
        cells.append(BuildCell(id=f"build:{b.name}", kind="build", name=b.name, out=root / "data" / safe(b.name),
                               settings={"config": config}))

    def eval_cell(m: ModelEntry, g: str, b: BenchmarkEntry, *, variant: str, variant_kind: str, label: str,
                  extra: dict[str, Any], needs: list[str] | None = None) -> EvalCell:
        judges = b.judges or (["reference"] if g == "capability" else study.judges)
        n = int({**study.defaults, **m.eval}.get("n", 1))
        settings = {**study.defaults, **m.eval, "model": model_spec(m), "benchmark": b.benchmark,
                    "data": _resolve(here, b.data), "options": b.options, "limit": b.limit, "sample": b.sample,
                    "judges": judges, "profile": m.profile, "base_url": m.base_url, "api_key_env": m.api_key_env,
                    **extra}
        run_dir = root / "runs" / safe(label) / safe(b.key)
        size = sizes[b.key]
        return EvalCell(id=f"eval:{label}:{b.key}", kind="eval", needs=needs or [], settings=settings, model=m.name,
                        variant=variant, variant_kind=variant_kind, label=label, group=GROUP_TITLES[g],
                        benchmark=b.key, run_dir=run_dir, model_calls=None if size is None else size * n)

    for m in study.models:
        for g, b in benches:
            cells.append(eval_cell(m, g, b, variant="plain", variant_kind="plain", label=m.name, extra={}))
    for d in defences:
        for m in study.models:
            if not defence_applies(d, m):
                continue
            for g, b in benches:
                extra = {"system_prompt": d.system_prompt, "thought_prefill": d.thought_prefill}
                cells.append(eval_cell(m, g, b, variant=d.name, variant_kind="defence", label=f"{m.name}+{d.name}",
                                       extra=extra))
    sets = {s.name: s for s in study.training_sets}
    for t in study.training:
        for mname in t.models:
            m = models[mname]
            for sname in t.sets:
                s = sets[sname]
                label = f"{m.name}@{s.name}"
                tout = root / "train" / safe(label)
                if s.build:
                    data: list[str] = [str(root / "data" / safe(s.build) / "export")]
                    needs = [f"build:{s.build}"]
                elif s.shipped:
                    data, needs = [str(root / "data" / safe(s.shipped) / "train_data_sample.json")], []
                else:
                    data, needs = [str(_resolve(here, d)) for d in s.data], []
                tc = TrainCell(id=f"train:{label}", kind="train", needs=needs, model=m.name, set=s.name, out=tout,
                               settings={"config": {**t.config, "model": train_source(m), "data": data,
                                                    "out": str(tout)},
                                         "shipped": s.shipped, "stand_in_images": s.stand_in_images})
                if s.build:
                    tc.upstream = [c.fingerprint for c in cells if c.id == f"build:{s.build}"]
                cells.append(tc)
                trained = m.model_copy(update={"model": f"hf:{tout}", "base_url": [], "api_key_env": None})
                for g, b in benches:
                    if g not in t.groups:
                        continue
                    ec = eval_cell(trained, g, b, variant=s.name, variant_kind="trained", label=label, extra={},
                                   needs=[tc.id])
                    ec.upstream = [tc.fingerprint]
                    cells.append(ec)
    for imp in study.imports:
        label = imp.model
        cells.append(ImportCell(id=f"import:{label}:{imp.name}", kind="import", name=imp.name, label=label,
                                run_dir=root / "runs" / safe(label) / safe(imp.name),
                                settings={"format": imp.format, "file": _resolve(here, imp.file),
                                          "scoring": imp.scoring}))
        groups[imp.name] = "capability"

    pairs = []
    for m in study.models:
        base = m.base
        if base is None and m.profile:
            prof = _profile(m.profile)
            if prof and prof.base:
                base = next((o.name for o in study.models if o.profile and o.name != m.name and
                             _profile(o.profile).name == _profile(prof.base).name), None)
        if base:
            pairs.append((m.name, base))
    return Plan(study=study, study_file=study_file, out=root, cells=cells, pairs=pairs, groups=groups)
