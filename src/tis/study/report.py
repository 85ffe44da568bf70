"""The study's outputs: `tables/NAME.{md,tex,csv}`, `study.md` and one self-contained `report.html`
(no scripts, no fetches: inline CSS and SVG). Every text from a run or the study file is escaped."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from tis.study.tables import (ORDER, TABLES, StudyTables, build_tables, claims_markdown, to_csv, to_latex,
                              to_markdown)

_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}
th{background:#f3f3f3;text-align:left}td{text-align:right}td:first-child,td:nth-child(2){text-align:left}
h1{font-size:22px}h2{font-size:18px;margin-top:1.6em;border-bottom:1px solid #ddd}.ok{color:#176317}
.bad{color:#a01010}.note{color:#555;font-size:13px}svg text{font:11px system-ui,sans-serif}"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _table_html(rows: list[list[str]]) -> str:
    if len(rows) <= 1:
        return "<p class=note>(no data yet)</p>"
    head = "".join(f"<th>{_esc(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def difference_plot(items: list[tuple[str, float | None, list[float] | None]], title: str) -> str:
    """Horizontal points with 95% intervals, in points; zero marked. Items: (label, diff, ci)."""
    items = [i for i in items if i[1] is not None]
    if not items:
        return "<p class=note>(no paired differences yet)</p>"
    lo = min(min(i[1], *(i[2] or [i[1]])) for i in items)
    hi = max(max(i[1], *(i[2] or [i[1]])) for i in items)
    lo, hi = min(lo, 0.0) - 0.02, max(hi, 0.0) + 0.02
    left, width, row = 260, 420, 20
    h = 30 + row * len(items)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * width

    out = [f'<svg width="{left + width + 40}" height="{h}" role="img" aria-label="{_esc(title)}">',
           f'<line x1="{x(0):.1f}" y1="10" x2="{x(0):.1f}" y2="{h - 15}" stroke="#888" stroke-dasharray="3,3"/>']
    for k, (label, d, ci) in enumerate(items):
        y = 20 + row * k
        out.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{_esc(label)}</text>')
        if ci:
            out.append(f'<line x1="{x(ci[0]):.1f}" y1="{y}" x2="{x(ci[1]):.1f}" y2="{y}" stroke="#333"/>')
        colour = "#176317" if d >= 0 else "#a01010"
        out.append(f'<circle cx="{x(d):.1f}" cy="{y}" r="4" fill="{colour}"><title>{_esc(label)}: '
                   f'{100 * d:+.1f} points</title></circle>')
    out.append(f'<text x="{x(lo):.1f}" y="{h - 2}">{100 * lo:+.0f}</text>'
               f'<text x="{x(hi):.1f}" y="{h - 2}" text-anchor="end">{100 * hi:+.0f} points</text></svg>')
    return "".join(out)


def groups_plot(t: StudyTables) -> str:
    """One bar per group (jailbreak ASR, awareness safety rate, over-refusal refusal rate, capability accuracy)
    for each model and variant."""
    groups = [g for g in ORDER if g in set(t.groups.values())]
    rows = []
    for model, labels in t.values.items():
        for label, benches in labels.items():
            vals = []
            for g in groups:
                v = [b["value"] for k, b in benches.items() if t.groups.get(k) == g and b["value"] is not None]
                vals.append(sum(v) / len(v) if v else None)
            rows.append((label, vals))
    if not rows or not groups:
        return "<p class=note>(no results yet)</p>"
    colours = {"jailbreak": "#c0392b", "awareness": "#2e86c1", "over-refusal": "#d68910", "capability": "#229954"}
    bar, gap, left, width = 14, 10, 260, 300
    h = 30 + len(rows) * (bar * len(groups) + gap)
    out = [f'<svg width="{left + width + 80}" height="{h}" role="img" aria-label="groups per variant">']
    y = 10
    for label, vals in rows:
        out.append(f'<text x="{left - 6}" y="{y + bar * len(groups) / 2 + 4}" text-anchor="end">{_esc(label)}</text>')
        for g, v in zip(groups, vals):
            w = 0 if v is None else v * width
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 1}" fill="{colours[g]}">'
                       f'<title>{_esc(label)} {_esc(g)}: {"n/a" if v is None else f"{100 * v:.1f}%"}</title></rect>')
            label = "n/a (nothing judged)" if v is None else f"{100 * v:.0f}%"
            out.append(f'<text x="{left + w + 3:.1f}" y="{y + bar - 3}">{label}</text>')
            y += bar
        y += gap
    legend = " ".join(f'<span style="color:{colours[g]}">■ {_esc(g)} ({_esc(_metric(t, g))})</span>' for g in groups)
    out.append("</svg>")
    return "".join(out) + f"<p class=note>{legend}</p>"


def _metric(t: StudyTables, group: str) -> str:
    for labels in t.values.values():
        for benches in labels.values():
            for b, v in benches.items():
                if t.groups.get(b) == group:
                    return f"{v['metric']}, {'higher' if v['higher_is_better'] else 'lower'} is better"
    return ""


def _rel(target: Path, start: Path) -> str:
    try:
        return os.path.relpath(target, start)
    except ValueError:
        return str(target)


def write_study_outputs(plan, outcome=None) -> tuple[dict[str, Path], Path]:
    """Write the tables (markdown, LaTeX, CSV), study.md and report.html into the study folder."""
    t = build_tables(plan)
    tables_dir = plan.out / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    rows_of = {name: fn(t) for name, fn in TABLES.items()}
    for name, rows in rows_of.items():
        for ext, fmt in (("md", to_markdown), ("tex", to_latex), ("csv", to_csv)):
            p = tables_dir / f"{name}.{ext}"
            p.write_text(fmt(rows), encoding="utf-8")
        written[name] = tables_dir / f"{name}.md"
    titles = {"collapse": "Collapse: each reasoning model against its base",
              "mitigation": "Mitigation: plain, defences and fine-tuned variants on every group (mean per group)",
              "mitigation-detail": "Mitigation per benchmark, paired against the plain variant",
              "thought-answer": "Thought x answer (primary judge), before and after",
              "thought-refusal": "Thoughts opened and closed, and refusals (refusal judge), with changes against the plain "
                                 "variant"}
    md = [f"# Study {plan.study.name}", ""]
    if plan.study.description:
        md += [plan.study.description.strip(), ""]
    md += ["## Claims", "", claims_markdown(t)]
    for name, rows in rows_of.items():
        md += [f"## {titles[name]}", "", to_markdown(rows)]
    status = _status_lines(plan, outcome)
    md += ["## Cells", "", *status, ""]
    (plan.out / "study.md").write_text("\n".join(md), encoding="utf-8")
    report = plan.out / "report.html"
    report.write_text(_html(plan, t, rows_of, titles, outcome), encoding="utf-8")
    return written, report


def _status_lines(plan, outcome) -> list[str]:
    from tis.study.runner import describe, read_state

    state = read_state(plan.out)
    lines = []
    for c in plan.cells:
        s = state.get(c.id, {})
        status = s.get("status", "not run")
        err = f" — {s['error']}" if s.get("error") else ""
        lines.append(f"- {describe(c)}: {status}{err}")
    return lines


def _html(plan, t: StudyTables, rows_of, titles, outcome) -> str:
    out = plan.out
    parts = [f"<!doctype html><html lang=en><meta charset=utf-8><title>Study {_esc(plan.study.name)}</title>"
             f"<style>{_CSS}</style><body><h1>Study {_esc(plan.study.name)}</h1>"]
    if plan.study.description:
        parts.append(f"<p>{_esc(plan.study.description.strip())}</p>")
    parts.append("<h2>Claims</h2><ul>")
    for c in t.claims:
        cls = "ok" if c["verdict"] == "holds" else "bad" if c["verdict"] == "does not hold" else "note"
        parts.append(f"<li><b>{_esc(c['claim'])}</b>: <span class={cls}>{_esc(c['verdict'])}</span>. "
                     f"{_esc(c['evidence'])}.</li>")
    parts.append("</ul>")
    parts.append("<h2>Difference per benchmark (reasoning model minus base; positive is better)</h2>")
    items = [(f"{r.model} vs {r.base}: {r.benchmark}", r.paired.better,
              None if r.paired.ci is None else sorted([x if r.higher_is_better else -x for x in r.paired.ci]))
             for r in t.collapse]
    if not items:  # no pairs: the variants against their plain model
        for model, labels in t.against_plain.items():
            for label, benches in labels.items():
                for b, p in benches.items():
                    hib = t.values[model][label][b]["higher_is_better"]
                    items.append((f"{label}: {b}", p.better,
                                  None if p.ci is None else sorted([x if hib else -x for x in p.ci])))
        parts.append("<p class=note>No base model pairs in this study: the variants against their plain model.</p>")
    parts.append(difference_plot(items, "differences"))
    parts.append("<h2>Safety, over-refusal and capability per model and variant</h2>")
    parts.append(groups_plot(t))
    for name, rows in rows_of.items():
        parts.append(f"<h2>{_esc(titles[name])}</h2>{_table_html(rows)}")
    parts.append("<h2>Runs</h2><ul>")
    from tis.study.plan import EvalCell
    from tis.study.runner import read_state

    state = read_state(out)
    for c in plan.evals + plan.imports:
        rep = c.run_dir / "report.html"
        what = f"{c.label} on {c.benchmark if isinstance(c, EvalCell) else c.name}"
        s = state.get(c.id, {})
        note = f" ({_esc(s.get('status'))}{': ' + _esc(s['error']) if s.get('error') else ''})" if s else " (not run)"
        if rep.is_file():
            parts.append(f'<li><a href="{_esc(_rel(rep, out))}">{_esc(what)}</a>{note}</li>')
        else:
            parts.append(f"<li>{_esc(what)}{note}</li>")
    parts.append("</ul>")
    other = [c for c in plan.cells if c not in plan.evals and c not in plan.imports]
    if other:
        parts.append("<h2>Builds and training runs</h2><ul>")
        from tis.study.runner import describe

        for c in other:
            s = state.get(c.id, {})
            parts.append(f"<li>{_esc(describe(c))}: {_esc(s.get('status', 'not run'))}"
                         f"{' — ' + _esc(s['error']) if s.get('error') else ''}</li>")
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "".join(parts)
