"""Build the HTML report from run directories.

Tables and plots are rendered here, with every piece of text escaped. The sample browser's data is
embedded as JSON in a `<script type="application/json">` block, with `<`, `>`, `&` and U+2028/2029
written as \\u escapes so no text inside it can end the block; the page's script puts it into the
DOM with textContent only. A Content-Security-Policy allows only that script (by its hash), inline
styles and data: images, so the file makes no request of any kind when it opens.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

import tis
from tis.render import svg
from tis.render.svg import esc
from tis.results.compare import compare, main_table, models_of
from tis.results.metrics import TARGETS, bucket_labels, get_metric, group_summary, thought_tokens
from tis.results.metrics import pct as _pct
from tis.results.runs import Run, load_runs
from tis.results.schema import Comparison, MetricValue, Rate, TableCell


def _good_bad(kind: str, benchmark: str | None = None) -> tuple[str, str]:
    return get_metric(kind, benchmark).good_bad


def script_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>`, `&` or line separators left raw."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _asset(name: str) -> str:
    return resources.files("tis.render").joinpath("assets", name).read_text(encoding="utf-8")


def _interval(ci: list[float] | None) -> str:
    return f' <span class="ci">[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]</span>' if ci else ""


def _metric_html(m: MetricValue | TableCell | None) -> str:
    """A metric (or a main-table cell) with its interval."""
    if m is None or m.value is None:
        return '<span class="na">n/a</span>'
    return f"{_pct(m.value)}{_interval(m.ci)}"


def _rate_html(r: Rate | None) -> str:
    if r is None or r.rate is None:
        return '<span class="na">n/a</span>'
    return f'{_pct(r.rate)}{_interval(r.ci)} <span class="n">{r.k}/{r.n}</span>'


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are HTML already escaped by the caller."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


# --- thumbnails -----------------------------------------------------------------------------


def _image_key(im) -> str:
    return im.sha256 or "path:" + str(im.path)


def thumbnail(path: Path, size: int = 160) -> str | None:
    """A JPEG data URL at most `size` px on a side, or None when the file cannot be read as an image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # JPEG decodes at a reduced scale: much faster for big photos
            im.thumbnail((size, size))
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                flat = Image.new("RGB", im.size, "white")
                flat.paste(im, mask=im.getchannel("A"))
                im = flat
            else:
                im = im.convert("RGB")
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=70, optimize=True)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def collect_thumbnails(runs: list[Run], limit: int, size: int) -> tuple[dict[str, str], dict[str, int]]:
    """Each image once (by sha256), in order of first use, up to `limit` of them."""
    seen: dict[str, Path] = {}
    for run in runs:
        for row in run.rows:
            for im in row.images:
                key = _image_key(im)
                if key not in seen and im.path:
                    p = Path(im.path)
                    seen[key] = p if p.is_absolute() or p.exists() else run.dir / p
    out, unreadable = {}, 0
    for key, path in list(seen.items())[:limit]:
        url = thumbnail(path, size)
        if url:
            out[key] = url
        else:
            unreadable += 1
    return out, {"images": len(seen), "thumbnails": len(out), "unreadable": unreadable,
                 "over_limit": max(0, len(seen) - limit), "limit": limit}


# --- the sample browser's data -----------------------------------------------------------------


def _flag(g: bool | None) -> int | None:
    return None if g is None else int(g)


def sample_records(runs: list[Run], comparison: Comparison | None) -> list[dict]:
    from tis.results.thought_steps import step_reading

    flips: dict[tuple, list[str]] = {}
    for comp in comparison.comparisons if comparison else []:
        for bench, data in comp.benchmarks.items():
            entry = data.overall.get("answer") or next(iter(data.overall.values()), None)
            for side in ("worse", "better") if entry and entry.flips else ():
                for f in getattr(entry.flips, side):
                    for label in (comp.model, comp.baseline):
                        flags = flips.setdefault((label, bench, f.sample_id, f.sample_index), [])
                        if side not in flags:
                            flags.append(side)
    out = []
    for ri, run in enumerate(runs):
        for bench, sc in run.scored.items():
            primary = sc.primary
            deciders = [j for j in sc.judges if sc.metric(j).headline]
            for row, rd in zip(sc.rows, sc.readings):
                idx = row.sample_index
                verdicts = []
                for judge in sc.judges:
                    for target in TARGETS:
                        v = row.verdict(judge, target)
                        if v is not None:
                            score = v.score
                            verdicts.append([judge, target, v.label, v.status, v.safe,
                                             round(score, 4) if isinstance(score, float) else score,
                                             v.rationale or v.error or ""])
                answers = {rd.get((j, "answer")) for j in deciders} - {None}
                rec = {"r": ri, "b": bench, "c": row.category or "", "id": row.sample_id, "i": idx,
                       "p": row.prompt, "im": [[_image_key(im), im.path or ""] for im in row.images],
                       "t": row.thought, "a": row.answer, "s": row.status,
                       "e": row.error or "", "tr": int(row.truncated),
                       "n": thought_tokens(row)[0], "sp": row.split_source or "",
                       "ga": _flag(rd.get((primary, "answer"))), "gt": _flag(rd.get((primary, "thought"))),
                       "v": verdicts, "d": int(len(answers) > 1),
                       "x": flips.get((run.label, bench, row.sample_id, idx), [])}
                step = step_reading(row)  # where the thought turns unsafe (offline judge, step by step)
                if step and step["first_unsafe_step"] is not None:
                    rec["fs"] = [step["first_unsafe_step"] + 1, step["steps"], step["position"], int(step["recovered"]),
                                 step.get("text", "")]
                out.append(rec)
    return out


