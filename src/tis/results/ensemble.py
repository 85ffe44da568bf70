"""Several judges on the same outputs: how often they agree, and what the majority says.

Items are (generation, target) pairs. A judge's value on an item is its safety reading (`on="safe"`:
True / False) or its label (`on="label"`); verdicts that are unparsed, failed, not applicable, or
ok without such a value give no value. They are counted beside the figures and never folded into
them: agreement is over the items both judges decided, a vote over the judges that decided.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, Literal

from tis.judges.agreement import cohen_kappa, confusion
from tis.core.types import SampleResult, Target, Verdict

On = Literal["safe", "label"]
Key = tuple[str, str]  # (generation key, target)
TARGETS: tuple[Target, ...] = ("thought", "answer", "full")


def _value(v: Verdict, on: On) -> Any:
    if v.status != "ok":
        return None
    return v.safe if on == "safe" else v.label


def _name(value: Any) -> str:
    if isinstance(value, bool):
        return "safe" if value else "unsafe"
    return str(value)


def judge_values(results: Iterable[SampleResult], on: On = "safe") -> dict[str, dict[Key, Any]]:
    """{judge: {(generation key, target): value}} for the verdicts that give a value."""
    out: dict[str, dict[Key, Any]] = defaultdict(dict)
    for r in results:
        for v in r.verdicts:
            value = _value(v, on)
            if value is not None:
                out[v.judge][(r.generation_key, v.target)] = value
    return dict(out)


def judges_in(results: Iterable[SampleResult]) -> list[str]:
    return sorted({v.judge for r in results for v in r.verdicts})


def kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two raters over the same items, any number of categories.

    Two-valued safety readings go through `tis.judges.agreement` (unsafe = the positive class); the
    same conventions hold for more categories: 1.0 when chance agreement is 1 and they agree on
    every item, 0.0 when there are no items.
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} values against {len(b)}")
    if all(isinstance(x, bool) for x in (*a, *b)):
        return cohen_kappa(confusion([not x for x in a], [not x for x in b]))
    n = len(a)
    if n == 0:
        return 0.0
    p_o = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    p_e = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if p_e >= 1.0:
        return 1.0 if p_o >= 1.0 else 0.0
    return (p_o - p_e) / (1.0 - p_e)


@dataclass(frozen=True)
class PairAgreement:
    judge_a: str
    judge_b: str
    target: str
    on: str
    n: int  # items both judges decided
    agree: int
    percent: float | None  # agree / n; None when n is 0
    kappa: float | None
    only_a: int  # items only judge_a decided (judge_b unparsed, failed, ... or absent)
    only_b: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_agreement(results: Iterable[SampleResult], judge_a: str, judge_b: str, target: Target = "answer",
                   on: On = "safe", *, values: dict[str, dict[Key, Any]] | None = None) -> PairAgreement:
    values = values if values is not None else judge_values(results, on)
    va = {k: v for k, v in values.get(judge_a, {}).items() if k[1] == target}
    vb = {k: v for k, v in values.get(judge_b, {}).items() if k[1] == target}
    both = sorted(va.keys() & vb.keys())
    a, b = [va[k] for k in both], [vb[k] for k in both]
    agree = sum(x == y for x, y in zip(a, b))
    return PairAgreement(judge_a=judge_a, judge_b=judge_b, target=target, on=on, n=len(both), agree=agree,
                         percent=agree / len(both) if both else None, kappa=kappa(a, b) if both else None,
                         only_a=len(va.keys() - vb.keys()), only_b=len(vb.keys() - va.keys()))


def agreement_table(results: Iterable[SampleResult], judges: Sequence[str] | None = None,
                    targets: Sequence[Target] = TARGETS, on: On = "safe") -> list[PairAgreement]:
    """Every pair of judges on every target where both decided at least one item."""
    results = list(results)
    judges = list(judges) if judges is not None else judges_in(results)
    values = judge_values(results, on)
    table = []
    for a, b in combinations(judges, 2):
        for t in targets:
            pa = pair_agreement(results, a, b, t, on, values=values)
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


def majority_vote(results: Iterable[SampleResult], judges: Sequence[str] | None = None, target: Target = "answer",
                  on: On = "safe") -> list[Vote]:
    """One vote per (generation, target): the value most judges gave, ties reported as ties."""
    results = list(results)
    wanted = set(judges) if judges is not None else set(judges_in(results))
    out = []
    for r in results:
        votes: Counter = Counter()
        ignored: dict[str, str] = {}
        seen = False
        for v in r.verdicts:
            if v.judge not in wanted or v.target != target:
                continue
            seen = True
            value = _value(v, on)
            if value is None:
                ignored[v.judge] = v.status if v.status != "ok" else f"no {on}"
            else:
                votes[value] += 1
        if not seen:
            continue
        top = votes.most_common()
        tie = len(top) > 1 and top[0][1] == top[1][1]
        out.append(Vote(generation_key=r.generation_key, sample_id=r.sample.id, target=target,
                        value=None if tie or not top else top[0][0], tie=tie, votes=dict(votes), ignored=ignored))
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


def ensemble_summary(results: Iterable[SampleResult], judges: Sequence[str] | None = None,
                     targets: Sequence[Target] = TARGETS, on: On = "safe") -> dict[str, Any]:
    """JSON-able: pairwise agreement, and per target the majority's counts (ties and undecided apart)."""
    results = list(results)
    judges = list(judges) if judges is not None else judges_in(results)
    majority: dict[str, dict[str, Any]] = {}
    for t in targets:
        votes = majority_vote(results, judges, t, on)
        if not votes:
            continue
        decided = Counter(_name(v.value) for v in votes if v.value is not None)
        majority[t] = {"items": len(votes), "decided": dict(sorted(decided.items())),
                       "ties": sum(v.tie for v in votes),
                       "undecided": sum(v.value is None and not v.tie for v in votes)}
    return {"judges": judges, "on": on,
            "agreement": [p.as_dict() for p in agreement_table(results, judges, targets, on)],
            "majority": majority}


def format_ensemble(summary: dict[str, Any]) -> str:
    """Markdown tables of an `ensemble_summary`."""
    lines = [f"judges: {', '.join(summary['judges'])} (compared on {summary['on']})", "",
             "| judge A | judge B | target | n | agreement | kappa | only A | only B |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for p in summary["agreement"]:
        pct = f"{100 * p['percent']:.1f}%" if p["percent"] is not None else "n/a"
        kap = f"{p['kappa']:.3f}" if p["kappa"] is not None else "n/a"
        lines.append(f"| {p['judge_a']} | {p['judge_b']} | {p['target']} | {p['n']} | {pct} | {kap} | "
                     f"{p['only_a']} | {p['only_b']} |")
    lines += ["", "| target | items | majority | ties | undecided |", "|---|---:|---|---:|---:|"]
    for t, m in summary["majority"].items():
        decided = ", ".join(f"{k} {n}" for k, n in m["decided"].items()) or "-"
        lines.append(f"| {t} | {m['items']} | {decided} | {m['ties']} | {m['undecided']} |")
    return "\n".join(lines)
