"""Two or more runs on the same samples: paired differences, McNemar tests, flips, main tables.

Runs are grouped into models by their label (`tis.results.runs.load_runs`): a model may bring one run per
benchmark. The first model is the baseline (e.g. the base model of a reasoning model, or a model
before fine-tuning); every other model is compared with it on the completions both have, paired by
(benchmark, sample_id, sample_index). Unpaired completions are counted, never compared.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict

from tis.core.stats import mcnemar_exact, paired_bootstrap
from tis.results.metrics import TARGETS, Scored, get_metric, pct
from tis.results.runs import Run
from tis.results.schema import (BenchmarkComparison, Comparison, Flip, Flips, MainTable, ModelComparison,
                                PairedEntry, ResultRow, TableCell, TableColumn, TableRow)


SHOWN = ("answer", "thought", "full")  # the order targets are listed in


def models_of(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    by: dict[str, list[Run]] = {}
    for r in runs:
        by.setdefault(r.label or r.model, []).append(r)
    return list(by.items())


def _scored(runs: list[Run]) -> dict[str, Scored]:
    return {bench: sc for r in runs for bench, sc in r.scored.items()}


def common_judge(a: Scored, b: Scored) -> str | None:
    """The baseline's primary judge if the other run has it, else the other's primary, else any shared one."""
    for j in (a.primary, b.primary, *a.judges):
        if j and j in a.judges and j in b.judges:
            return j
    return None


def _key(row: ResultRow) -> tuple[str, int]:
    return row.sample_id, row.sample_index


def _entry(kind_name: str, pairs: list[tuple[bool, bool, ResultRow]], *, resamples: int, seed: int,
           benchmark: str | None = None, flips: bool = True) -> PairedEntry:
    """Metric of baseline and model on the same completions, their paired difference and McNemar's test."""
    kind = get_metric(kind_name, benchmark)
    ga = [p[0] for p in pairs]
    gb = [p[1] for p in pairs]
    strata = [kind.stratum(p[2].meta) for p in pairs]
    ma, mb = kind.value(ga, strata, seed=seed), kind.value(gb, strata, seed=seed)
    # the value each completion adds to the metric: the bad share for ASR / refusal rate
    xa = [kind.contribution(g) for g in ga]
    xb = [kind.contribution(g) for g in gb]
    boot = paired_bootstrap(xa, xb, strata if any(s is not None for s in strata) else None,
                            resamples=resamples, seed=seed)
    worse = [p[2] for p in pairs if p[0] and not p[1]]
    better = [p[2] for p in pairs if not p[0] and p[1]]
    return PairedEntry(n=len(pairs), baseline=ma.value, model=mb.value, baseline_ci=ma.ci, model_ci=mb.ci,
                       diff=None if ma.value is None or mb.value is None else mb.value - ma.value,
                       ci=boot["ci"], p_value=mcnemar_exact(len(worse), len(better)), worse=len(worse),
                       better=len(better),
                       flips=Flips(worse=[_flip(r) for r in worse], better=[_flip(r) for r in better]) if flips else None)


def _flip(row: ResultRow) -> Flip:
    return Flip(sample_id=row.sample_id, sample_index=row.sample_index, category=row.category)


def compare_benchmark(a: Scored, b: Scored, *, resamples: int = 2000, seed: int = 0) -> BenchmarkComparison:
    judge = common_judge(a, b)
    index_b = {_key(r): i for i, r in enumerate(b.rows)}
    keys_a = {_key(r) for r in a.rows}
    only_baseline = len(keys_a - index_b.keys())
    out = BenchmarkComparison(judge=judge, completions_baseline=len(a.rows), completions_model=len(b.rows),
                              only_baseline=only_baseline, only_model=len(index_b.keys() - keys_a),
                              paired=len(a.rows) - only_baseline)
    if judge is None:
        out.note = "no judge in common: judge both runs with the same judge (`tis judge RUN --judge ...`)"
        return out
    kind = a.kind(judge)
    spec = get_metric(kind, a.benchmark)
    out.kind, out.name, out.higher_is_better = kind, spec.title, spec.higher_is_better
    # (category, target) -> paired good flags
    cells: dict[tuple[str, str], list] = defaultdict(list)
    for i, row in enumerate(a.rows):
        j = index_b.get(_key(row))
        if j is None:
            continue
        ra, rb = a.readings[i], b.readings[j]
        for target in TARGETS:
            ga, gb = ra.get((judge, target)), rb.get((judge, target))
            if ga is not None and gb is not None:
                item = (ga, gb, row)
                cells[("", target)].append(item)
                cells[(row.category or "(none)", target)].append(item)
    out.overall = {t: _entry(kind, cells[("", t)], resamples=resamples, seed=seed, benchmark=a.benchmark)
                   for t in SHOWN if cells.get(("", t))}
    cats: dict[str, dict[str, PairedEntry]] = defaultdict(dict)
    for (cat, t), pairs in sorted(cells.items(), key=lambda kv: (kv[0][0], SHOWN.index(kv[0][1]))):
        if cat:  # flips are listed once, under overall, with their categories
            cats[cat][t] = _entry(kind, pairs, resamples=resamples, seed=seed, benchmark=a.benchmark, flips=False)
    out.categories = dict(cats)
    return out


