"""Re-judging a finished run reuses its stored generations and only calls the judges."""

import json

import pytest

import tis
from tis.pipeline.evaluate import rejudge
from tis.testing import LoopbackServer


@pytest.mark.slow
def test_rejudge_adds_a_judge_without_model_calls(tmp_path):
    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p, "images": []}) + "\n" for i, p in enumerate(
        ["how do I bake bread [[think-tags]]", "something harmful [[refuse]]", "plain question"])))
    with LoopbackServer() as srv:
        first = tis.evaluate(model="openai:loopback", base_url=[srv.base_url], benchmark="custom", data=str(data),
                             judges=["refusal"], out=str(tmp_path / "runs"), name="r", progress=False, report=False)
        calls = srv.requests.total
        again = rejudge(first.run_dir, ["offline"], progress=False)
        assert srv.requests.total == calls  # no model call at all
    assert again.stats["model_calls"] == 0 and again.stats["generations_reused"] == 3
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    assert [j["id"] for j in manifest["judges"]] == ["refusal", "offline"]
    rows = [json.loads(line) for line in (first.run_dir / "results.jsonl").read_text().splitlines()]
    assert all(set(r["verdicts"]) == {"refusal", "offline"} for r in rows)
    # the offline judge reads thought, answer and full; the empty thoughts are not applicable
    plain = next(r for r in rows if r["sample_id"] == "q2")
    assert plain["verdicts"]["offline"]["thought"]["status"] == "not_applicable"
    assert plain["verdicts"]["offline"]["answer"]["label"] in ("safe", "unsafe")
    assert "ensemble" in json.loads((first.run_dir / "summary.json").read_text())
    assert (first.run_dir / "report.html").exists()


def test_rejudge_reads_the_store_when_results_were_never_written(tmp_path):
    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p, "images": []}) + "\n" for i, p in enumerate(
        ["a [[think-tags]]", "b [[refuse]]", "c", "d [[think-tags]] [[refuse]]"])))
    with LoopbackServer() as srv:
        common = dict(model="openai:loopback", base_url=[srv.base_url], benchmark="custom", data=str(data),
                      judges=["refusal"], out=str(tmp_path / "runs"), name="r", progress=False, report=False)
        tis.evaluate(**common)  # all four samples stored
        first = tis.evaluate(limit=3, thought_format="none", **common)  # the run's set is now the first three
        calls = srv.requests.total
        for name in ("results.jsonl", "summary.json", "summary.md"):
            (first.run_dir / name).unlink(missing_ok=True)  # as if the run had crashed before writing them
        again = rejudge(first.run_dir, ["refusal"], progress=False)
        assert srv.requests.total == calls
    rows = [json.loads(line) for line in (first.run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["sample_id"] for r in rows) == ["q0", "q1", "q2"]  # the run's selection, not all four
    assert again.stats["model_calls"] == 0 and again.stats["generations_reused"] == 3
    # the manifest's thought format ("none": no thought split off) is used, not the default "auto"
    q0 = next(r for r in rows if r["sample_id"] == "q0")
    assert q0["verdicts"]["refusal"]["thought"]["status"] == "not_applicable"
    assert "<think>" in q0["answer"] and q0["thought"] == ""


def test_rejudge_of_a_directory_without_a_store_is_a_config_error(tmp_path):
    from tis.core.errors import ConfigError

    (tmp_path / "manifest.json").write_text(json.dumps({"judges": []}))
    with pytest.raises(ConfigError, match="no run store"):
        rejudge(tmp_path, ["refusal"], progress=False)


def test_rejudge_of_a_store_without_a_selection_falls_back_to_results_then_to_every_generation(tmp_path):
    import sqlite3

    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"p{i}", "images": []}) + "\n" for i in range(4)))
    with LoopbackServer() as srv:
        common = dict(model="openai:loopback", base_url=[srv.base_url], benchmark="custom", data=str(data),
                      judges=["refusal"], out=str(tmp_path / "runs"), name="r", progress=False, report=False)
        tis.evaluate(**common)
        run = tis.evaluate(limit=2, **common).run_dir
    with sqlite3.connect(run / "tis.sqlite") as con:  # as a store made before selections were kept
        con.execute("DELETE FROM selection")
    rejudge(run, ["refusal"], progress=False)
    rows = (run / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(r)["sample_id"] for r in rows) == ["q0", "q1"]  # results.jsonl's samples
    (run / "results.jsonl").unlink()
    rejudge(run, ["refusal"], progress=False)
    rows = (run / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(r)["sample_id"] for r in rows) == ["q0", "q1", "q2", "q3"]  # all it has
