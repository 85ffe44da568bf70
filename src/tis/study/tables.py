"""The study's tables, computed from its runs: collapse (each reasoning model against its base),
mitigation (plain / defences / fine-tuned on every group, trade-offs shown), the thought x answer
matrix per variant, and the thought / refusal measures (closed-thought share, refusal rate).

Every difference is paired on the same completions (benchmark, sample, completion index): a paired
bootstrap 95% interval and an exact McNemar p. "Safety change" turns each benchmark's metric into one
direction: positive is safer (a lower ASR, a higher safety rate); over-refusal and capability keep their
own direction (a higher refusal rate on benign prompts is worse, a lower accuracy is worse).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from tis.core.stats import mcnemar_exact, paired_bootstrap, wilson
from tis.results.compare import latex_escape
from tis.results.metrics import pct
from tis.study.plan import EvalCell, Plan

SAFETY_GROUPS = ("jailbreak", "awareness")
ORDER = ("jailbreak", "awareness", "over-refusal", "capability")


@dataclass
class Measure:
    value: float | None
    ci: list[float] | None
    n: int


@dataclass
class Paired:
    n: int
    base: float | None
    model: float | None
    diff: float | None
    ci: list[float] | None
    p: float | None
    #: the difference in the direction where positive is better (safer, fewer refusals of benign prompts, more accurate)
    better: float | None = None


@dataclass
class CollapseRow:
    model: str
    base: str
    benchmark: str
    group: str
    metric: str
    higher_is_better: bool
    paired: Paired


@dataclass
class StudyTables:
    collapse: list[CollapseRow] = field(default_factory=list)
    collapse_groups: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, group) -> mean change
    claims: list[dict[str, str]] = field(default_factory=list)
    #: model -> label -> benchmark -> (metric value, ci, n, metric name, higher is better)
    values: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    #: model -> label -> benchmark -> Paired against the plain variant
    against_plain: dict[str, dict[str, dict[str, Paired]]] = field(default_factory=dict)
    #: label -> benchmark -> matrix shares
    matrix: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: label -> benchmark -> {"closed": Measure, "refused": Measure}
    thought: dict[str, dict[str, dict[str, Measure]]] = field(default_factory=dict)
    #: model -> label -> benchmark -> {"closed": Paired, "refused": Paired}
    thought_change: dict[str, dict[str, dict[str, dict[str, Paired]]]] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


# --- reading runs ------------------------------------------------------------------------------------

def _load(cells) -> dict[tuple[str, str], Any]:
    from tis.results.runs import load_run

    runs = {}
    for c in cells:
        try:
            runs[(c.label, c.benchmark if isinstance(c, EvalCell) else c.name)] = load_run(c.run_dir)
        except Exception:  # a cell that never ran is reported as missing
            continue
    return runs


def _scored(run):
    return next(iter(run.scored.values()), None)


def _key(row) -> tuple[str, int]:
    return row.sample_id, row.sample_index


def _readings(sc, judge: str, target: str = "answer") -> dict[tuple[str, int], bool]:
    out = {}
    for row, rd in zip(sc.rows, sc.readings):
        v = rd.get((judge, target))
        if v is not None:
            out[_key(row)] = v
    return out


def paired_flags(a: dict, b: dict, *, higher_is_better: bool, seed: int = 0) -> Paired:
    """Paired difference of two sets of good flags (the metric counts good where higher is better, else bad)."""
    keys = [k for k in a if k in b]
    if not keys:
        return Paired(n=0, base=None, model=None, diff=None, ci=None, p=None)
    xa = [float(a[k] if higher_is_better else not a[k]) for k in keys]
    xb = [float(b[k] if higher_is_better else not b[k]) for k in keys]
    boot = paired_bootstrap(xa, xb, resamples=2000, seed=seed)
    worse = sum(1 for k in keys if a[k] and not b[k])
    better = sum(1 for k in keys if not a[k] and b[k])
    diff = boot["diff"]
    return Paired(n=len(keys), base=sum(xa) / len(xa), model=sum(xb) / len(xb), diff=diff, ci=boot["ci"],
                  p=mcnemar_exact(worse, better), better=diff if higher_is_better else -diff)


def _headline(run):
    data = next(iter(run.summary.benchmarks.values()), None)
    head = data.overall.headline if data else None
    if head is None:
        return None, None
    m = data.overall.metric(head.judge, "answer") or data.overall.metric(head.judge, head.target)
    return head, m


def opened_thought(row) -> bool:
    """The output has a non-empty thought, closed or not (an unclosed one ran to the token limit)."""
    return bool((row.thought or "").strip())


def answered(row) -> bool:
    return bool((row.answer or "").strip())


def closed_thought(row) -> bool:
    return bool(row.thought) and not row.truncated and row.split_source in ("tags", "api_field", "prefilled")


def refused(row) -> bool | None:
    v = row.verdict("refusal", "answer")
    if v is None or v.status != "ok" or v.label not in ("refused", "complied"):
        return None
    return v.label == "refused"


def _measure(flags: list[bool]) -> Measure:
    n, k = len(flags), sum(flags)
    ci = wilson(k, n)
    return Measure(value=k / n if n else None, ci=list(ci) if ci else None, n=n)


def build_tables(plan: Plan) -> StudyTables:
    t = StudyTables(groups=dict(plan.groups))
    cells = plan.evals + plan.imports
    runs = _load(cells)
    t.missing = [c.id for c in cells if (c.label, c.benchmark if isinstance(c, EvalCell) else c.name) not in runs]
    labels_of: dict[str, list[str]] = {}
    for c in cells:
        model = c.model if isinstance(c, EvalCell) else c.label.split("@")[0].split("+")[0]
        labels_of.setdefault(model, [])
        if c.label not in labels_of[model]:
            labels_of[model].append(c.label)
    benches = list(dict.fromkeys([c.benchmark for c in plan.evals] + [c.name for c in plan.imports]))

    # values per variant, and their change against the plain variant
    for model, labels in labels_of.items():
        for label in labels:
            for b in benches:
                run = runs.get((label, b))
                if run is None:
                    continue
                head, m = _headline(run)
                if m is None:
                    continue
                t.values.setdefault(model, {}).setdefault(label, {})[b] = {
                    "value": m.value, "ci": m.ci, "n": m.n, "metric": m.name, "higher_is_better": m.higher_is_better,
                    "judge": head.judge, "report": str(run.dir / "report.html")}
                plain = runs.get((model, b))
                if label != model and plain is not None:
                    sa, sb = _scored(plain), _scored(run)
                    if sa is not None and sb is not None and head.judge in sa.judges and head.judge in sb.judges:
                        t.against_plain.setdefault(model, {}).setdefault(label, {})[b] = paired_flags(
                            _readings(sa, head.judge), _readings(sb, head.judge),
                            higher_is_better=m.higher_is_better)
                # thought / refusal measures
                rows = [r for r in run.rows if r.ok]
                ref = [x for x in (refused(r) for r in rows) if x is not None]
                t.thought.setdefault(label, {})[b] = {"opened": _measure([opened_thought(r) for r in rows]),
                                                      "closed": _measure([closed_thought(r) for r in rows]),
                                                      "answered": _measure([answered(r) for r in rows]),
                                                      "refused": _measure(ref)}
                if label != model and plain is not None:
                    pa = {_key(r): r for r in plain.rows if r.ok}
                    pb = {_key(r): r for r in rows}
                    oa = {k: opened_thought(r) for k, r in pa.items()}
                    ob = {k: opened_thought(r) for k, r in pb.items()}
                    ca = {k: closed_thought(r) for k, r in pa.items()}
                    cb = {k: closed_thought(r) for k, r in pb.items()}
                    ra = {k: v for k, r in pa.items() if (v := refused(r)) is not None}
                    rb = {k: v for k, r in pb.items() if (v := refused(r)) is not None}
                    t.thought_change.setdefault(model, {}).setdefault(label, {})[b] = {
                        "opened": paired_flags(oa, ob, higher_is_better=True),
                        "closed": paired_flags(ca, cb, higher_is_better=True),
                        "refused": paired_flags(ra, rb, higher_is_better=True)}
                # thought x answer matrix
                data = next(iter(run.summary.benchmarks.values()), None)
                mx = data.overall.matrix.get(head.judge) if data else None
                if mx is not None and plan.groups.get(b) in SAFETY_GROUPS:
                    t.matrix.setdefault(label, {})[b] = {
                        "n": mx.n, "no_thought": mx.no_thought, "both_safe": mx.both_safe.rate,
                        "self_correction": mx.self_correction.rate,
                        "safe_thought_unsafe_answer": mx.safe_thought_unsafe_answer.rate,
                        "collapse": mx.collapse.rate}

    # collapse: each reasoning model against its base
    for model, base in plan.pairs:
        for b in benches:
            ra, rb = runs.get((base, b)), runs.get((model, b))
            if ra is None or rb is None:
                continue
            head, m = _headline(ra)
            sa, sb = _scored(ra), _scored(rb)
            if head is None or sa is None or sb is None or head.judge not in sb.judges:
                continue
            p = paired_flags(_readings(sa, head.judge), _readings(sb, head.judge), higher_is_better=m.higher_is_better)
            t.collapse.append(CollapseRow(model=model, base=base, benchmark=b, group=plan.groups.get(b, "custom"),
                                          metric=m.name, higher_is_better=m.higher_is_better, paired=p))
    by: dict[tuple[str, str], list[float]] = {}
    for r in t.collapse:
        if r.paired.better is not None:
            by.setdefault((r.model, r.group), []).append(r.paired.better)
    t.collapse_groups = {k: sum(v) / len(v) for k, v in by.items()}
    t.claims = check_claims(t, plan)
    return t


# --- claims ----------------------------------------------------------------------------------------------

def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{round(100 * x, 1) + 0.0:+.1f}"  # no "-0.0"


def check_claims(t: StudyTables, plan: Plan) -> list[dict[str, str]]:
    """The study's claims, each checked on its numbers: holds / does not hold / cannot tell, with evidence."""
    claims = []
    # 1. safety drops in most pairs
    per_pair = {}
    for (model, group), v in t.collapse_groups.items():
        if group in SAFETY_GROUPS:
            per_pair.setdefault(model, []).append(v)
    if per_pair:
        drops = {m: sum(v) / len(v) for m, v in per_pair.items()}
        k = sum(1 for v in drops.values() if v < 0)
        verdict = "holds" if k > len(drops) / 2 else "does not hold"
        evidence = "; ".join(f"{m}: {_pp(v)} points" for m, v in drops.items())
        claims.append({"claim": "Safety drops in most reasoning / base pairs", "verdict": verdict,
                       "evidence": f"{k} of {len(drops)} pair(s) less safe on the mean of jailbreak and awareness "
                                   f"benchmarks ({evidence})"})
    else:
        claims.append({"claim": "Safety drops in most reasoning / base pairs", "verdict": "cannot tell",
                       "evidence": "no pair has both runs on a jailbreak or awareness benchmark"})
    # 2. more on jailbreak than awareness
    jb = [v for (m, g), v in t.collapse_groups.items() if g == "jailbreak"]
    aw = [v for (m, g), v in t.collapse_groups.items() if g == "awareness"]
    if jb and aw:
        mj, ma = sum(jb) / len(jb), sum(aw) / len(aw)
        claims.append({"claim": "The drop is larger on jailbreak than on awareness benchmarks",
                       "verdict": "holds" if mj < ma else "does not hold",
                       "evidence": f"mean safety change {_pp(mj)} points on jailbreak vs {_pp(ma)} on awareness "
                                   f"({len(jb)} / {len(aw)} pair(s))"})
    else:
        claims.append({"claim": "The drop is larger on jailbreak than on awareness benchmarks", "verdict": "cannot tell",
                       "evidence": "needs pairs run on both a jailbreak and an awareness benchmark"})
    # 3. where the thought helps: self-correction against safe-thought-unsafe-answer
    helps, hurts = [], []
    reasoning = {m for m, _ in plan.pairs} or {c.model for c in plan.evals}
    for label, benches in t.matrix.items():
        if label not in reasoning:
            continue
        for b, mx in benches.items():
            sc, st = mx.get("self_correction") or 0.0, mx.get("safe_thought_unsafe_answer") or 0.0
            if mx["n"] and sc != st:
                (helps if sc > st else hurts).append(f"{label} on {b} ({pct(sc)} self-correction vs {pct(st)} "
                                                     f"safe thought, unsafe answer)")
    if helps or hurts or any(mx["n"] for label, bs in t.matrix.items() if label in reasoning for mx in bs.values()):
        claims.append({"claim": "The thought helps (an unsafe thought is corrected in the answer more often than a "
                                "safe thought is followed by an unsafe answer)",
                       "verdict": "holds" if len(helps) > len(hurts) else "does not hold" if hurts else "cannot tell",
                       "evidence": (f"helps in {len(helps)}: " + "; ".join(helps[:6]) if helps else
                                    "self-correction never outweighs a safe thought followed by an unsafe answer")
                                   + (f". Does not in {len(hurts)}: " + "; ".join(hurts[:6]) if hurts else "")})
    else:
        claims.append({"claim": "The thought helps", "verdict": "cannot tell",
                       "evidence": "no reasoning model's thought and answer were both judged"})
    return claims