# --- the page's sections -----------------------------------------------------------------------


def _runs_section(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        judges = run.judges or sorted({j for sc in run.scored.values() for j in sc.judges})
        rows.append([esc(run.label), esc(run.model), esc(", ".join(run.benchmarks)),
                     esc(", ".join(judges)) + (" <span class='n'>(first = primary)</span>" if len(judges) > 1 else ""),
                     str(len(run.rows)), esc(run.manifest.created or ""), f"<code>{esc(run.dir)}</code>"])
    return _table(["run", "model", "benchmarks", "judges", "completions", "created", "folder"], rows, "runs")


def _summary_section(runs: list[Run]) -> str:
    rows, extras = [], []
    for run in runs:
        for bench, data in run.summary.benchmarks.items():
            o = data.overall
            head = o.headline
            judge = head.judge if head else None
            j = o.judges.get(judge, {}) if judge else {}
            ans = j.get(head.target) if head else None
            thought, full = j.get("thought"), j.get("full")
            mx = o.matrix.get(judge) if judge else None
            at_k = o.at_k.get(judge, {}).get(head.target) if judge and head else None
            arrow = "" if not head else (" ↑" if head.higher_is_better else " ↓")
            rows.append([
                esc(run.label), esc(bench), esc(data.group), esc(judge or "–"), esc(head.name if head else "–") + arrow,
                _metric_html(ans.metric if ans else None), _metric_html(thought.metric if thought else None),
                _metric_html(full.metric if full else None), str(ans.metric.n if ans else 0),
                str(sum(t.unparsed for t in j.values())), str(sum(t.failed for t in j.values())),
                str(o.failed), str(thought.not_applicable if thought else 0),
                _rate_html(mx.self_correction) if mx else "–", _rate_html(mx.collapse) if mx else "–",
                (f"{_pct(at_k.safe_at_1.rate)} / {_pct(at_k.safe_at_k.rate)} / "
                 f"{_pct(at_k.majority_safe.rate)} <span class='n'>K={at_k.k_max}</span>") if at_k else "–"])
            siuo = o.siuo
            if siuo:
                extras.append(f"<li>{esc(run.label)} · {esc(bench)}: SIUO ({siuo.items} items, majority vote) — "
                              f"safe {_rate_html(siuo.safe)}, effective {_rate_html(siuo.effective)}, "
                              f"safe &amp; effective {_rate_html(siuo.safe_and_effective)}</li>")
            if ans and ans.metric.strata:
                shown = ", ".join(f"on {esc(name)} images {_pct(st.value)} (n={st.n})"
                                  for name, st in ans.metric.strata.items())
                extras.append(f"<li>{esc(run.label)} · {esc(bench)}: {esc(ans.metric.name)} {shown}</li>")
    head = ["run", "benchmark", "group", "judge", "metric", "answer [95% CI]", "thought", "full output", "judged",
            "unparsed", "judge failed", "gen. failed", "no thought", "self-correction", "collapse",
            "Safe@1 / Safe@K / majority"]
    html = _table(head, rows, "summary")
    from tis.results.thought_steps import summarise as thought_steps  # where thoughts turn unsafe

    for run in runs:
        for bench, st in thought_steps(run.rows).items():
            q = st["first_unsafe_position"]
            extras.append(f"<li>{esc(run.label)} · {esc(bench)}: thoughts read step by step {st['thoughts']}; turn "
                          f"unsafe {st['unsafe']} ({_pct(st['share_unsafe'])}), then recover {st['recovered']} "
                          f"({_pct(st['share_unsafe_then_recovered'])}); first unsafe step at "
                          + (f"{_pct(q['q1'])} / {_pct(q['median'])} / {_pct(q['q3'])} of the thought (quartiles)"
                             if q else "–") + "</li>")
    if extras:
        html += "<ul class='extras'>" + "".join(extras) + "</ul>"
    html += ("<p class='note'>Each benchmark's own metric from its primary judge (↑ higher is better, ↓ lower is "
             "better), with 95% intervals (Wilson; bootstrap for MSSBench). Unparsed and failed verdicts, failed "
             "generations and empty thoughts are counted beside the rates, never inside them. Self-correction: "
             "unsafe thought, safe answer; collapse: both unsafe.</p>")
    return html


def _categories_section(runs: list[Run]) -> str:
    parts = []
    for run in runs:
        summary = run.summary
        for bench, data in summary.benchmarks.items():
            rows = []
            for cat, cell in [*data.categories.items(), *data.groups.items()]:
                head = cell.headline
                judge = head.judge if head else None
                mx = cell.matrix.get(judge) if judge else None
                rows.append([esc(cat), esc(cell.group), str(cell.generations), str(cell.failed),
                             _metric_html(cell.metric(judge, "answer")), _metric_html(cell.metric(judge, "thought")),
                             _metric_html(cell.metric(judge, "full")),
                             _rate_html(mx.self_correction) if mx else "–", _rate_html(mx.collapse) if mx else "–"])
            parts.append(f"<details><summary>{esc(run.label)} · {esc(bench)}: {len(data.categories)} categories"
                         f"</summary>" + _table(["category / group", "group", "completions", "failed", "answer", "thought",
                                                 "full", "self-correction", "collapse"], rows, "cats") + "</details>")
        if summary.ensemble and summary.ensemble.agreement:  # the same figures as summary.json and summary.md
            parts.append(f"<p class='note'>{esc(run.label)}: agreement between judges on their {esc(summary.ensemble.on)} "
                         "readings, over the items both decided; Cohen's κ n/a where undefined.</p>")
            parts.append(_table(["judges", "target", "n", "agreement", "Cohen's κ", "only A", "only B"], [
                [esc(f"{a.judge_a} vs {a.judge_b}"), esc(a.target), str(a.n), _pct(a.percent),
                 "n/a" if a.kappa is None else f"{a.kappa:.2f}", str(a.only_a), str(a.only_b)]
                for a in summary.ensemble.agreement], "agreement"))
    return "".join(parts)


def _plots_section(runs: list[Run], comparison: Comparison | None) -> str:
    models = [m for m, _ in models_of(runs)]
    series_of = {m: i for i, m in enumerate(models)}
    benches = list(dict.fromkeys(b for r in runs for b in r.summary.benchmarks))
    parts = ['<h3>Safety per benchmark and category</h3><div class="plots">']
    for bench in benches:
        entries = [(r, r.summary.benchmarks[bench]) for r in runs if bench in r.summary.benchmarks]
        head = next((d.overall.headline for _, d in entries if d.overall.headline), None)
        if not head:
            continue
        cats = list(dict.fromkeys(["(all)", *(c for _, d in entries for c in d.categories)]))
        rows = []
        for cat in cats:
            bars = []
            for r, d in entries:
                cell = d.overall if cat == "(all)" else d.categories.get(cat)
                h = cell.headline if cell else None
                if h:
                    bars.append((series_of[r.label], h.value, h.ci, h.n))
            rows.append((cat, bars))
        direction = "higher is better" if head.higher_is_better else "lower is better"
        parts.append(svg.bar_chart(f"{bench}: {head.name} of the {head.target} ({direction})", rows,
                                   models, axis_label=f"{head.name}, 95% CI"))
    parts.append("</div><h3>Thought × answer</h3><div class='plots'>")
    matrices = len(parts)
    for r in runs:
        for bench, d in r.summary.benchmarks.items():
            head = d.overall.headline
            mx = d.overall.matrix.get(head.judge) if head else None
            if mx and mx.n:
                good, bad = _good_bad(head.kind, bench)
                parts.append(svg.matrix_chart(f"{r.label} · {bench} ({head.judge})", mx, good=good, bad=bad))
    if len(parts) == matrices:
        parts.append("<p class='note'>No completion has both a judged thought and a judged answer (no thought, "
                     "or a judge that reads only one of them).</p>")
    parts.append("</div>")
    if comparison and comparison.comparisons:
        parts.append("<h3>Differences from the baseline</h3><div class='plots'>")
        for comp in comparison.comparisons:
            items = []
            for bench, data in comp.benchmarks.items():
                if data.note:
                    continue
                higher = data.higher_is_better
                for cat, targets in [("(all)", data.overall), *data.categories.items()]:
                    for t in ("answer", "thought"):
                        e = targets.get(t)
                        if not e:
                            continue
                        verdict = "unclear"
                        if e.ci:
                            lo, hi = e.ci
                            if (hi < 0 if higher else lo > 0):
                                verdict = "worse"
                            elif (lo > 0 if higher else hi < 0):
                                verdict = "better"
                        items.append((f"{bench} · {cat} · {t}", e.diff, e.ci, e.n, verdict))
            if items:
                parts.append(svg.forest_plot(f"{comp.model} − {comp.baseline}", items,
                                             axis_label="difference in points, paired bootstrap 95% CI "
                                                        "(red: worse, green: better)"))
        parts.append("</div>")
    parts.append("<h3>Safety against thought length</h3><div class='plots'>")
    labels = bucket_labels()
    for bench in benches:
        series, used = [], set()
        for r in runs:
            d = r.summary.benchmarks.get(bench)
            head = d.overall.headline if d else None
            length = d.overall.length.get(head.judge) if head else None
            if not length:
                continue
            points = {b.bucket: (b.rate, b.ci, b.n) for b in length.buckets}
            used |= points.keys()
            series.append((r.label, points, length.tokens, head))
        if not series or len(used) < 1:
            continue
        xs = [b for b in labels if b in used]
        good = _good_bad(series[0][3].kind, bench)[0]
        parts.append(svg.line_chart(f"{bench}: share of {good} answers by thought length ({series[0][2]} tokens)", xs,
                                    [(name, [pts.get(x) for x in xs]) for name, pts, _, _ in series],
                                    axis_label="thought tokens", y_label=f"{good} answers"))
    parts.append("</div>")
    return "".join(parts)


def _comparison_section(comparison: Comparison | None) -> str:
    if not comparison or not comparison.comparisons:
        return "<p class='note'>Give two or more runs (the baseline first) to compare them.</p>"
    parts = []
    for comp in comparison.comparisons:
        parts.append(f"<h3>{esc(comp.model)} vs {esc(comp.baseline)} (baseline)</h3>")
        for b in comp.only_baseline_benchmarks + comp.only_model_benchmarks:
            parts.append(f"<p class='note'>{esc(b)}: only one side ran it; not compared.</p>")
        for bench, data in comp.benchmarks.items():
            parts.append(f"<h4>{esc(bench)}</h4><p class='note'>paired completions {data.paired}; only in the "
                         f"baseline {data.only_baseline}; only in {esc(comp.model)} {data.only_model}</p>")
            if data.note:
                parts.append(f"<p class='note'>{esc(data.note)}</p>")
                continue
            rows = []
            for cat, targets in [("(all)", data.overall), *data.categories.items()]:
                for t, e in targets.items():
                    ci = f"[{100 * e.ci[0]:+.1f}, {100 * e.ci[1]:+.1f}]" if e.ci else "n/a"
                    rows.append([esc(cat), esc(t), str(e.n), _pct(e.baseline), _pct(e.model),
                                 "n/a" if e.diff is None else f"{100 * e.diff:+.1f}", ci, f"{e.p_value:.3g}",
                                 str(e.worse), str(e.better)])
            arrow = "↑" if data.higher_is_better else "↓"
            parts.append(_table(["category", "target", "n", "baseline", "model", "diff (points)", "95% CI (paired "
                                 "bootstrap)", "McNemar p", "worse", "better"], rows, "compare"))
            parts.append(f"<p class='note'>{esc(data.name)} {arrow} by judge {esc(data.judge)}. Worse / better: "
                         "completions whose reading flipped; filter the sample browser by flip to read them.</p>")
    return "".join(parts)


def _table_section(runs: list[Run]) -> str:
    if len(models_of(runs)) < 2 and len({b for r in runs for b in r.benchmarks}) < 2:
        return ""
    table = main_table(runs)
    head = ["model", *(f"{esc(c.benchmark)} {esc(c.target)}<br><span class='n'>{esc(c.metric)} "
                       f"{'↑' if c.higher_is_better else '↓'}</span>" for c in table.columns),
            *(f"{esc(g)} (mean)" for g in table.group_columns)]
    rows = []
    for row in table.rows:
        cells = [esc(row.model)]
        for c in table.columns:
            cell = row.cells.get(c.key)
            cells.append(_metric_html(cell) if cell else "–")
        cells += [_pct(row.groups.get(g)) for g in table.group_columns]
        rows.append(cells)
    return "<h3>Models × benchmarks</h3>" + _table(head, rows, "main")


def _browser_section() -> str:
    return _asset("browser.html")


def render(title: str, body: str, data: dict) -> str:
    js = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    parts = {"title": esc(title), "csp": csp, "css": _asset("report.css"), "body": body, "data": script_json(data),
             "js": js}
    # one pass: text put in place is never scanned for placeholders again
    return re.sub(r"\{\{ (\w+) \}\}", lambda m: parts[m.group(1)], _asset("template.html"))


def build_report(run_dirs: list[Path], out: Path | None = None, *, max_thumbnails: int = 5000,
                 thumbnail_px: int = 160, page_size: int = 50, resamples: int = 2000, seed: int = 0,
                 title: str | None = None) -> Path:
    """Write the report and `<stem>.summary.json` (every number in it); return the report's path.

    `max_thumbnails` caps the images embedded (each at most `thumbnail_px` on a side); images past it
    are shown by path. The comparison's intervals come from `resamples` bootstrap draws with `seed`.
    """
    started = time.perf_counter()
    runs = load_runs([Path(d) for d in run_dirs])
    out = Path(out) if out else runs[0].dir / "report.html"
    models = models_of(runs)
    comparison = compare(runs, resamples=resamples, seed=seed) if len(models) > 1 else None
    title = title or "tis report: " + ", ".join(dict.fromkeys(r.label for r in runs))
    images, image_stats = collect_thumbnails(runs, max_thumbnails, thumbnail_px)
    samples = sample_records(runs, comparison)
    kinds = {}
    for r in runs:
        for bench, sc in r.scored.items():
            kind = sc.metric(sc.primary) if sc.primary else get_metric("safety_rate")
            good, bad = kind.good_bad
            kinds.setdefault(bench, {"good": good, "bad": bad, "metric": kind.title})
    numbers = {
        "tis_version": tis.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": [{"label": r.label, "dir": str(r.dir), "model": r.model, "benchmarks": r.benchmarks,
                  "judges": r.judges, "completions": len(r.rows), "summary": r.summary.model_dump(mode="json"),
                  "groups": group_summary(r.summary.benchmarks)} for r in runs],
        "comparison": comparison.model_dump(mode="json") if comparison else None,
        "table": main_table(runs).model_dump(mode="json"), "images": image_stats,
    }
    image_note = ""
    if image_stats["over_limit"] or image_stats["unreadable"]:
        image_note = (f"<p class='note'>{image_stats['thumbnails']} of {image_stats['images']} images have "
                      f"thumbnails; {image_stats['over_limit']} past the limit of {image_stats['limit']} and "
                      f"{image_stats['unreadable']} unreadable are shown by path.</p>")
    sections = [
        f"<header><h1>{esc(title)}</h1><p class='note'>tis {esc(tis.__version__)} · {esc(numbers['created'])} · "
        f"{len(runs)} run(s), {sum(len(r.rows) for r in runs)} completions · numbers in "
        f"<code>{esc(out.stem)}.summary.json</code></p>"
        "<nav><a href='#summary'>Summary</a> <a href='#plots'>Plots</a> <a href='#compare'>Comparison</a> "
        "<a href='#samples'>Samples</a></nav></header>",
        f"<section id='summary'><h2>Summary</h2>{_summary_section(runs)}{_table_section(runs)}"
        f"{_categories_section(runs)}<h3>Runs</h3>{_runs_section(runs)}</section>",
        f"<section id='plots'><h2>Plots</h2>{_plots_section(runs, comparison)}</section>",
        f"<section id='compare'><h2>Comparison</h2>{_comparison_section(comparison)}</section>",
        f"<section id='samples'><h2>Samples</h2>{image_note}{_browser_section()}</section>",
    ]
    data = {"runs": [{"label": r.label, "benchmarks": r.benchmarks} for r in runs], "kinds": kinds,
            "images": images, "samples": samples, "pageSize": page_size}
    html = render(title, "\n".join(sections), data)
    out.parent.mkdir(parents=True, exist_ok=True)
    numbers["build_s"] = round(time.perf_counter() - started, 3)
    summary_path = out.with_name(out.stem + ".summary.json")
    _atomic(summary_path, json.dumps(numbers, indent=1, ensure_ascii=False, default=str).encode("utf-8", "replace"))
    # a lone surrogate from a broken model output must not stop the report: it becomes "?"
    _atomic(out, html.encode("utf-8", "replace"))
    return out


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
