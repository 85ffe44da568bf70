"""A whole study against the loopback server: plan, every cell a run, tables, report, re-run, failures."""

from __future__ import annotations

import csv
import json
import re

import pytest

from tis.study.runner import load_plan, plan_text, read_state, run_study
from tis.testing.openai_server import LoopbackServer

from study_helpers import responder


class Counted:
    """The scripted replies, with the model calls (judge calls apart) counted."""

    def __init__(self):
        self.model_calls = 0

    def __call__(self, body):
        if body["model"] != "judge":
            self.model_calls += 1
        return responder(body)


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(model_ids=("reasoner", "base", "judge"), responder=Counted()) as srv:
        yield srv


def calls(srv) -> int:
    return srv.responder.model_calls


def test_plan_counts_cells_and_model_calls(server, study_file, tmp_path):
    plan = load_plan(study_file(server.base_url), out=tmp_path / "out")
    # 2 models x 4 benchmarks plain; the system prompt on both models, the two prefills on the reasoner only
    assert len(plan.evals) == 2 * 4 + 2 * 4 + 2 * 4
    labels = {c.label for c in plan.evals}
    assert labels == {"reasoner", "base", "reasoner+safety_system_prompt", "base+safety_system_prompt",
                      "reasoner+thought_reminder", "reasoner+no_thinking"}
    assert plan.pairs == [("reasoner", "base")]
    text = plan_text(plan)
    # custom sets have no declared size: counted once read
    assert "24 evaluation cell(s)" in text and "0 training run(s)" in text
    assert calls(server) == 0  # planning calls no model


def test_study_end_to_end(server, study_file, tmp_path, capsys, tis_main):
    main = tis_main
    path = study_file(server.base_url)
    out = tmp_path / "out"
    before = calls(server)
    assert main(["study", "run", str(path), "--out", str(out), "--no-progress"]) == 0
    assert calls(server) - before == 24 * 6  # every cell: 6 samples, one call each
    state = read_state(out)
    assert len(state) == 24 and all(s["status"] == "done" for s in state.values())
    assert sum(s["generated"] for s in state.values()) == sum(s["model_calls"] for s in state.values()) == 24 * 6

    # the prefills reached the server as a continued assistant turn
    bodies = [b for b in server.bodies if b["messages"][-1]["role"] == "assistant"]
    assert any(b.get("continue_final_message") for b in bodies)

    # collapse: the reasoner complies where its base refuses: ASR up, flagged by McNemar
    rows = list(csv.reader((out / "tables" / "collapse.csv").open()))
    jb = next(r for r in rows if r[3] == "jb")
    assert jb[6] == "0.0%" and jb[7] == "100.0%"  # base, model
    assert float(jb[10]) < 0.05  # McNemar p over 6 flips
    cap = next(r for r in rows if r[3] == "cap")
    assert cap[2] == "capability" and cap[4].startswith("accuracy")
    assert cap[6] == "50.0%" and cap[7] == "100.0%"
    md = (out / "study.md").read_text()
    assert "Safety drops in most reasoning / base pairs**: holds" in md

    # mitigation: the defences lower the reasoner's ASR; the system prompt raises its refusals of benign prompts
    mit = list(csv.reader((out / "tables" / "mitigation.csv").open()))
    head = mit[0]
    row = {r[1]: dict(zip(head, r)) for r in mit[1:] if r[0] == "reasoner"}
    jb_col = next(h for h in head if h.startswith("jailbreak"))
    or_col = next(h for h in head if h.startswith("over-refusal"))
    assert row["plain"][jb_col] == "100.0%"
    assert row["safety_system_prompt (defence)"][jb_col] == "0.0%"
    assert row["thought_reminder (defence)"][jb_col] == "0.0%"
    assert row["safety_system_prompt (defence)"][or_col] == "100.0%"  # the trade-off is shown
    assert row["plain"][or_col] == "0.0%"

    # thought x answer: the plain reasoner collapses (unsafe thought and answer); the reminder makes both
    # safe; the system prompt leaves the thought unsafe and corrects the answer; no thinking has no thought
    mx = {(r[0], r[1]): r for r in csv.reader((out / "tables" / "thought-answer.csv").open())}
    assert mx[("reasoner", "jb")][2:] == ["6", "0", "0.0%", "0.0%", "0.0%", "100.0%"]
    assert mx[("reasoner+thought_reminder", "jb")][2:] == ["6", "0", "100.0%", "0.0%", "0.0%", "0.0%"]
    assert mx[("reasoner+safety_system_prompt", "jb")][5] == "100.0%"
    assert mx[("reasoner+no_thinking", "jb")][2:4] == ["0", "6"]
    thought = {(r[0], r[1]): r for r in csv.reader((out / "tables" / "thought-refusal.csv").open())}
    head = thought[("variant", "benchmark")]
    row = {k: dict(zip(head, r)) for k, r in thought.items()}
    assert row[("reasoner", "jb")]["thought closed"] == "100.0%"
    assert row[("reasoner+no_thinking", "jb")]["thought closed"] == "0.0%"
    assert row[("reasoner+no_thinking", "jb")]["Δ closed vs plain (points)"] == "-100.0"  # paired change
    assert row[("reasoner+no_thinking", "jb")]["thought opened"] == "0.0%"  # an empty thought is none
    assert row[("reasoner+safety_system_prompt", "jb")]["refusal rate (of answers)"] == "100.0%"
    assert row[("reasoner+safety_system_prompt", "jb")]["with an answer"] == "6 of 6"
    assert "The thought helps" in md
    # formats: markdown, LaTeX, CSV for every table
    for name in ("collapse", "mitigation", "mitigation-detail", "thought-answer", "thought-refusal"):
        for ext in ("md", "tex", "csv"):
            assert (out / "tables" / f"{name}.{ext}").stat().st_size > 0
    assert "\\begin{tabular}" in (out / "tables" / "collapse.tex").read_text()

    # one self-contained report with plots and links to every run's report
    html = (out / "report.html").read_text()
    assert "<script" not in html and "http://" not in html.replace(server.base_url, "")
    assert "defences &lt;b&gt;&amp;amp;&lt;/b&gt;" in html and "<b>&amp;</b>" not in html  # escaped
    assert html.count("<svg") >= 2
    links = re.findall(r'href="([^"]+)"', html)
    assert len(links) == 24 and all((out / link).is_file() for link in links)

    # a second run does nothing and calls nothing
    before = calls(server)
    assert main(["study", "run", str(path), "--out", str(out), "--no-progress"]) == 0
    assert calls(server) == before
    assert "0 cell(s) run" in capsys.readouterr().out


