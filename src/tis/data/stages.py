"""The stages as pure functions: an item -> the teacher's request; the teacher's output -> a
parsed value or the reason it cannot be used (`Malformed`).

Each request's key is a content hash of everything that decides the output (stage, teacher
identity, sampling parameters, prompt text, image hashes, and the attempt number, since a
malformed output is asked again with another seed). A build run again finds the keys stored and
sends nothing for them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError
from tis.core.types import ImagePart, ModelOutput, Sample, TextPart, content_hash
from tis.data.spec import SafetySpec
from tis.data.text import CLOSE, OPEN, format_issues, parse_category, parse_decision, split

BENCHMARK = "tis-data"


class Malformed(Exception):
    """A teacher output that cannot be used; the message is the reason (counted, re-asked, dropped)."""


def load_prompt(stage: str, path: Path | None) -> str:
    if path is None:
        return resources.files("tis.data").joinpath(f"prompts/{stage}.txt").read_text(encoding="utf-8")
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{stage}.prompt: cannot read {path} ({exc.strerror or exc})") from None


def fill(template: str, **fields: str) -> str:
    """Put fields into `{name}` places; other braces (JSON examples) are left alone."""
    return re.sub(r"\{([a-z_]+)\}", lambda m: str(fields[m.group(1)]) if m.group(1) in fields else m.group(0), template)


def check_prompt(stage: str, template: str, needed: tuple[str, ...]) -> None:
    missing = [f for f in needed if "{" + f + "}" not in template]
    if missing:
        raise ConfigError(f"{stage}.prompt: the prompt lacks the field(s) {', '.join('{' + m + '}' for m in missing)}")


def request_key(stage: str, teacher: dict, params: dict, sample: Sample, attempt: int) -> str:
    parts = [p.text if isinstance(p, TextPart) else {"image": p.sha256} for p in sample.content]
    return content_hash({"stage": stage, "teacher": teacher, "params": params, "system": sample.system,
                         "content": parts, "attempt": attempt})


def _sample(key_hint: str, images: list[ImagePart], text: str, system: str | None = None) -> Sample:
    return Sample(id=key_hint, benchmark=BENCHMARK, content=(*images, TextPart(text=text)), system=system)


def _check_finish(output: ModelOutput) -> None:
    if output.finish_reason == "length":
        raise Malformed("truncated (finish_reason length)")


# caption ------------------------------------------------------------------------------------
def caption_sample(images: list[ImagePart], template: str) -> Sample:
    return _sample("caption", images, template)


def parse_caption(output: ModelOutput, min_chars: int) -> str:
    _check_finish(output)
    text = output.text.strip()
    if OPEN in text or CLOSE in text:  # a thinking teacher: keep what follows its thought
        text = split(text)[1]
    if len(text) < min_chars:
        raise Malformed(f"caption shorter than {min_chars} characters")
    return text


# questions ----------------------------------------------------------------------------------
LABEL_WORDS = {"harmful": "unsafe", "unsafe": "unsafe", "borderline": "borderline", "benign": "benign", "safe": "benign"}


def question_counts(per_image: int, benign_share: float, borderline_share: float) -> tuple[int, int, int]:
    benign = round(per_image * benign_share)
    borderline = min(per_image - benign, round(per_image * borderline_share))
    return per_image - benign - borderline, borderline, benign


def questions_sample(images: list[ImagePart], caption: str, template: str, spec: SafetySpec,
                     counts: tuple[int, int, int]) -> Sample:
    harmful, borderline, benign = counts
    categories = "\n".join(f"- {c.id}: {c.definition}" for c in spec.categories)
    text = fill(template, caption=caption, categories=categories, n_total=str(sum(counts)),
                n_harmful=str(harmful), n_borderline=str(borderline), n_benign=str(benign))
    return _sample("questions", images, text)


def parse_questions(output: ModelOutput, spec: SafetySpec, expected: int) -> list[dict[str, Any]]:
    _check_finish(output)
    text = output.text
    if CLOSE in text:
        text = text.split(CLOSE, 1)[1]
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        raise Malformed("no JSON array of questions")
    try:
        data = json.loads(text[start:end + 1])
    except ValueError as exc:
        raise Malformed(f"the question list is not valid JSON ({exc.msg})") from None
    if not isinstance(data, list) or not data:
        raise Malformed("the question list is empty")
    out = []
    for n, q in enumerate(data):
        if not isinstance(q, dict) or not isinstance(q.get("question"), str) or not q["question"].strip():
            raise Malformed(f"question {n} has no text")
        label = LABEL_WORDS.get(str(q.get("label", "")).strip().lower())
        if label is None:
            raise Malformed(f"question {n} has label {str(q.get('label'))[:30]!r}, not harmful / borderline / benign")
        raw_cat = str(q.get("category") or "").strip()
        cat = spec.category(raw_cat)
        if raw_cat and raw_cat.lower() not in ("none", "n/a") and cat is None:
            raise Malformed(f"question {n} has category {raw_cat[:30]!r}, not one of the specification's")
        out.append({"question": q["question"].strip(), "label": label, "category": cat.id if cat else None})
    if len(out) != expected:
        raise Malformed(f"{len(out)} questions where {expected} were asked for")
    return out


# reason -------------------------------------------------------------------------------------
def reason_hint(label: str | None, category: str | None) -> str:
    if label == "unsafe":
        what = "the request is labelled harmful"
    elif label == "benign":
        what = "the request is labelled benign: help fully unless it is clearly harmful"
    elif label == "borderline":
        what = "the request is labelled borderline"
    else:
        what = "the request carries no label: judge it yourself"
    return what + (f"; its source category is {category}" if category else "") + "."


def reason_sample(images: list[ImagePart], caption: str | None, question: str, template: str, spec: SafetySpec | str,
                  hint: str) -> Sample:
    """`spec` is the specification or its text (`spec.text()`, computed once per build)."""
    spec_text = spec if isinstance(spec, str) else spec.text()
    text = fill(template, spec=spec_text, caption=caption or "(see the attached image)", question=question,
                hint=hint)
    return _sample("reason", images, text)


@dataclass(frozen=True)
class Reasoned:
    thought: str
    answer: str
    decision: str
    category: str | None


def parse_reason(output: ModelOutput, spec: SafetySpec) -> Reasoned:
    _check_finish(output)
    text = output.text.strip()
    if output.reasoning and OPEN not in text:  # the server split the thought into its own field
        text = f"{OPEN}\n{output.reasoning.strip()}\n{CLOSE}\n{text}"
    issues = format_issues(text)
    if issues:
        raise Malformed(issues[0])
    thought, answer = split(text)
    decision = parse_decision(thought)
    if decision is None:
        raise Malformed("the thought has no 'Decision: refuse | safe_completion | help' line")
    raw_cat = parse_category(thought)
    cat = spec.category(raw_cat) if raw_cat else None
    return Reasoned(thought=thought, answer=answer, decision=decision, category=cat.id if cat else None)
