"""Write a tis run from completions another harness made: no model call.

`write_imported_run` takes (sample, raw output) pairs, splits each output into thought and answer
with the reasoning splitter (a thought the harness kept in its own field wins, as a server's
`reasoning_content` does), stores samples and generations in the run store under content keys,
and writes results.jsonl / summary.json / manifest.json the way `tis eval` does. `tis judge RUN`
then judges the run, and `tis report` / `tis compare` read it like any other.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError, DataError
from tis.core.types import Generation, GenerationRecord, ImagePart, ModelOutput, Sample, Usage, content_hash


@dataclass
class ImportedCompletion:
    """One completion of one sample as another harness recorded it."""

    sample: Sample
    sample_index: int = 0
    text: str = ""
    reasoning: str | None = None  # the thought the harness kept apart (inspect_ai's ContentReasoning)
    finish_reason: str | None = None
    usage: Usage | None = None
    error: str | None = None  # the harness's error for this completion: stored as a failed generation
    latency_s: float | None = None


def set_aside(path: Path, record: str, why: Exception | str, *, skip_bad: bool, problems: list | None,
              what: str = "records") -> None:
    """A record of an imported file that cannot become a completion: a DataError naming the file and
    the record, or, with `skip_bad`, a Problem added to `problems` (counted, never dropped silently)."""
    from tis.sources.base import Problem

    if not skip_bad:
        raise DataError(f"{path}: {record}: {why} (pass --skip-bad to skip such {what} and count them)") from None
    if problems is not None:
        problems.append(Problem(file=str(path), record=record, message=str(why)))


@dataclass
class ImportOutcome:
    run_dir: Path
    samples: int
    completions: int
    failed: int
    with_thought: int
    split_sources: dict[str, int]
    problems: list = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"


class ImageCache:
    """Hashes each image file once and checks that it opens; the reason a file is unusable otherwise."""

    def __init__(self) -> None:
        self._seen: dict[str, ImagePart | str] = {}

    def part(self, path: str) -> ImagePart | str:
        if path not in self._seen:
            self._seen[path] = self._check(path)
        return self._seen[path]

    @staticmethod
    def _check(path: str) -> ImagePart | str:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.verify()
            return ImagePart(path=path).with_hash()
        except FileNotFoundError:
            return f"image file {path} is missing"
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            return f"image file {path} does not open ({type(exc).__name__}: {exc})"


def write_imported_run(run_dir: str | Path, completions: Iterable[ImportedCompletion], *, model: str,
                       benchmark: str, group: str = "custom", thought_format: str = "auto",
                       source: dict[str, Any], problems: list | None = None,
                       generation: dict[str, Any] | None = None) -> ImportOutcome:
    """Store `completions` as a tis run in `run_dir` (which must not hold a run yet).

    `source` describes where they came from (kind, file, ...) and goes into the manifest; it also
    keys the generations, so two imports of different logs never share a generation key.
    """
    import tis
    from tis.models.base import GenerationParams
    from tis.pipeline.runner import RunStats
    from tis.pipeline.store import RunLock, RunStore, generation_key, write_manifest
    from tis.reasoning.formats import get_format, split_output
    from tis.results.outputs import collect_results, write_outputs

    fmt = get_format(thought_format)  # an unknown format is a usage error before anything is written
    run_dir = Path(run_dir)
    if (run_dir / "manifest.json").exists():  # before reading anything (checked again under the lock)
        raise ConfigError(f"{run_dir} already holds a run: import into a new folder (--name or --out)")
    problems = problems if problems is not None else []

    samples: dict[str, Sample] = {}
    records: list[GenerationRecord] = []
    keys: dict[str, list[str | None]] = {}
    identity = {"imported": source.get("kind"), "model": model, "source": source.get("id") or source.get("file")}
    splits: dict[str, int] = {}
    failed = with_thought = 0
    for c in completions:
        s = c.sample
        known = samples.get(s.id)
        if known is None:
            samples[s.id] = s
        elif known.content != s.content or known.system != s.system:
            raise DataError(f"{source.get('file')}: sample {s.id}: two completions of this id have different "
                            "prompts; give each prompt its own id")
        if c.sample_index < 0:
            raise DataError(f"{source.get('file')}: sample {s.id}: negative completion index {c.sample_index}")
        slots = keys.setdefault(s.id, [])
        slots.extend([None] * (c.sample_index + 1 - len(slots)))
        if slots[c.sample_index] is not None:
            raise DataError(f"{source.get('file')}: sample {s.id} has completion {c.sample_index} twice")
        key = generation_key(identity, s, {}, c.sample_index)
        slots[c.sample_index] = key
        if c.error is not None:
            g = Generation(raw=c.text, reasoning_field=c.reasoning, status="failed", error=c.error,
                           finish_reason=c.finish_reason, usage=c.usage, latency_s=c.latency_s)
            failed += 1
        else:
            sp = split_output(ModelOutput(text=c.text, reasoning=c.reasoning, finish_reason=c.finish_reason,
                                          usage=c.usage), fmt)
            g = Generation(raw=c.text, reasoning_field=c.reasoning, thought=sp.thought, answer=sp.answer,
                           split_source=sp.source, finish_reason=c.finish_reason, truncated=sp.truncated,
                           usage=c.usage, latency_s=c.latency_s)
            splits[sp.source] = splits.get(sp.source, 0) + 1
            with_thought += bool(sp.thought)
        records.append(GenerationRecord(key=key, sample_id=s.id, sample_index=c.sample_index, generation=g))
    if not records:
        raise DataError(f"{source.get('file')}: no completions to import")
    gaps = [sid for sid, ks in keys.items() if any(k is None for k in ks)]
    if gaps:
        raise DataError(f"{source.get('file')}: sample {gaps[0]} lacks some completions (indices must run 0, 1, ...)")

    n = max(len(ks) for ks in keys.values())
    params = GenerationParams(**{**(generation or {}), "n": n})
    selection = {sid: [k for k in ks if k is not None] for sid, ks in keys.items()}
    lock = RunLock(run_dir).acquire()  # no other tis process writes here meanwhile
    store = None
    try:
        if (run_dir / "manifest.json").exists():
            raise ConfigError(f"{run_dir} already holds a run: import into a new folder (--name or --out)")
        store = RunStore(run_dir)
        store.put_samples(samples.values())
        store.db.execute("BEGIN")  # one commit for all generations, not one per record
        try:
            for r in records:
                store.put_generation(r)
        except BaseException:
            store.db.execute("ROLLBACK")
            raise
        store.db.execute("COMMIT")
        store.set_selection(selection)
        manifest = {
            "tis_version": tis.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv) if Path(sys.argv[0]).name == "tis" else None,
            "model": {"spec": model, "name": model, "imported": True},
            "benchmark": {"name": benchmark, "group": group, "data": source.get("file"), "options": {}},
            "judges": [],
            "generation": params.model_dump(),
            "thought_format": fmt.name,
            "thought_format_spec": fmt.model_dump(mode="json"),
            "profile": None,
            "base_profile": None,
            "selection": {"limit": None, "sample": None, "sample_seed": None, "samples": len(samples),
                          "skipped_bad": len(problems)},
            "import": source,
        }
        write_manifest(run_dir, manifest)
        stats = RunStats(generations_total=len(records), generations_reused=len(records), failed=failed,
                         truncated=sum(r.generation.truncated for r in records))
        results = collect_results(store, selection, list(samples.values()), [])
        summary, markdown = write_outputs(run_dir, results, manifest, stats, problems)
        manifest["stats"] = stats.as_dict()
        write_manifest(run_dir, manifest)
    except OSError as exc:
        raise ConfigError(f"cannot write the run in {run_dir}: {exc.strerror or exc}") from None
    finally:
        if store is not None:
            store.close()
        lock.release()
    return ImportOutcome(run_dir=run_dir, samples=len(samples), completions=len(records), failed=failed,
                         with_thought=with_thought, split_sources=splits, problems=problems, summary=summary,
                         markdown=markdown)


def default_run_name(benchmark: str, model: str, source: dict[str, Any]) -> str:
    model_part = safe_name(model.split(":", 1)[-1].rstrip("/").split("/")[-1] or model)
    return f"{safe_name(benchmark)}-{model_part}-{content_hash(source)[:8]}"
