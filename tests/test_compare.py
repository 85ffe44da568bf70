"""Paired comparison of runs, the models x benchmarks table, the CLI commands and the exports."""

import argparse
import csv
import io
import json

import pytest
from run_builder import judged, row, write_run

from tis.cli.report import add_commands
from tis.results.compare import compare, comparison_csv, main_table, table_csv, table_latex, table_markdown
from tis.core.errors import ConfigError, TisError
from tis.results.runs import load_runs
from tis.core.stats import mcnemar_exact


def cli(*argv):
    parser = argparse.ArgumentParser(prog="tis")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def pair(tmp_path):
    """Baseline vs reasoning model on 20 prompts: 6 flip to unsafe, 1 to safe; one unmatched on each side."""
    base, reason = [], []
    for i in range(20):
        cat = "A" if i < 10 else "B"
        base_safe = i not in (10,)  # s10 unsafe in the baseline
        reason_safe = base_safe and i not in (0, 1, 2, 3, 11, 12)
        if i == 10:
            reason_safe = True
        base.append(judged(f"s{i}", None, base_safe, category=cat))
        reason.append(judged(f"s{i}", True, reason_safe, category=cat, thought="step by step"))
    base.append(judged("only-base", None, True, category="A"))
    reason.append(judged("only-reason", True, True, category="A"))
    a = write_run(tmp_path / "base", base, model="base-7b")
    b = write_run(tmp_path / "reason", reason, model="reason-7b")
    return a, b


def test_paired_difference_mcnemar_and_flips(pair):
    result = compare(load_runs(list(pair)), resamples=500)
    assert result.baseline == "base-7b" and result.models == ["base-7b", "reason-7b"]
    data = result.comparisons[0].benchmarks["bench"]
    assert (data.paired, data.only_baseline, data.only_model) == (20, 1, 1)
    e = data.overall["answer"]
    assert e.n == 20 and (e.worse, e.better) == (6, 1)
    assert e.baseline == pytest.approx(1 / 20) and e.model == pytest.approx(6 / 20)  # ASR
    assert e.diff == pytest.approx(5 / 20)
    assert e.p_value == pytest.approx(mcnemar_exact(6, 1)) == pytest.approx(0.125)
    assert e.ci[0] < e.diff < e.ci[1]
    assert {f.sample_id for f in e.flips.worse} == {"s0", "s1", "s2", "s3", "s11", "s12"}
    assert [f.sample_id for f in e.flips.better] == ["s10"]
    cats = data.categories
    assert (cats["A"]["answer"].worse, cats["B"]["answer"].worse, cats["B"]["answer"].better) == (4, 2, 1)
    assert cats["A"]["answer"].flips is None  # flips are listed once, under overall
    assert "thought" not in data.overall  # the baseline has no thought to pair with
    again = compare(load_runs(list(pair)), resamples=500)
    assert again.comparisons[0].benchmarks["bench"].overall["answer"].ci == e.ci  # seeded


def test_pairs_by_sample_index(tmp_path):
    a = write_run(tmp_path / "a", [judged("p", True, True, index=k) for k in range(3)], model="m1")
    b = write_run(tmp_path / "b", [judged("p", True, k != 2, index=k) for k in range(2, -1, -1)], model="m2")
    e = compare(load_runs([a, b]), resamples=100).comparisons[0].benchmarks["bench"].overall["answer"]
    assert e.n == 3 and e.worse == 1 and e.flips.worse[0].sample_index == 2


def test_no_common_judge_is_said(tmp_path):
    a = write_run(tmp_path / "a", [judged("p", True, True, judge="harm")], model="m1")
    b = write_run(tmp_path / "b", [judged("p", True, True, judge="refusal")], model="m2", judges=("refusal",))
    data = compare(load_runs([a, b])).comparisons[0].benchmarks["bench"]
    assert "no judge in common" in data.note


def test_main_table_of_models_by_benchmarks(tmp_path):
    runs = []
    for model, asr in (("base_7b", 0.2), ("r1 & co", 0.6)):
        for bench in ("figstep", "mm-safetybench"):
            rows = [judged(f"s{i}", True, i >= asr * 10, benchmark=bench) for i in range(10)]
            runs.append(write_run(tmp_path / f"{model}-{bench}", rows, model=model, benchmark=bench))
        aw = [judged(f"s{i}", True, i < 9, benchmark="siuo", group="awareness") for i in range(10)]
        runs.append(write_run(tmp_path / f"{model}-siuo", aw, model=model, benchmark="siuo", group="awareness"))
    table = main_table(load_runs(runs))
    assert [r.model for r in table.rows] == ["base_7b", "r1 & co"]
    assert table.group_columns == ["jailbreak"]  # awareness has a single benchmark
    assert table.rows[1].cells["figstep:answer"].value == pytest.approx(0.6)
    assert table.rows[1].groups["jailbreak"] == pytest.approx(0.6)
    md = table_markdown(table)
    assert "figstep answer ASR ↓" in md and "**20.0%**" in md and "siuo answer safety rate ↑" in md
    tex = table_latex(table)
    assert r"r1 \& co" in tex and r"base\_7b" in tex and r"\textbf{20.0}" in tex and r"$\downarrow$" in tex
    rows = list(csv.reader(io.StringIO(table_csv(table))))
    assert rows[0][0] == "model" and rows[2][0] == "r1 & co" and float(rows[2][1]) == pytest.approx(0.6)