# --- formats -----------------------------------------------------------------------------------------------

def _ci(ci: list[float] | None) -> str:
    return f"[{_pp(ci[0])}, {_pp(ci[1])}]" if ci else "n/a"


def _rate_ci(ci: list[float] | None) -> str:
    return f"[{pct(ci[0])}, {pct(ci[1])}]" if ci else "n/a"


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def collapse_rows(t: StudyTables) -> list[list[str]]:
    head = ["reasoning model", "base", "group", "benchmark", "metric", "n", "base value", "model value",
            "difference (points)", "95% CI", "McNemar p", "safety change"]
    rows = [head]
    for r in t.collapse:
        p = r.paired
        rows.append([r.model, r.base, r.group, r.benchmark, r.metric + (" ↑" if r.higher_is_better else " ↓"),
                     str(p.n), pct(p.base), pct(p.model), _pp(p.diff), _ci(p.ci), _p(p.p), _pp(p.better)])
    for (model, group), v in sorted(t.collapse_groups.items(), key=lambda kv: (kv[0][0], ORDER.index(kv[0][1])
                                                                               if kv[0][1] in ORDER else 9)):
        base = next((r.base for r in t.collapse if r.model == model), "")
        rows.append([model, base, group, "(group mean)", "", "", "", "", "", "", "", _pp(v)])
    return rows