def test_adding_a_model_runs_only_its_cells(server, study_file, tmp_path):
    out = tmp_path / "out"
    path = study_file(server.base_url, defences=[])
    run_study(load_plan(path, out=out), progress=False)
    before = calls(server)
    import yaml

    data = yaml.safe_load(path.read_text())
    data["models"].append({"name": "other", "model": "openai:base", "base_url": [server.base_url],
                           "eval": {"temperature": 0.5}})
    path.write_text(yaml.safe_dump(data))
    outcome = run_study(load_plan(path, out=out), progress=False)
    assert sorted(outcome.ran) == sorted(f"eval:other:{b}" for b in ("jb", "aw", "or", "cap"))
    assert calls(server) - before == 4 * 6


def test_a_failed_cell_is_reported_and_the_others_run(server, study_file, tmp_path, capsys, tis_main):
    main = tis_main
    out = tmp_path / "out"
    path = study_file(server.base_url, defences=[])
    import yaml

    data = yaml.safe_load(path.read_text())
    data["models"].append({"name": "down", "model": "openai:base", "base_url": ["http://127.0.0.1:9/v1"]})
    path.write_text(yaml.safe_dump(data))
    code = main(["study", "run", str(path), "--out", str(out), "--no-progress"])
    assert code == 1
    state = read_state(out)
    failed = {k for k, v in state.items() if v["status"] == "failed"}
    assert failed == {f"eval:down:{b}" for b in ("jb", "aw", "or", "cap")}
    assert all(state[k]["error"] for k in failed)
    assert sum(v["status"] == "done" for v in state.values()) == 8
    printed = capsys.readouterr().out
    assert "eval:down:jb: failed" in printed
    assert (out / "report.html").is_file()


def test_imported_lmms_eval_and_vlmevalkit_results(server, study_file, tmp_path):
    lmms = tmp_path / "mmmu_samples.jsonl"
    lmms.write_text("".join(json.dumps({"doc_id": i, "doc": {"question": f"q{i}"}, "target": "B",
                                        "filtered_resps": [["(B)" if i < 3 else "(C)"]], "mmmu_acc": None,
                                        "exact_match": 1.0 if i < 3 else 0.0}) + "\n" for i in range(4)))
    vlm = tmp_path / "MMBench.tsv"
    vlm.write_text("index\tquestion\tA\tB\tanswer\tprediction\n0\tq0\tcat\tdog\tA\tA\n1\tq1\tcat\tdog\tB\tA\n")
    path = study_file(server.base_url, defences=[], benchmarks={},
                      imports=[{"name": "mmmu", "model": "reasoner", "format": "lmms-eval", "file": str(lmms)},
                               {"name": "mmbench", "model": "base", "format": "vlmevalkit", "file": str(vlm)}])
    out = tmp_path / "out"
    outcome = run_study(load_plan(path, out=out), progress=False)
    assert not outcome.failed
    from tis.results.runs import load_run

    run = load_run(out / "runs" / "reasoner" / "mmmu")
    head = next(iter(run.summary.benchmarks.values())).overall.headline
    assert head.kind == "accuracy" and head.value == 0.75
    run = load_run(out / "runs" / "base" / "mmbench")
    assert next(iter(run.summary.benchmarks.values())).overall.headline.value == 0.5
    mit = (out / "tables" / "mitigation.md").read_text()
    assert "capability" in mit


def test_served_cells_run_side_by_side(server, study_file, tmp_path):
    out = tmp_path / "out"
    path = study_file(server.base_url)
    outcome = run_study(load_plan(path, out=out), progress=False, jobs=4, write=lambda line: None)
    assert not outcome.failed and len(outcome.ran) == 24
    assert list(outcome.results) == [c.id for c in load_plan(path, out=out).cells]  # reported in plan order
    assert all(v["status"] == "done" for v in read_state(out).values())


def test_jobs_overlap_served_cells(study_file, tmp_path):
    import time

    with LoopbackServer(latency_s=0.15, model_ids=("reasoner", "base")) as slow:
        path = study_file(slow.base_url, defences=[], judges=["refusal"], defaults={"concurrency": 1})
        t0 = time.perf_counter()
        outcome = run_study(load_plan(path, out=tmp_path / "out"), progress=False, jobs=8, write=lambda line: None)
        wall = time.perf_counter() - t0
    assert not outcome.failed and len(outcome.ran) == 8
    serial = 8 * 6 * 0.15  # eight cells of six calls, one at a time each
    assert wall < serial * 0.6, wall
