import sqlite3

from tis.pipeline.store import RunStore, generation_key, verdict_key
from tis.core.types import Generation, GenerationRecord, ImagePart, Sample, TextPart, Verdict, VerdictRecord


def sample(text="q", sha="a" * 64):
    return Sample(id="s1", benchmark="b", content=(ImagePart(path="/x.png", sha256=sha), TextPart(text=text)))


def test_wal_mode_and_tables(tmp_path):
    with RunStore(tmp_path / "run") as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.put_samples([sample()])
        assert store.counts() == {"samples": 1, "images": 1, "generations": 0, "verdicts": 0}
        # the image is stored once, by hash, and the sample refers to it
        assert store.db.execute("SELECT sha256, path FROM images").fetchall() == [("a" * 64, "/x.png")]


def test_keys_depend_on_what_produced_the_output():
    base = generation_key({"model": "m"}, sample(), {"t": 0}, 0)
    assert base == generation_key({"model": "m"}, sample(), {"t": 0}, 0)
    assert base != generation_key({"model": "m2"}, sample(), {"t": 0}, 0)
    assert base != generation_key({"model": "m"}, sample(text="other"), {"t": 0}, 0)
    assert base != generation_key({"model": "m"}, sample(sha="b" * 64), {"t": 0}, 0)
    assert base != generation_key({"model": "m"}, sample(), {"t": 1}, 0)
    assert base != generation_key({"model": "m"}, sample(), {"t": 0}, 1)
    assert verdict_key(base, {"id": "j"}, "answer", "x") != verdict_key(base, {"id": "j"}, "thought", "x")


def test_ok_is_never_overwritten_and_failed_is_replaced(tmp_path):
    with RunStore(tmp_path) as store:
        ok = GenerationRecord(key="k", sample_id="s1", sample_index=0, generation=Generation(raw="hello"))
        failed = GenerationRecord(key="k", sample_id="s1", sample_index=0,
                                  generation=Generation(raw="", status="failed", error="500"))
        store.put_generation(failed)
        assert store.generations(["k"])["k"].generation.status == "failed"
        store.put_generation(ok)
        store.put_generation(failed)
        assert store.generations(["k"])["k"].generation.raw == "hello"
        v_failed = VerdictRecord(key="v", generation_key="k", sample_id="s1", sample_index=0,
                                 verdict=Verdict(judge="j", target="answer", status="failed"))
        v_ok = v_failed.model_copy(update={"verdict": Verdict(judge="j", target="answer", label="safe", safe=True)})
        store.put_verdict(v_failed)
        store.put_verdict(v_ok)
        store.put_verdict(v_failed)
        assert store.verdicts(["v"])["v"].verdict.label == "safe"


def test_records_survive_reopening(tmp_path):
    with RunStore(tmp_path) as store:
        store.put_generation(GenerationRecord(key="k", sample_id="s", sample_index=0, generation=Generation(raw="x")))
    # a second connection (another process) sees the committed row
    assert sqlite3.connect(tmp_path / "tis.sqlite").execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 1
    with RunStore(tmp_path) as store:
        assert list(store.generations()) == ["k"]


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE samples (sample_id TEXT PRIMARY KEY, benchmark TEXT NOT NULL, category TEXT, grp TEXT, json TEXT NOT NULL);
CREATE TABLE images (sha256 TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE generations (key TEXT PRIMARY KEY, sample_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
    status TEXT NOT NULL, json TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE verdicts (key TEXT PRIMARY KEY, generation_key TEXT NOT NULL, sample_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL, judge TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
    json TEXT NOT NULL, created REAL NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
"""


def test_a_schema_1_store_is_migrated_in_place_and_keeps_its_rows(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    g = Generation(raw="hi", answer="hi")
    v = Verdict(judge="refusal", target="answer", label="complied", safe=False)
    with sqlite3.connect(run / "tis.sqlite") as con:
        con.executescript(SCHEMA_1)
        con.execute("INSERT INTO generations VALUES ('g1','s1',0,'ok',?,0)", (g.model_dump_json(),))
        con.execute("INSERT INTO verdicts VALUES ('v1','g1','s1',0,'refusal','answer','ok',?,0)", (v.model_dump_json(),))
    with RunStore(run) as store:
        assert store.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "2"
        assert store.generations()["g1"].generation == g
        assert store.verdicts()["v1"].verdict == v
        assert store.stage_of("g1") == "generate" and store.stage_of("v1") == "judge"
        assert store.lineage("v1") == [("g1", "generate")]
        assert store.selection() is None  # the old store never recorded one
        # and it takes new records with lineage
        store.put_generation(GenerationRecord(key="g2", sample_id="s1", sample_index=1, generation=g),
                             stage="rewrite", parents=["g1"])
        assert store.lineage("g2") == [("g1", "generate")]
    with RunStore(run) as store:  # opening it again is not a second migration
        assert store.generations().keys() == {"g1", "g2"}


def test_the_selection_is_replaced_by_each_run(tmp_path):
    with RunStore(tmp_path) as store:
        store.set_selection({"a": ["k1", "k2"], "b": ["k3"]})
        assert store.selection() == {"a": ["k1", "k2"], "b": ["k3"]}
        store.set_selection({"b": ["k3"]})
        assert store.selection() == {"b": ["k3"]}


def test_a_failed_record_is_replaced_but_an_ok_one_is_not(tmp_path):
    with RunStore(tmp_path) as store:
        failed = Generation(raw="", status="failed", error="boom")
        ok = Generation(raw="yes", answer="yes")
        store.put_generation(GenerationRecord(key="k", sample_id="s", sample_index=0, generation=failed))
        store.put_generation(GenerationRecord(key="k", sample_id="s", sample_index=0, generation=ok))
        store.put_generation(GenerationRecord(key="k", sample_id="s", sample_index=0, generation=failed))
        assert store.generations()["k"].generation == ok


def test_run_lock_names_its_holder_and_is_free_again_once_released(tmp_path):
    import os

    import pytest

    from tis.core.errors import ConfigError
    from tis.pipeline.store import RunLock

    held = RunLock(tmp_path / "run", command="tis eval --base-url http://user:secret@host/v1").acquire()
    with pytest.raises(ConfigError, match=rf"in use by process {os.getpid()} on .* \(command: tis eval --base-url "
                                          rf"http://\*\*\*@host/v1\)"):
        RunLock(tmp_path / "run").acquire()
    assert "secret" not in (tmp_path / "run" / "tis.lock").read_text()
    held.release()
    with RunLock(tmp_path / "run"):
        pass


def test_writes_inside_an_event_loop_are_committed_shortly_after_and_across_loops(tmp_path):
    import asyncio

    def rows():
        with sqlite3.connect(tmp_path / "tis.sqlite") as con:  # another connection: what is committed
            return con.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    g = Generation(raw="x")

    async def write(start, then_wait):
        for i in range(start, start + 3):
            store.put_generation(GenerationRecord(key=f"k{i}", sample_id="s", sample_index=i, generation=g))
        await asyncio.sleep(then_wait)

    store = RunStore(tmp_path)
    asyncio.run(write(0, 0.2))
    assert rows() == 3  # committed by the loop, with no read and no close
    asyncio.run(write(3, 0.0))  # the loop ends before its commit was due
    asyncio.run(write(6, 0.2))  # a later loop commits what the first one left
    assert rows() == 9
    store.close()
