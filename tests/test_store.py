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
