"""The reference judge: general capability without a new framework. It scores an answer against the
item's reference answer (`sample.meta["reference"]`) by exact, multiple-choice or yes/no match, the
way ScienceQA-, POPE- and MathVista-style sets are scored. Labels: correct / incorrect (metric kind
`accuracy`). A score another harness already gave (`meta["harness_score"]`, imported from lmms-eval
or VLMEvalKit) is taken as it is.

An answer in which no choice / no yes-or-no can be found is incorrect (its rationale says so), as
those benchmarks' own scorers count it.
"""

from __future__ import annotations

import re
import string
from typing import Any

from tis.core.types import Generation, Sample, Target, Verdict
from tis.judges.base import Judge

SCORINGS = ("exact", "multiple_choice", "yes_no")
LETTERS = string.ascii_uppercase
_ANSWER_IS = re.compile(r"(?:final\s+answer|answer)\s*(?:is|:)\s*[:\-]?\s*(.+)", re.IGNORECASE)
_PUNCT = re.compile(r"[\s" + re.escape(string.punctuation) + r"]+")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


def normalise(text: str) -> str:
    text = text.strip().lower()
    text = re.sub(r"^(the\s+)?(final\s+)?answer\s*(is|:)\s*", "", text)
    text = re.sub(r"^(a|an|the)\s+", "", text)
    return _PUNCT.sub(" ", text).strip()


def _last_answer(text: str) -> str:
    """The text after the last 'answer is' / 'answer:', else the whole text."""
    found = _ANSWER_IS.findall(text)
    return found[-1] if found else text


def _same_number(a: str, b: str) -> bool:
    a, b = a.replace(",", ""), b.replace(",", "")
    if _NUMBER.match(a) and _NUMBER.match(b):
        return abs(float(a) - float(b)) < 1e-6 * max(1.0, abs(float(b)))
    return False


def score_exact(prediction: str, reference: str) -> tuple[bool, str]:
    ref = normalise(reference)
    for cand in (prediction, _last_answer(prediction), prediction.strip().splitlines()[-1] if prediction.strip() else ""):
        got = normalise(cand)
        if got == ref or _same_number(got, ref):
            return True, f"matches the reference {reference!r}"
    numbers = re.findall(r"-?\d+(?:\.\d+)?", _last_answer(prediction).replace(",", ""))
    if numbers and _same_number(numbers[-1], ref):
        return True, f"its last number matches the reference {reference!r}"
    return False, f"does not match the reference {reference!r}"


def choice_letter(prediction: str, choices: list[str]) -> str | None:
    """The choice a prediction picks: a letter ('(B)', 'B.', 'answer is B', a lone 'B') or a choice's text."""
    letters = LETTERS[:len(choices)] if choices else LETTERS[:5]
    text = _last_answer(prediction).strip()
    pats = [rf"^\(?([{letters}])\)?(?:[.:)\s]|$)", rf"\(([{letters}])\)", rf"\b(?:option|choice)\s+([{letters}])\b",
            rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])"]
    for pat in pats:
        m = re.search(pat, text)
        if m:
            return m.group(1)
    low = normalise(prediction)
    hits = [LETTERS[i] for i, c in enumerate(choices) if normalise(str(c)) and normalise(str(c)) in low]
    return hits[0] if len(hits) == 1 else None


def score_multiple_choice(prediction: str, reference: str, choices: list[str]) -> tuple[bool, str]:
    ref = reference.strip()
    if len(ref) > 1 or ref.upper() not in LETTERS:
        ref_letter = next((LETTERS[i] for i, c in enumerate(choices) if normalise(str(c)) == normalise(ref)), None)
        if ref_letter is None:
            ref_letter = ref.strip("() .").upper()[:1]
    else:
        ref_letter = ref.upper()
    got = choice_letter(prediction, choices)
    if got is None:
        return False, "no choice found in the answer"
    return got == ref_letter, f"chose {got}, the reference is {ref_letter}"


def yes_no(prediction: str) -> str | None:
    m = re.search(r"\b(yes|no)\b", _last_answer(prediction), re.IGNORECASE) or \
        re.search(r"\b(yes|no)\b", prediction, re.IGNORECASE)
    return m.group(1).lower() if m else None


def score_yes_no(prediction: str, reference: str) -> tuple[bool, str]:
    got = yes_no(prediction)
    ref = normalise(reference)
    if got is None:
        return False, "no yes or no found in the answer"
    return got == ref, f"answered {got}, the reference is {ref}"


def infer_scoring(reference: str, choices: list[str] | None) -> str:
    if choices:
        return "multiple_choice"
    if normalise(reference) in ("yes", "no"):
        return "yes_no"
    return "exact"


def score(prediction: str, reference: str, *, scoring: str = "auto", choices: list[str] | None = None) -> tuple[bool, str]:
    """(correct, why) for one prediction."""
    scoring = infer_scoring(reference, choices) if scoring in ("auto", None) else scoring
    if scoring == "multiple_choice":
        return score_multiple_choice(prediction, reference, list(choices or []))
    if scoring == "yes_no":
        return score_yes_no(prediction, reference)
    if scoring == "exact":
        return score_exact(prediction, reference)
    raise ValueError(f"unknown scoring {scoring!r} (one of {', '.join(SCORINGS)})")


class ReferenceJudge(Judge):
    """Correct / incorrect against the item's reference answer (capability sets)."""

    targets: tuple[Target, ...] = ("answer",)
    max_concurrency = 256

    @property
    def id(self) -> str:
        return "reference"

    @property
    def identity(self) -> dict[str, Any]:
        return {"id": self.id, "version": 1}

    async def judge(self, sample: Sample, generation: Generation, target: Target, text: str) -> Verdict:
        meta = sample.meta
        if meta.get("harness_score") is not None:
            ok = bool(float(meta["harness_score"]) >= 0.5)
            return Verdict(judge=self.id, target=target, label="correct" if ok else "incorrect", score=float(ok),
                           rationale=f"scored by {meta.get('harness', 'the harness')}: {meta['harness_score']}")
        reference = meta.get("reference")
        if reference is None:
            return Verdict(judge=self.id, target=target, status="failed",
                           error="the item has no reference answer (meta.reference)")
        try:
            ok, why = score(text, str(reference), scoring=meta.get("scoring") or "auto", choices=meta.get("choices"))
        except ValueError as exc:
            return Verdict(judge=self.id, target=target, status="failed", error=str(exc))
        return Verdict(judge=self.id, target=target, label="correct" if ok else "incorrect", score=float(ok),
                       rationale=why)