def compare(runs: list[Run], *, resamples: int = 2000, seed: int = 0) -> Comparison:
    """Every model against the first (the baseline), per benchmark both ran, overall and per category."""
    models = models_of(runs)
    base_label, base_runs = models[0]
    base = _scored(base_runs)
    out = Comparison(baseline=base_label, models=[m for m, _ in models], resamples=resamples, seed=seed,
                     comparisons=[])
    for label, mruns in models[1:]:
        other = _scored(mruns)
        benches = [b for b in base if b in other]
        out.comparisons.append(ModelComparison(
            baseline=base_label, model=label,
            benchmarks={b: compare_benchmark(base[b], other[b], resamples=resamples, seed=seed) for b in benches},
            only_baseline_benchmarks=[b for b in base if b not in other],
            only_model_benchmarks=[b for b in other if b not in base]))
    return out


# --- the models x benchmarks table ----------------------------------------------------------


def main_table(runs: list[Run], targets: tuple[str, ...] = ("answer", "thought")) -> MainTable:
    """Models as rows, (benchmark, target) as columns: each benchmark's own metric from its primary judge,
    then per group the mean over the group's benchmarks (where a group has several)."""
    models = models_of(runs)
    summaries = {label: {b: s for r in mruns for b, s in r.summary.benchmarks.items()} for label, mruns in models}
    columns: list[TableColumn] = []
    for label, _ in models:
        for bench, data in summaries[label].items():
            head = data.overall.headline
            if not head:
                continue
            for t in targets:
                if data.overall.stats(head.judge, t) is not None and \
                        not any(c.benchmark == bench and c.target == t for c in columns):
                    columns.append(TableColumn(benchmark=bench, group=data.group, target=t, metric=head.name,
                                               higher_is_better=head.higher_is_better))
    rows = []
    for label, _ in models:
        cells: dict[str, TableCell | None] = {}
        for c in columns:
            data = summaries[label].get(c.benchmark)
            head = data.overall.headline if data else None
            m = data.overall.metric(head.judge, c.target) if head else None
            cells[c.key] = TableCell(value=m.value, ci=m.ci, n=m.n, judge=head.judge) if m else None
        groups: dict[str, list[float]] = defaultdict(list)
        for c in columns:
            cell = cells[c.key]
            if c.target == targets[0] and cell and cell.value is not None:
                groups[c.group or "custom"].append(cell.value)
        rows.append(TableRow(model=label, cells=cells, groups={g: sum(v) / len(v) for g, v in groups.items()}))
    group_cols = [g or "custom" for g in dict.fromkeys(c.group for c in columns)
                  if sum(1 for c in columns if c.group == g and c.target == targets[0]) > 1]
    return MainTable(columns=columns, group_columns=group_cols, rows=rows)


def _col_title(c: TableColumn) -> str:
    arrow = "↑" if c.higher_is_better else "↓"
    return f"{c.benchmark} {c.target} {c.metric} {arrow}"


def _value(row: TableRow, key: str) -> float | None:
    cell = row.cells.get(key)
    return cell.value if cell else None


def _best(table: MainTable, key: str, higher: bool) -> float | None:
    vals = [v for r in table.rows if (v := _value(r, key)) is not None]
    return (max(vals) if higher else min(vals)) if len(vals) > 1 else None


def _is_best(table: MainTable, row: TableRow, c: TableColumn) -> bool:
    v = _value(row, c.key)
    return v is not None and v == _best(table, c.key, c.higher_is_better)


def table_markdown(table: MainTable) -> str:
    head = ["model", *(_col_title(c) for c in table.columns), *(f"{g} (mean)" for g in table.group_columns)]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for row in table.rows:
        vals = []
        for c in table.columns:
            cell = row.cells.get(c.key)
            text = pct(cell.value) if cell else "–"
            vals.append(f"**{text}**" if _is_best(table, row, c) else text)
        vals += [pct(row.groups.get(g)) for g in table.group_columns]
        lines.append("| " + " | ".join([row.model, *vals]) + " |")
    return "\n".join(lines) + "\n"


_LATEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
          "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def table_latex(table: MainTable) -> str:
    arrows = {True: r"$\uparrow$", False: r"$\downarrow$"}
    head = ["Model", *(f"{latex_escape(c.benchmark)} {c.target} ({latex_escape(c.metric)} {arrows[c.higher_is_better]})"
                       for c in table.columns),
            *(f"{latex_escape(g)} (mean)" for g in table.group_columns)]
    out = [r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for row in table.rows:
        vals = []
        for c in table.columns:
            v = _value(row, c.key)
            text = f"{100 * v:.1f}" if v is not None else "--"
            vals.append(rf"\textbf{{{text}}}" if _is_best(table, row, c) else text)
        vals += [f"{100 * row.groups[g]:.1f}" if g in row.groups else "--" for g in table.group_columns]
        out.append(" & ".join([latex_escape(row.model), *vals]) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def table_csv(table: MainTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", *(f"{c.key}:{c.metric}" for c in table.columns), *(f"{g}:mean" for g in table.group_columns)])
    for row in table.rows:
        vals = ["" if (v := _value(row, c.key)) is None else f"{v:.6f}" for c in table.columns]
        w.writerow([row.model, *vals, *(f"{row.groups[g]:.6f}" if g in row.groups else "" for g in table.group_columns)])
    return buf.getvalue()


# --- the pairwise comparison as text ----------------------------------------------------------


def _cells(data: BenchmarkComparison, all_label: str = "(all)") -> list[tuple[str, dict[str, PairedEntry]]]:
    return [(all_label, data.overall), *data.categories.items()]


def comparison_rows(result: Comparison) -> list[dict]:
    """One flat row per (model, benchmark, category, target): what the text formats print."""
    rows = []
    for comp in result.comparisons:
        for bench, data in comp.benchmarks.items():
            for cat, targets in _cells(data):
                for t, e in targets.items():
                    rows.append({"baseline": comp.baseline, "model": comp.model, "benchmark": bench,
                                 "category": cat, "target": t, "judge": data.judge, "metric": data.name,
                                 "higher_is_better": data.higher_is_better, "n": e.n,
                                 "baseline_value": e.baseline, "model_value": e.model, "diff": e.diff,
                                 "ci_low": e.ci[0] if e.ci else None, "ci_high": e.ci[1] if e.ci else None,
                                 "p_value": e.p_value, "worse": e.worse, "better": e.better})
    return rows


def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"


def comparison_markdown(result: Comparison, *, flips_shown: int = 10) -> str:
    lines = []
    for comp in result.comparisons:
        lines += [f"## {comp.model} vs {comp.baseline} (baseline)", ""]
        for b in comp.only_baseline_benchmarks + comp.only_model_benchmarks:
            lines.append(f"- {b}: only one side ran it; not compared")
        for bench, data in comp.benchmarks.items():
            lines += [f"### {bench}", "",
                      f"paired completions: {data.paired} (only in baseline: {data.only_baseline}, only in "
                      f"{comp.model}: {data.only_model})", ""]
            if data.note:
                lines += [data.note, ""]
                continue
            arrow = "higher is better" if data.higher_is_better else "lower is better"
            lines += [f"{data.name} ({arrow}) by judge `{data.judge}`; difference in points with a paired "
                      f"bootstrap 95% CI; exact McNemar p; worse / better = completions that flipped", "",
                      "| category | target | n | baseline | model | diff | 95% CI | p | worse | better |",
                      "|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
            for cat, targets in _cells(data, "**all**"):
                for t, e in targets.items():
                    ci = f"[{_pp(e.ci[0])}, {_pp(e.ci[1])}]" if e.ci else "n/a"
                    lines.append(f"| {cat} | {t} | {e.n} | {pct(e.baseline)} | {pct(e.model)} | "
                                 f"{_pp(e.diff)} | {ci} | {e.p_value:.3g} | {e.worse} | {e.better} |")
            lines.append("")
            for t, e in data.overall.items():
                for side in ("worse", "better"):
                    flips = getattr(e.flips, side) if e.flips else []
                    if flips:
                        shown = ", ".join(f"{f.sample_id}#{f.sample_index}" for f in flips[:flips_shown])
                        more = f" … and {len(flips) - flips_shown} more" if len(flips) > flips_shown else ""
                        lines.append(f"- {t}, {side} in {comp.model}: {shown}{more}")
            lines.append("")
    return "\n".join(lines)


def comparison_csv(result: Comparison) -> str:
    rows = comparison_rows(result)
    buf = io.StringIO()
    fields = ["baseline", "model", "benchmark", "category", "target", "judge", "metric", "higher_is_better", "n",
              "baseline_value", "model_value", "diff", "ci_low", "ci_high", "p_value", "worse", "better"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def comparison_latex(result: Comparison) -> str:
    out = [r"\begin{tabular}{llllrrrrl}", r"\toprule",
           r"Model & Benchmark & Category & Target & Baseline & Model & $\Delta$ & 95\% CI & $p$ \\", r"\midrule"]
    for r in comparison_rows(result):
        ci = f"[{_pp(r['ci_low'])}, {_pp(r['ci_high'])}]" if r["ci_low"] is not None else "--"
        out.append(" & ".join(latex_escape(x) for x in (
            r["model"], r["benchmark"], r["category"], r["target"], pct(r["baseline_value"]),
            pct(r["model_value"]), _pp(r["diff"]), ci, f"{r['p_value']:.3g}")) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"
