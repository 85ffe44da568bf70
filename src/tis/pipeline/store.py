"""The run store: one SQLite database (WAL) per run directory, content-addressed.

Generations are keyed by a hash of what produced them (model identity, messages with image
hashes, generation parameters, sample index); verdicts by a hash of the generation key, the judge's
identity, the target and the judged text. Every record is committed as soon as it exists (those
finished in the same turn of the event loop share one transaction), so a killed run loses at most
the calls in flight, and a re-run finds its work already done.

A stored `ok` record is never overwritten; a `failed` one is replaced when a retry succeeds.

Lineage (schema 2): every generation and verdict carries the `stage` that made it, and the
`lineage` table lists the keys each record was made from (a teacher's question from its caption),
so a multi-stage build can be resumed and explained; a verdict's first parent is the generation
it judged (its `generation_key` column, not repeated in `lineage`).
A store of schema 1 is migrated in place when opened (its rows get stage "generate" / "judge").

`selection` lists the generation keys of the run's current sample set, in order, written before
any model call: re-judging reads it, so a run that stopped before writing results.jsonl can still
be re-judged. `RunLock` keeps two processes from running in one directory at once.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tis.core.errors import ConfigError, TisError
from tis.core.types import Generation, GenerationRecord, Sample, Verdict, VerdictRecord

SCHEMA_VERSION = 2
LOCK_NAME = "tis.lock"
DB_NAME = "tis.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    sample_id TEXT PRIMARY KEY, benchmark TEXT NOT NULL, category TEXT, grp TEXT,
    json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (sha256 TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY, sample_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
    status TEXT NOT NULL, json TEXT NOT NULL, created REAL NOT NULL, stage TEXT NOT NULL DEFAULT 'generate');
CREATE INDEX IF NOT EXISTS generations_sample ON generations (sample_id, sample_index);
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY, generation_key TEXT NOT NULL, sample_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL, judge TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, json TEXT NOT NULL, created REAL NOT NULL, stage TEXT NOT NULL DEFAULT 'judge');
CREATE INDEX IF NOT EXISTS verdicts_generation ON verdicts (generation_key);
"""

# added in schema 2 (created for new stores and by the migration from schema 1)
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS lineage (
    key TEXT NOT NULL, parent TEXT NOT NULL, stage TEXT NOT NULL, PRIMARY KEY (key, parent));
CREATE INDEX IF NOT EXISTS lineage_parent ON lineage (parent);
CREATE TABLE IF NOT EXISTS selection (
    position INTEGER PRIMARY KEY, sample_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
    generation_key TEXT NOT NULL);
