"""A run read back from its directory: the manifest, one typed row per completion, and its summary.

`load_run(dir)` reads `manifest.json` and `results.jsonl`; a run that stopped before writing
results.jsonl (killed, crashed) is read from its store instead: the completions of the run's sample
selection with the latest verdict of each of its judges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tis.core.errors import DataError, TisError
from tis.results.schema import Manifest, ResultRow, Summary


@dataclass
class Run:
    dir: Path
    manifest: Manifest
    rows: list[ResultRow] = field(repr=False)
    label: str = ""
    #: where the rows came from: "results.jsonl" or "store" (a run that never wrote its results)
    source: str = "results.jsonl"

    @property
    def model(self) -> str:
        return self.manifest.model_name

    @property
    def benchmarks(self) -> list[str]:
        return sorted({r.benchmark for r in self.rows})

    @property
    def judges(self) -> list[str]:
        """Judge ids in the manifest's order: the first is the primary judge."""
        return self.manifest.judge_ids

    @property
    def groups(self) -> dict[str, str]:
        bench = self.manifest.benchmark
        return {bench.name: bench.group} if bench.group else {}

    @cached_property
    def scored(self):
        from tis.results.metrics import score

        return score(self.rows, self.groups, self.judges, {self.manifest.benchmark.name: self.manifest.benchmark})

    @cached_property
    def summary(self) -> Summary:
        """The run's summary, computed from its rows exactly as `tis eval` writes summary.json."""
        from tis.results.metrics import summarize_scored
        from tis.results.outputs import build_summary

        return build_summary(self.rows, self.manifest, self.manifest.stats,
                             benchmarks={bench: summarize_scored(sc) for bench, sc in self.scored.items()})


def read_manifest_file(path: Path) -> Manifest:
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        raise TisError(f"{path} is not a tis run directory (no manifest.json): pass a folder written by `tis eval`")
    try:
        data = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{manifest_file} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise DataError(f"cannot read {manifest_file}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{manifest_file} is not a JSON object")
    try:
        return Manifest.model_validate(data)
    except (ValidationError, TisError) as exc:
        raise DataError(f"{manifest_file}: {_first_error(exc)}") from None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(str(x) for x in e['loc']) or 'manifest'}: {e['msg']}"
    return str(exc)


def read_results_file(results_file: Path) -> list[ResultRow]:
    rows = []
    with results_file.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{results_file}: line {n} is not valid JSON ({exc})") from None
            if not isinstance(data, dict):
                raise DataError(f"{results_file}: line {n} is not a JSON object")
            missing = [k for k in ("sample_id", "benchmark", "sample_index") if k not in data]
            if missing:
                raise DataError(f"{results_file}: line {n} lacks {', '.join(missing)}")
            try:
                rows.append(ResultRow.model_validate(data))
            except ValidationError as exc:
                raise DataError(f"{results_file}: line {n}: {_first_error(exc)}") from None
    return rows


def rows_from_store(run_dir: Path, manifest: Manifest) -> list[ResultRow] | None:
    """The run's completions read from its store (None when it has no store or no recorded selection)."""
    from tis.core.types import Verdict
    from tis.pipeline.store import DB_NAME, RunStore
    from tis.results.schema import ImageRef, RowVerdict

    if not (run_dir / DB_NAME).is_file():
        return None
    with RunStore(run_dir) as store:
        selection = store.selection() if hasattr(store, "selection") else None
        if not selection:
            return None
        samples = store.samples()
        keys = [k for ks in selection.values() for k in ks]
        gens = store.generations(keys)
        wanted = set(manifest.judge_ids)
        latest: dict[tuple[str, str, str], tuple[float, Verdict]] = {}
        for gk, judge, target, js, created in store.db.execute(
                "SELECT generation_key, judge, target, json, created FROM verdicts"):
            if gk in gens and (not wanted or judge in wanted):
                if (gk, judge, target) not in latest or latest[(gk, judge, target)][0] <= created:
                    latest[(gk, judge, target)] = (created, Verdict.model_validate_json(js))
    by_gen: dict[str, dict[str, dict[str, RowVerdict]]] = {}
    for (gk, judge, target), (_, v) in sorted(latest.items()):
        by_gen.setdefault(gk, {}).setdefault(judge, {})[target] = RowVerdict(
            **v.model_dump(exclude={"judge", "target"}))
    rows = []
    for sid, ks in selection.items():
        s = samples.get(sid)
        for idx, key in enumerate(ks):
            rec = gens.get(key)
            if s is None or rec is None:
                continue  # not generated before the run stopped
            g = rec.generation
            rows.append(ResultRow(
                sample_id=s.id, benchmark=s.benchmark, category=s.category, group=s.group, sample_index=idx,
                generation_key=key, prompt=s.text, images=[ImageRef(path=im.path, sha256=im.sha256) for im in s.images],
                status=g.status, error=g.error, thought=g.thought, answer=g.answer, split_source=g.split_source,
                truncated=g.truncated, finish_reason=g.finish_reason, usage=g.usage, latency_s=g.latency_s,
                verdicts=by_gen.get(key, {}), meta=dict(s.meta)))
    return rows


def load_run(run_dir: str | Path) -> Run:
    """Read `run_dir` (written by `tis eval`). A folder that is not a run is a TisError naming it; a run
    that never wrote results.jsonl is read from its store."""
    path = Path(run_dir)
    if not path.is_dir():
        raise TisError(f"{path} is not a tis run directory (no such folder): pass a folder written by `tis eval`")
    manifest = read_manifest_file(path)
    results_file = path / "results.jsonl"
    if results_file.is_file():
        return Run(dir=path, manifest=manifest, rows=read_results_file(results_file))
    rows = rows_from_store(path, manifest)
    if rows is None:
        raise TisError(f"{path} has no results.jsonl and no stored selection: the run never started generating; "
                       "re-run the same `tis eval` command to resume it")
    return Run(dir=path, manifest=manifest, rows=rows, source="store")


def load_runs(run_dirs: list[str | Path]) -> list[Run]:
    """Load several runs and give each a short label, unique among them (the model, else the folder)."""
    runs = [load_run(d) for d in run_dirs]
    if not runs:
        raise TisError("no run directories given")
    seen: dict[Path, int] = {}
    for r in runs:
        key = r.dir.resolve()
        if key in seen:
            raise TisError(f"{r.dir} is given twice")
        seen[key] = 1
    # one label per model, unless two runs of the same model cover the same benchmark
    by_model: dict[str, list[Run]] = {}
    for r in runs:
        by_model.setdefault(r.model, []).append(r)
    for model, group in by_model.items():
        benches = [b for r in group for b in r.benchmarks]
        clash = len(benches) != len(set(benches))
        for r in group:
            r.label = r.dir.name if clash else model
    return runs


def stored_summary(run_dir: str | Path) -> Summary | None:
    """summary.json as written, typed (None when absent or of another schema version)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema_version") != Summary().schema_version:
        return None
    return Summary.model_validate(data)
