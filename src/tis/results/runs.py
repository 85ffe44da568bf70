"""A finished run read back from its directory: the manifest and one row per completion."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tis.core.errors import DataError, TisError


@dataclass
class Run:
    dir: Path
    manifest: dict[str, Any]
    rows: list[dict[str, Any]] = field(repr=False)
    label: str = ""

    @property
    def model(self) -> str:
        model = self.manifest.get("model") or {}
        return str(model.get("spec") or model.get("name") or "unknown model")

    @property
    def benchmarks(self) -> list[str]:
        return sorted({r["benchmark"] for r in self.rows})

    @property
    def judges(self) -> list[str]:
        """Judge ids in the manifest's order: the first is the primary judge."""
        return [j["id"] for j in self.manifest.get("judges") or [] if j.get("id")]

    @property
    def groups(self) -> dict[str, str]:
        bench = self.manifest.get("benchmark") or {}
        return {bench["name"]: bench["group"]} if bench.get("name") and bench.get("group") else {}

    @cached_property
    def scored(self):
        from tis.results.metrics import score

        return score(self.rows, self.groups, self.judges)

    @cached_property
    def summary(self) -> dict[str, Any]:
        from tis.results.metrics import summarize_scored

        return {bench: summarize_scored(sc) for bench, sc in self.scored.items()}


def load_run(run_dir: str | Path) -> Run:
    """Read `run_dir` (written by `tis eval`). A folder that is not a finished run is a TisError naming it."""
    path = Path(run_dir)
    if not path.is_dir():
        raise TisError(f"{path} is not a tis run directory (no such folder): pass a folder written by `tis eval`")
    manifest_file, results_file = path / "manifest.json", path / "results.jsonl"
    if not manifest_file.is_file():
        raise TisError(f"{path} is not a tis run directory (no manifest.json): pass a folder written by `tis eval`")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{manifest_file} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{manifest_file} is not a JSON object")
    if not results_file.is_file():
        raise TisError(f"{path} has no results.jsonl: the run never finished writing; re-run the same "
                       "`tis eval` command to resume it")
    rows = []
    with results_file.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{results_file}: line {n} is not valid JSON ({exc})") from None
            missing = [k for k in ("sample_id", "benchmark", "sample_index") if k not in row]
            if missing:
                raise DataError(f"{results_file}: line {n} lacks {', '.join(missing)}")
            rows.append(row)
    return Run(dir=path, manifest=manifest, rows=rows)


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
