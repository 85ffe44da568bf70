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
