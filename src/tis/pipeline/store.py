"""The run store: one SQLite database (WAL) per run directory, content-addressed.

Generations are keyed by a hash of what produced them (model identity, messages with image
hashes, generation parameters, sample index); verdicts by a hash of the generation key, the judge's
identity, the target and the judged text. Every record is committed as soon as it exists, so a
killed run loses at most the calls in flight, and a re-run finds its work already done.

A stored `ok` record is never overwritten; a `failed` one is replaced when a retry succeeds.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tis.core.errors import TisError
from tis.core.types import Generation, GenerationRecord, Sample, Verdict, VerdictRecord

SCHEMA_VERSION = 1
DB_NAME = "tis.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    sample_id TEXT PRIMARY KEY, benchmark TEXT NOT NULL, category TEXT, grp TEXT,
    json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (sha256 TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY, sample_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
    status TEXT NOT NULL, json TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS generations_sample ON generations (sample_id, sample_index);
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY, generation_key TEXT NOT NULL, sample_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL, judge TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, json TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS verdicts_generation ON verdicts (generation_key);
"""


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.path = self.run_dir / DB_NAME
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=10000")
            self.db.executescript(_SCHEMA)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise TisError(f"cannot open the run store in {self.run_dir}: {exc}") from None
        version = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if version is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(version[0]) != SCHEMA_VERSION:
            raise TisError(f"{self.path} has store schema {version[0]}; this tis reads {SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # samples and images -------------------------------------------------------------------
    def put_samples(self, samples: Iterable[Sample]) -> None:
        rows, images = [], []
        for s in samples:
            rows.append((s.id, s.benchmark, s.category, s.group, s.model_dump_json()))
            images.extend((im.sha256, im.path) for im in s.images if im.sha256)
        with self._transaction():
            self.db.executemany(
                "INSERT INTO samples VALUES (?,?,?,?,?) ON CONFLICT(sample_id) DO UPDATE SET "
                "benchmark=excluded.benchmark, category=excluded.category, grp=excluded.grp, json=excluded.json",
                rows,
            )
            self.db.executemany("INSERT OR REPLACE INTO images VALUES (?,?)", images)

    def samples(self) -> dict[str, Sample]:
        return {sid: Sample.model_validate_json(js) for sid, js in self.db.execute("SELECT sample_id, json FROM samples")}

    # generations --------------------------------------------------------------------------
    def put_generation(self, record: GenerationRecord) -> None:
        g = record.generation
        self.db.execute(
            "INSERT INTO generations VALUES (?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
            "status=excluded.status, json=excluded.json, created=excluded.created "
            "WHERE generations.status != 'ok' OR excluded.status = 'ok'",
            (record.key, record.sample_id, record.sample_index, g.status, g.model_dump_json(), time.time()),
        )

    def generations(self, keys: Iterable[str] | None = None) -> dict[str, GenerationRecord]:
        return {r.key: r for r in self._select_generations(keys)}

    def _select_generations(self, keys: Iterable[str] | None) -> Iterator[GenerationRecord]:
        query = "SELECT key, sample_id, sample_index, json FROM generations"
        for rows in self._chunked(query, keys):
            for key, sid, idx, js in rows:
                yield GenerationRecord(key=key, sample_id=sid, sample_index=idx,
                                       generation=Generation.model_validate_json(js))

    # verdicts -----------------------------------------------------------------------------
    def put_verdict(self, record: VerdictRecord) -> None:
        v = record.verdict
        self.db.execute(
            "INSERT INTO verdicts VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
            "status=excluded.status, json=excluded.json, created=excluded.created "
            "WHERE verdicts.status = 'failed'",
            (record.key, record.generation_key, record.sample_id, record.sample_index, v.judge, v.target,
             v.status, v.model_dump_json(), time.time()),
        )

    def verdicts(self, keys: Iterable[str] | None = None) -> dict[str, VerdictRecord]:
        query = "SELECT key, generation_key, sample_id, sample_index, json FROM verdicts"
        out = {}
        for rows in self._chunked(query, keys):
            for key, gk, sid, idx, js in rows:
                out[key] = VerdictRecord(key=key, generation_key=gk, sample_id=sid, sample_index=idx,
                                         verdict=Verdict.model_validate_json(js))
        return out

    def done_verdict_keys(self) -> set[str]:
        """Keys of verdicts that need no new judging (failed ones are judged again)."""
        return {k for (k,) in self.db.execute("SELECT key FROM verdicts WHERE status != 'failed'")}

    def counts(self) -> dict[str, int]:
        return {
            table: self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("samples", "images", "generations", "verdicts")
        }

    # helpers ------------------------------------------------------------------------------
    def _chunked(self, query: str, keys: Iterable[str] | None) -> Iterator[list[tuple]]:
        if keys is None:
            yield self.db.execute(query).fetchall()
            return
        keys = list(keys)
        for i in range(0, len(keys), 500):  # stay under SQLite's bound-variable limit
            chunk = keys[i : i + 500]
            yield self.db.execute(f"{query} WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall()

    class _Tx:
        def __init__(self, db: sqlite3.Connection):
            self.db = db

        def __enter__(self):
            self.db.execute("BEGIN")

        def __exit__(self, exc_type, *_):
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _transaction(self) -> "RunStore._Tx":
        return RunStore._Tx(self.db)


def write_manifest(run_dir: Path, manifest: dict) -> None:
    path = run_dir / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
    tmp.replace(path)


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TisError(f"{run_dir} is not a tis run directory (no manifest.json)") from None
    except json.JSONDecodeError as exc:
        raise TisError(f"{path} is not valid JSON ({exc})") from None


def prompt_identity(sample: Sample) -> list:
    """The messages a model sees, with images as their hashes (never their pixels or paths)."""
    parts = [p.text if p.type == "text" else {"image": p.sha256} for p in sample.content]
    return [sample.system, parts]


def generation_key(model_identity: dict, sample: Sample, params_identity: dict, sample_index: int) -> str:
    from tis.core.types import content_hash

    return content_hash({"model": model_identity, "messages": prompt_identity(sample),
                         "params": params_identity, "index": sample_index})


def verdict_key(generation_key_: str, judge_identity: dict, target: str, text: str) -> str:
    from tis.core.types import content_hash

    return content_hash({"generation": generation_key_, "judge": judge_identity, "target": target, "text": text})