"""


def trusted_constructor(cls):
    """`cls.model_construct(**values)` for values that are already valid and name every field, without
    its per-call work (defaults, aliases and private attributes looked up again for every record): the
    instance gets the same `__dict__`, fields set, extra and private attributes as model_construct
    gives it. For rows read back by the thousand (records from the store, results rows)."""
    probe = cls.model_construct()
    extra, private = probe.__pydantic_extra__, probe.__pydantic_private__
    new, set_ = object.__new__, object.__setattr__

    def make(values: dict):
        obj = new(cls)
        set_(obj, "__dict__", values)
        set_(obj, "__pydantic_fields_set__", set(values))
        set_(obj, "__pydantic_extra__", None if extra is None else dict(extra))
        set_(obj, "__pydantic_private__", None if private is None else dict(private))
        return obj

    return make


_generation_record = trusted_constructor(GenerationRecord)
_verdict_record = trusted_constructor(VerdictRecord)


def _validate_all(model, texts: list[str]) -> list:
    """Stored JSON documents of one model validated in one call (a JSON array of them)."""
    from pydantic import TypeAdapter

    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(list[model])
    return adapter.validate_json("[" + ",".join(texts) + "]") if texts else []


_ADAPTERS: dict = {}


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
            version = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is None:
                self.db.executescript(_SCHEMA_2)
                self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(version[0]) == 1:
                self._migrate_1_to_2()
            elif int(version[0]) != SCHEMA_VERSION:
                raise TisError(f"{self.path} has store schema {version[0]}; this tis reads {SCHEMA_VERSION}")
        except (OSError, sqlite3.DatabaseError) as exc:
            raise TisError(f"cannot open the run store in {self.run_dir}: {exc}") from None
        self._pending: list[tuple[str, tuple]] = []  # writes waiting for their commit
        self._flush_loop = None  # the event loop a flush is scheduled in

    # writes: committed at the next turn of the event loop ---------------------------------------------
    def _write(self, sql: str, params: tuple) -> None:
        """Queue a write. Inside a running event loop the writes queued in one turn of the loop are
        committed together at the start of the next (one transaction instead of one per row, and no
        finished call waits); outside a loop, at once."""
        import asyncio

        self._pending.append((sql, params))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_loop is not loop:  # none scheduled (or only in a loop that has ended)
            self._flush_loop = loop
            loop.call_soon(self.flush)  # no wait: a paid call is never left uncommitted

    def flush(self) -> None:
        """Commit every queued write in one transaction (reads call it first)."""
        self._flush_loop = None
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        # inside a caller's own transaction (BEGIN ... COMMIT around many puts) the rows join it
        with self._transaction() if not self.db.in_transaction else _joined():
            i = 0
            while i < len(pending):
                j = i
                while j < len(pending) and pending[j][0] == pending[i][0]:
                    j += 1
                self.db.executemany(pending[i][0], [params for _, params in pending[i:j]])
                i = j

    def _migrate_1_to_2(self) -> None:
        """Schema 1 -> 2: a stage on every row, the lineage and selection tables. Rows are kept."""
        with self._transaction():
            for table, stage in (("generations", "generate"), ("verdicts", "judge")):
                columns = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
                if "stage" not in columns:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN stage TEXT NOT NULL DEFAULT '{stage}'")
            for statement in _SCHEMA_2.strip().split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.flush()
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
        self.flush()
        with self._transaction():
            self.db.executemany(
                "INSERT INTO samples VALUES (?,?,?,?,?) ON CONFLICT(sample_id) DO UPDATE SET "
                "benchmark=excluded.benchmark, category=excluded.category, grp=excluded.grp, json=excluded.json",
                rows,
            )
            self.db.executemany("INSERT OR REPLACE INTO images VALUES (?,?)", images)

    def samples(self) -> dict[str, Sample]:
        self.flush()
        return {sid: Sample.model_validate_json(js) for sid, js in self.db.execute("SELECT sample_id, json FROM samples")}

    # generations --------------------------------------------------------------------------
    def put_generation(self, record: GenerationRecord, *, stage: str = "generate",
                       parents: Iterable[str] = ()) -> None:
        g = record.generation
        self._write(
            "INSERT INTO generations VALUES (?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
            "status=excluded.status, json=excluded.json, created=excluded.created, stage=excluded.stage "
            "WHERE generations.status != 'ok' OR excluded.status = 'ok'",
            (record.key, record.sample_id, record.sample_index, g.status, g.model_dump_json(), time.time(), stage),
        )
        self._put_lineage(record.key, parents, stage)

    def _put_lineage(self, key: str, parents: Iterable[str], stage: str) -> None:
        for p in dict.fromkeys(parents):
            self._write("INSERT OR IGNORE INTO lineage VALUES (?,?,?)", (key, p, stage))

    def stage_of(self, key: str) -> str | None:
        """The stage that made a stored generation or verdict."""
        self.flush()
        for table in ("generations", "verdicts"):
            row = self.db.execute(f"SELECT stage FROM {table} WHERE key=?", (key,)).fetchone()
            if row:
                return row[0]
        return None

    def lineage(self, key: str) -> list[tuple[str, str]]:
        """(key, stage) of every record `key` was made from, nearest first, up to the first stage."""
        self.flush()
        out, seen, frontier = [], {key}, [key]
        while frontier:
            nxt = []
            for k in frontier:
                for (parent,) in self.db.execute(
                        "SELECT generation_key FROM verdicts WHERE key=? UNION ALL "
                        "SELECT parent FROM (SELECT parent FROM lineage WHERE key=? ORDER BY rowid)", (k, k)):
                    if parent not in seen:
                        seen.add(parent)
                        out.append((parent, self.stage_of(parent) or "?"))
                        nxt.append(parent)
            frontier = nxt
        return out

    def children(self, key: str) -> list[tuple[str, str]]:
        """(key, stage) of every record made directly from `key`."""
        self.flush()
        return [(k, st) for k, st in self.db.execute(
            "SELECT key, stage FROM lineage WHERE parent=? UNION ALL SELECT key, stage FROM verdicts "
            "WHERE generation_key=?", (key, key))]

    def generations_of_stage(self, stage: str) -> dict[str, GenerationRecord]:
        self.flush()
        keys = [k for (k,) in self.db.execute("SELECT key FROM generations WHERE stage=?", (stage,))]
        return self.generations(keys)

    # the run's sample set -----------------------------------------------------------------
    def set_selection(self, keys: dict[str, list[str]]) -> None:
        """The generation keys of this run's samples (sample id -> key per sample index), in order."""
        rows, pos = [], 0
        for sid, ks in keys.items():
            for idx, key in enumerate(ks):
                rows.append((pos, sid, idx, key))
                pos += 1
        self.flush()
        with self._transaction():
            self.db.execute("DELETE FROM selection")
            self.db.executemany("INSERT INTO selection VALUES (?,?,?,?)", rows)

    def selection(self) -> dict[str, list[str]] | None:
        """The keys `set_selection` wrote (None for a store that has none, e.g. made before schema 2)."""
        self.flush()
        out: dict[str, list[str]] = {}
        for sid, key in self.db.execute("SELECT sample_id, generation_key FROM selection ORDER BY position"):
            out.setdefault(sid, []).append(key)
        return out or None

    def generations(self, keys: Iterable[str] | None = None) -> dict[str, GenerationRecord]:
        return {r.key: r for r in self._select_generations(keys)}

    def _select_generations(self, keys: Iterable[str] | None) -> Iterator[GenerationRecord]:
        query = "SELECT key, sample_id, sample_index, json FROM generations"
        for rows in self._chunked(query, keys):
            # read back from this store: the columns are what put_generation wrote
            for (key, sid, idx, _), g in zip(rows, _validate_all(Generation, [row[3] for row in rows])):
                yield _generation_record({"key": key, "sample_id": sid, "sample_index": idx, "generation": g})

    # verdicts -----------------------------------------------------------------------------
    def put_verdict(self, record: VerdictRecord, *, stage: str = "judge", parents: Iterable[str] = ()) -> None:
        v = record.verdict
        self._write(
            "INSERT INTO verdicts VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
            "status=excluded.status, json=excluded.json, created=excluded.created "
            "WHERE verdicts.status = 'failed'",
            (record.key, record.generation_key, record.sample_id, record.sample_index, v.judge, v.target,
             v.status, v.model_dump_json(), time.time(), stage),
        )
        # the judged generation is the verdict's own column, not repeated in lineage
        self._put_lineage(record.key, [p for p in parents if p != record.generation_key], stage)

    def verdicts(self, keys: Iterable[str] | None = None) -> dict[str, VerdictRecord]:
        query = "SELECT key, generation_key, sample_id, sample_index, json FROM verdicts"
        out = {}
        for rows in self._chunked(query, keys):
            for (key, gk, sid, idx, _), v in zip(rows, _validate_all(Verdict, [row[4] for row in rows])):
                out[key] = _verdict_record({"key": key, "generation_key": gk, "sample_id": sid, "sample_index": idx,
                                            "verdict": v})
        return out

    def done_verdict_keys(self) -> set[str]:
        """Keys of verdicts that need no new judging (failed ones are judged again)."""
        self.flush()
        return {k for (k,) in self.db.execute("SELECT key FROM verdicts WHERE status != 'failed'")}

    def counts(self) -> dict[str, int]:
        self.flush()
        return {
            table: self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("samples", "images", "generations", "verdicts")
        }

    # helpers ------------------------------------------------------------------------------
    def _chunked(self, query: str, keys: Iterable[str] | None) -> Iterator[list[tuple]]:
        self.flush()
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