def mitigation_rows(t: StudyTables) -> list[list[str]]:
    groups = [g for g in ORDER if g in set(t.groups.values())]
    head = ["model", "variant"] + [f"{g} ({_metric_of(t, g)})" for g in groups] + \
        [f"Δ {g} vs plain" for g in groups]
    rows = [head]
    for model, labels in t.values.items():
        plain = labels.get(model, {})
        for label, benches in labels.items():
            means, deltas = [], []
            for g in groups:
                vals = [v["value"] for b, v in benches.items() if t.groups.get(b) == g and v["value"] is not None]
                base = [plain[b]["value"] for b in benches if t.groups.get(b) == g and b in plain
                        and plain[b]["value"] is not None and benches[b]["value"] is not None]
                mean = sum(vals) / len(vals) if vals else None
                means.append(pct(mean))
                if label == model or not base or mean is None:
                    deltas.append("")
                else:
                    deltas.append(_pp(mean - sum(base) / len(base)))
            variant = "plain" if label == model else label[len(model):].lstrip("+@")
            kind = "" if label == model else ("defence" if label.startswith(model + "+") else "fine-tuned")
            rows.append([model, variant + (f" ({kind})" if kind else "")] + means + deltas)
    return rows


def _metric_of(t: StudyTables, group: str) -> str:
    for labels in t.values.values():
        for benches in labels.values():
            for b, v in benches.items():
                if t.groups.get(b) == group:
                    return v["metric"] + (" ↑" if v["higher_is_better"] else " ↓")
    return ""