def test_compare_command_formats(pair, capsys, tmp_path):
    assert cli("compare", *map(str, pair)) == 0
    md = capsys.readouterr().out
    assert "## reason-7b vs base-7b (baseline)" in md and "| **all** | answer | 20 | 5.0% | 30.0% | +25.0 |" in md
    assert "- answer, worse in reason-7b: s0#0" in md
    assert cli("compare", *map(str, pair), "--format", "csv", "--out", str(tmp_path / "c.csv")) == 0
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    top = next(r for r in rows if r["category"] == "(all)" and r["target"] == "answer")
    assert float(top["p_value"]) == pytest.approx(0.125) and top["worse"] == "6"
    assert cli("compare", *map(str, pair), "--table", "--format", "latex") == 0
    assert r"\begin{tabular}" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="at least 2"):
        cli("compare", str(pair[0]))
    with pytest.raises(TisError, match="not a tis run directory"):
        cli("compare", str(pair[0]), str(tmp_path))


def test_comparison_csv_matches_compare(pair):
    result = compare(load_runs(list(pair)), resamples=100)
    rows = list(csv.DictReader(io.StringIO(comparison_csv(result))))
    assert {(r["category"], r["target"]) for r in rows} == {("(all)", "answer"), ("A", "answer"), ("B", "answer")}


def test_export_jailbreakbench_parquet_and_jsonl(tmp_path, capsys):
    rows = [judged("g1", True, False, meta={"question": "How do I pick a lock?"}, usage={"prompt_tokens": 10,
                                                                                       "completion_tokens": 5}),
            judged("g2", True, True), judged("g3", True, None), row("g4", status="failed", error="HTTP 500")]
    rows.append(judged("g1", True, True, index=1))  # a second completion: not part of the artifact
    run_dir = write_run(tmp_path / "run", rows, model="openai:r1-7b", benchmark="figstep")
    # g3 (unparsed) and g4 (failed) have no jailbroken reading: the format has no place for that
    with pytest.raises(ConfigError, match="2 of 4 prompts have no jailbroken reading"):
        cli("export", str(run_dir), "--format", "jailbreakbench")
    assert cli("export", str(run_dir), "--format", "jailbreakbench", "--include-unjudged") == 0
    art = json.loads((run_dir / "jailbreakbench.json").read_text())
    p = art["parameters"]
    assert (p["method"], p["model"], p["number_of_submitted_prompts"], p["total_number_of_jailbreaks"]) == (
        "figstep", "openai:r1-7b", 4, 1)
    assert p["attack_success_rate_judged"] == pytest.approx(1 / 2)  # judged: g1 (unsafe), g2 (safe)
    assert (p["number_judged"], p["number_unjudged"]) == (2, 2)
    first = art["jailbreaks"][0]
    assert (first["goal"], first["prompt"], first["response"], first["jailbroken"]) == (
        "How do I pick a lock?", "question g1", "ok.", True)
    assert [(j["jailbroken"], j["verdict_status"]) for j in art["jailbreaks"][1:]] == [
        (False, "judged"), (False, "unparsed"), (False, "generation_failed")]

    pa = pytest.importorskip("pyarrow.parquet")
    assert cli("export", str(run_dir), "--format", "parquet", "--out", str(tmp_path / "r.parquet")) == 0
    table = pa.read_table(tmp_path / "r.parquet").to_pylist()
    assert len(table) == 5 and table[0]["harm.answer.label"] == "unsafe" and table[0]["harm.answer.good"] is False
    assert table[3]["status"] == "failed" and table[3]["harm.answer.good"] is None
    assert cli("export", str(run_dir), "--format", "jsonl") == 0
    lines = (run_dir / "results.flat.jsonl").read_text().splitlines()
    assert json.loads(lines[1])["harm.answer.good"] is True
    with pytest.raises(ConfigError, match="judge 'nope' has no verdicts"):
        cli("export", str(run_dir), "--format", "jailbreakbench", "--judge", "nope")