class _joined:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


class RunLock:
    """An exclusive lock on a run directory for as long as one process works in it.

    `fcntl.flock` on `tis.lock` (released by the kernel when the process dies, even by SIGKILL, so
    a stale lock never blocks a resume). The holder's pid, host, command and start time are
    written in the file; a second process fails at once with a ConfigError that names them.
    """

    def __init__(self, run_dir: str | Path, command: str | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        import re

        command = command if command is not None else " ".join(sys.argv)
        self.command = re.sub(r"//[^/@\s]+@", "//***@", command)  # never a password from a URL
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot lock the run directory {self.run_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            try:
                info = json.loads(holder)
                who = (f"process {info.get('pid')} on {info.get('host')} since {info.get('started')} "
                       f"(command: {info.get('command') or '?'})")
            except (json.JSONDecodeError, AttributeError):
                who = "another process"
            raise ConfigError(f"the run directory {self.run_dir} is in use by {who}; wait for it to finish, "
                              f"or use another --name / --out") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


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
    if sample.prefill:  # left out when unset, so keys made before prefills existed still match
        return [sample.system, parts, {"prefill": sample.prefill}]
    return [sample.system, parts]


def generation_key(model_identity: dict, sample: Sample, params_identity: dict, sample_index: int) -> str:
    from tis.core.types import content_hash

    return content_hash({"model": model_identity, "messages": prompt_identity(sample),
                         "params": params_identity, "index": sample_index})


def verdict_key(generation_key_: str, judge_identity: dict, target: str, text: str) -> str:
    from tis.core.types import content_hash

    return content_hash({"generation": generation_key_, "judge": judge_identity, "target": target, "text": text})