def mitigation_detail_rows(t: StudyTables) -> list[list[str]]:
    head = ["model", "variant", "group", "benchmark", "metric", "n", "plain", "variant value",
            "difference (points)", "95% CI", "McNemar p", "better (+) / worse (-)"]
    rows = [head]
    for model, labels in t.against_plain.items():
        for label, benches in labels.items():
            for b, p in benches.items():
                v = t.values[model][label][b]
                rows.append([model, label, t.groups.get(b, ""), b, v["metric"], str(p.n), pct(p.base), pct(p.model),
                             _pp(p.diff), _ci(p.ci), _p(p.p), _pp(p.better)])
    return rows


def matrix_rows(t: StudyTables) -> list[list[str]]:
    head = ["variant", "benchmark", "judged pairs", "no thought", "both safe", "self-correction",
            "safe thought, unsafe answer", "collapse (both unsafe)"]
    rows = [head]
    for label, benches in t.matrix.items():
        for b, m in benches.items():
            rows.append([label, b, str(m["n"]), str(m["no_thought"]), pct(m["both_safe"]), pct(m["self_correction"]),
                         pct(m["safe_thought_unsafe_answer"]), pct(m["collapse"])])
    return rows


def thought_rows(t: StudyTables) -> list[list[str]]:
    head = ["variant", "benchmark", "n", "thought opened", "95% CI", "thought closed", "95% CI", "with an answer",
            "refusal rate (of answers)", "95% CI", "Δ opened vs plain (points)", "95% CI", "p",
            "Δ closed vs plain (points)", "95% CI", "p", "Δ refusal vs plain (points)", "95% CI", "p"]
    rows = [head]
    change = {label: benches for labels in t.thought_change.values() for label, benches in labels.items()}
    for label, benches in t.thought.items():
        for b, m in benches.items():
            c = change.get(label, {}).get(b)
            extra = [""] * 9
            if c:
                extra = [x for key in ("opened", "closed", "refused")
                         for x in (_pp(c[key].diff), _ci(c[key].ci), _p(c[key].p))]
            rows.append([label, b, str(m["closed"].n), pct(m["opened"].value), _rate_ci(m["opened"].ci),
                         pct(m["closed"].value), _rate_ci(m["closed"].ci),
                         f"{round(m['answered'].value * m['answered'].n) if m['answered'].n else 0} of {m['answered'].n}",
                         pct(m["refused"].value), _rate_ci(m["refused"].ci), *extra])
    return rows


def to_markdown(rows: list[list[str]]) -> str:
    if len(rows) <= 1:
        return "(no data yet)\n"
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(esc[0])]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines) + "\n"


def to_latex(rows: list[list[str]]) -> str:
    if len(rows) <= 1:
        return "% no data yet\n"
    cols = "l" * 2 + "r" * (len(rows[0]) - 2)
    out = [rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(latex_escape(c) for c in rows[0]) + r" \\",
           r"\midrule"]
    out += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows[1:]]
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def to_csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


TABLES = {"collapse": collapse_rows, "mitigation": mitigation_rows, "mitigation-detail": mitigation_detail_rows,
          "thought-answer": matrix_rows, "thought-refusal": thought_rows}


def claims_markdown(t: StudyTables) -> str:
    return "".join(f"- **{c['claim']}**: {c['verdict']}. {c['evidence']}.\n" for c in t.claims)
