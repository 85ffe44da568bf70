"""Several judges on the same outputs: how often they agree, and what the majority says.

Items are (generation, target) pairs. A judge's value on an item is its safety reading (`on="safe"`:
True / False) or its label (`on="label"`); verdicts that are unparsed, failed, not applicable, or
ok without such a value give no value. They are counted beside the figures and never folded into
them: agreement is over the items both judges decided, a vote over the judges that decided.

Kappa and the vote are `tis.core.stats.cohen_kappa` and `tis.core.stats.majority` (kappa None when
undefined, a tie never a majority). The run's agreement is computed here once, into summary.json's
`ensemble`, and every view (summary.md, the HTML report) shows that one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

from tis.core.stats import cohen_kappa, majority
from tis.core.types import Target, Verdict
from tis.results.schema import EnsembleSummary, MajorityCounts, PairAgreement, ResultRow, RowVerdict

On = Literal["safe", "label"]
Key = tuple[str, str]  # (generation key, target)
TARGETS: tuple[Target, ...] = ("thought", "answer", "full")


def _rows(results: Iterable[Any]) -> list[ResultRow]:
    from tis.results.metrics import as_row

    return [as_row(r) for r in results]


def _key(row: ResultRow) -> str:
    return row.generation_key or f"{row.benchmark}/{row.sample_id}#{row.sample_index}"


def _value(v: RowVerdict, on: On) -> Any:
    if v.status != "ok":
        return None
    return v.safe if on == "safe" else v.label


def _name(value: Any) -> str:
    if isinstance(value, bool):
        return "safe" if value else "unsafe"
    return str(value)


def judge_values(results: Iterable[Any], on: On = "safe") -> dict[str, dict[Key, Any]]:
    """{judge: {(generation key, target): value}} for the verdicts that give a value."""
    out: dict[str, dict[Key, Any]] = defaultdict(dict)
    for r in _rows(results):
        for judge, targets in r.verdicts.items():
            for target, v in targets.items():
                value = _value(v, on)
                if value is not None:
                    out[judge][(_key(r), target)] = value
    return dict(out)


def judges_in(results: Iterable[Any]) -> list[str]:
    return sorted({j for r in _rows(results) for j in r.verdicts})


def pair_agreement(results: Iterable[Any], judge_a: str, judge_b: str, target: Target = "answer",
                   on: On = "safe", *, values: dict[str, dict[Key, Any]] | None = None) -> PairAgreement:
    values = values if values is not None else judge_values(results, on)
    va = {k: v for k, v in values.get(judge_a, {}).items() if k[1] == target}
    vb = {k: v for k, v in values.get(judge_b, {}).items() if k[1] == target}
    both = sorted(va.keys() & vb.keys())
    a, b = [va[k] for k in both], [vb[k] for k in both]
    agree = sum(x == y for x, y in zip(a, b))
    return PairAgreement(judge_a=judge_a, judge_b=judge_b, target=target, on=on, n=len(both), agree=agree,
                         percent=agree / len(both) if both else None, kappa=cohen_kappa(a, b),
                         only_a=len(va.keys() - vb.keys()), only_b=len(vb.keys() - va.keys()))


def agreement_table(results: Iterable[Any], judges: Sequence[str] | None = None,
                    targets: Sequence[Target] = TARGETS, on: On = "safe") -> list[PairAgreement]:
    """Every pair of judges on every target where either decided at least one item."""
    rows = _rows(results)
    judges = list(judges) if judges is not None else judges_in(rows)
    values = judge_values(rows, on)
    table = []
    for a, b in combinations(judges, 2):
        for t in targets:
            pa = pair_agreement(rows, a, b, t, on, values=values)
            if pa.n or pa.only_a or pa.only_b:
                table.append(pa)
    return table


@dataclass(frozen=True)
class Vote:
    generation_key: str
    sample_id: str
    target: str
    value: Any  # the majority's value; None on a tie or when nobody decided
    tie: bool
    votes: dict[Any, int] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)  # judge -> why its verdict gave no vote


def majority_vote(results: Iterable[Any], judges: Sequence[str] | None = None, target: Target = "answer",
                  on: On = "safe") -> list[Vote]:
    """One vote per (generation, target): the value most judges gave, ties reported as ties."""
    rows = _rows(results)
    wanted = list(judges) if judges is not None else judges_in(rows)
    out = []
    for r in rows:
        given: list[Any] = []
        ignored: dict[str, str] = {}
        seen = False
        for judge in wanted:
            v = r.verdict(judge, target)
            if v is None:
                continue
            seen = True
            value = _value(v, on)
            if value is None:
                ignored[judge] = v.status if v.status != "ok" else f"no {on}"
            given.append(value)
        if not seen:
            continue
        m = majority(given)
        out.append(Vote(generation_key=_key(r), sample_id=r.sample_id, target=target, value=m.value, tie=m.tie,
                        votes=m.votes, ignored=ignored))
    return out


def majority_verdicts(votes: Iterable[Vote], on: On = "safe", judge_id: str = "majority") -> list[tuple[str, Verdict]]:
    """The votes as verdicts of a `majority` pseudo-judge, by generation key. A tie or a vote with no
    voter is `unparsed` (undecided), never safe."""
    out = []
    for vote in votes:
        target: Target = vote.target  # type: ignore[assignment]
        shown = ", ".join(f"{_name(k)}: {n}" for k, n in sorted(vote.votes.items(), key=lambda kv: _name(kv[0])))
        if vote.value is None:
            why = f"tie ({shown})" if vote.tie else "no judge decided"
            verdict = Verdict(judge=judge_id, target=target, status="unparsed", rationale=why, error=why)
        elif on == "safe":
            verdict = Verdict(judge=judge_id, target=target, label="safe" if vote.value else "unsafe",
                              safe=bool(vote.value), rationale=f"majority of {shown}")
        else:
            verdict = Verdict(judge=judge_id, target=target, label=str(vote.value), rationale=f"majority of {shown}")
        out.append((vote.generation_key, verdict))
    return out


def ensemble_summary(results: Iterable[Any], judges: Sequence[str] | None = None,
                     targets: Sequence[Target] = TARGETS, on: On = "safe") -> EnsembleSummary:
    """Pairwise agreement, and per target the majority's counts (ties and undecided apart)."""
    rows = _rows(results)
    judges = list(judges) if judges is not None else judges_in(rows)
    counts: dict[str, MajorityCounts] = {}
    for t in targets:
        votes = majority_vote(rows, judges, t, on)
        if not votes:
            continue
        decided = Counter(_name(v.value) for v in votes if v.value is not None)
        counts[t] = MajorityCounts(items=len(votes), decided=dict(sorted(decided.items())),
                                   ties=sum(v.tie for v in votes),
                                   undecided=sum(v.value is None and not v.tie for v in votes))
    return EnsembleSummary(judges=judges, on=on, agreement=agreement_table(rows, judges, targets, on), majority=counts)


def format_ensemble(summary: EnsembleSummary) -> str:
    """Markdown tables of an `ensemble_summary`."""
    lines = [f"judges: {', '.join(summary.judges)} (compared on {summary.on})", "",
             "| judge A | judge B | target | n | agreement | kappa | only A | only B |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for p in summary.agreement:
        pct = f"{100 * p.percent:.1f}%" if p.percent is not None else "n/a"
        kap = f"{p.kappa:.3f}" if p.kappa is not None else "n/a"
        lines.append(f"| {p.judge_a} | {p.judge_b} | {p.target} | {p.n} | {pct} | {kap} | {p.only_a} | {p.only_b} |")
    lines += ["", "| target | items | majority | ties | undecided |", "|---|---:|---|---:|---:|"]
    for t, m in summary.majority.items():
        decided = ", ".join(f"{k} {n}" for k, n in m.decided.items()) or "-"
        lines.append(f"| {t} | {m.items} | {decided} | {m.ties} | {m.undecided} |")
    return "\n".join(lines)
