"""What a training answer's text must look like, shared by the build's filters and `tis data check`.

An answer to train on is `<think>\\nTHOUGHT\\n</think>\\nANSWER`: exactly one closed thought at the
very start, a non-empty thought, an answer after it. `format_issues` names what is wrong with a
text; `noise_issues` names the release's cosmetic noise (`* *` pairs, `---` or a quoted answer
after the thought); `find_leakage` finds phrases that show the thought was written from a caption
or a reference answer; `parse_decision` reads the `Decision:` line the reason stage asks for, and
`thought_decision` guesses the decision of a thought without one.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

OPEN, CLOSE = "<think>", "</think>"
_APOS = str.maketrans({"\u2019": "'", "\u2018": "'"})


def compose(thought: str, answer: str) -> str:
    return f"{OPEN}\n{thought.strip()}\n{CLOSE}\n{answer.strip()}"


def split(text: str) -> tuple[str, str]:
    """(thought, answer) of a text that has a thought; ("", text) otherwise."""
    head, sep, tail = text.partition(CLOSE)
    if not sep:
        return "", text.strip()
    return head.replace(OPEN, "", 1).strip(), tail.strip()


def format_issues(text: str) -> list[str]:
    """Why the text is not one closed thought at the start followed by an answer ([] if it is)."""
    issues = []
    opens, closes = text.count(OPEN), text.count(CLOSE)
    stripped = text.lstrip()
    if opens == 0 and closes == 0:
        return ["no <think> thought"]
    if not stripped.startswith(OPEN):
        before = stripped.split(OPEN, 1)[0] if opens else stripped.split(CLOSE, 1)[0]
        shown = " ".join(before.split())[:30]
        issues.append(f"text before <think>: {shown!r}" if opens else "no opening <think>")
    if opens > 1 or closes > 1:
        issues.append(f"{opens} <think> and {closes} </think> tags (one of each expected)")
    elif closes == 0:
        issues.append("the thought is never closed (no </think>)")
    thought, answer = split(text)
    if closes and not thought.strip(" \n*_-#"):
        issues.append("empty thought")
    if closes and not answer.strip(" \n*_-#\"'"):
        issues.append("empty answer after </think>")
    return issues


_EMPTY_EMPHASIS = re.compile(r"(?<![*\w])\*\s+\*(?![*\w])|\*\*\s*\*\*(?!\w)")


def noise_issues(text: str) -> list[str]:
    """Cosmetic noise a model would learn to imitate."""
    issues = []
    if _EMPTY_EMPHASIS.search(text):
        issues.append("empty emphasis pair ('* *') in the text")
    _, sep, after = text.partition(CLOSE)
    if sep:
        head = after.lstrip()
        if head.startswith(("---", "***", "___")):
            issues.append("a '---' rule right after </think>")
        elif head[:1] in ('"', "\u201c", "'", "\u2018") and len(head) > 1:
            issues.append("the answer after </think> is wrapped in quotes")
    return issues


def load_leakage_phrases(path: str | Path | None = None) -> list[str]:
    text = (Path(path).read_text(encoding="utf-8") if path
            else resources.files("tis.data").joinpath("leakage_phrases.txt").read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@lru_cache(maxsize=8)
def _leak_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alts = sorted({r"\s+".join(map(re.escape, p.translate(_APOS).split())) for p in phrases}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.IGNORECASE)


def find_leakage(text: str, phrases: tuple[str, ...] | None = None) -> str | None:
    """The first leakage phrase in `text`, as written there, or None."""
    phrases = phrases if phrases is not None else tuple(load_leakage_phrases())
    if not phrases:
        return None
    m = _leak_pattern(phrases).search(text.translate(_APOS))
    return m.group(0) if m else None


DECISIONS = ("refuse", "safe_completion", "help")
_DECISION = re.compile(r"(?im)^[\s*_#>-]*decision[\s*_]*[:：][\s*_]*(refuse|refusal|decline|safe[\s_-]*completion|"
                       r"complete[\s_-]*safely|help|comply|assist)\b")
_CATEGORY = re.compile(r"(?im)^[\s*_#>-]*category[\s*_]*[:：][\s*_`]*([A-Za-z_ -]+?)[\s*_`]*$")


def parse_decision(thought: str) -> str | None:
    matches = _DECISION.findall(thought)
    if not matches:
        return None
    word = re.sub(r"[\s-]+", "_", matches[-1].lower())
    if word in ("refuse", "refusal", "decline"):
        return "refuse"
    if word in ("safe_completion", "complete_safely"):
        return "safe_completion"
    return "help"


def parse_category(thought: str) -> str | None:
    matches = _CATEGORY.findall(thought)
    if not matches:
        return None
    value = re.sub(r"[\s-]+", "_", matches[-1].strip().lower())
    return None if value in ("none", "n/a", "") else value


_REFUSE_WORDS = re.compile(r"(?i)\b(declin\w*|refus\w*|reject\w*|(?:can(?:no|')t|must not|should not|won't|will not|"
                           r"shouldn't|mustn't)\s+(?:assist|help|provide|comply|fulfil\w*|support|share|engage)|"
                           r"not\s+(?:assist|comply|provide))")
# first-person intent only: words such as "safe" or "allowed" appear in refusing thoughts too
_HELP_WORDS = re.compile(r"(?i)\b(?:i(?:'ll| will| can| should)|let me)\s+(?:now\s+)?(?:provide|explain|describe|list|help|"
                         r"answer|give|share|outline|offer|identify|summari[sz]e)\b")


_MORE_REFUSALS = re.compile(r"(?i)\b(?:cannot|can't|can not|won't|will not)\s+be\s+(?:fulfilled|completed|provided|"
                            r"assisted)|\b(?:must|have to|need to)\s+decline\b")


def answer_refuses(answer: str) -> bool:
    """Whether the opening of an answer refuses: the refusal judge's phrase list, and a few
    impersonal refusals ("This request cannot be fulfilled") common in generated sets."""
    from tis.judges.refusal import find_refusal

    head = answer.translate(_APOS)[:400]
    return bool(find_refusal(head) or _MORE_REFUSALS.search(head))


def thought_decision(thought: str) -> str | None:
    """A guess at what the thought decided, from its last sentences: "refuse", "help" or None.

    Used only where a thought carries no `Decision:` line (a released set); it reads the closing
    part of the thought, where the TiS thoughts state their decision."""
    explicit = parse_decision(thought)
    if explicit:
        return "refuse" if explicit == "refuse" else "help"
    tail = thought.translate(_APOS)[-400:]
    refuse = len(_REFUSE_WORDS.findall(tail))
    helps = len(_HELP_WORDS.findall(tail))
    if refuse and not helps:
        return "refuse"
    if helps and not refuse:
        return "help"
    return None
