"""A general-capability set in JSON Lines: items with reference answers, scored by the `reference`
judge (exact, multiple-choice or yes/no match; metric: accuracy).

    {"id": "sqa-1", "prompt": "Which is a mammal?", "images": ["img/1.png"],
     "choices": ["shark", "whale", "trout"], "answer": "B"}
    {"id": "pope-1", "prompt": "Is there a dog in the image?", "images": ["img/2.png"], "answer": "yes"}
    {"id": "mv-1", "prompt": "What is x?", "answer": "18", "scoring": "exact"}

`scoring` is optional: multiple_choice when `choices` are given, yes_no for a yes/no answer, else
exact. Choices are appended to the prompt as lettered options unless `choices_in_prompt` is false.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from tis.core.types import Sample
from tis.sources.base import Problem
from tis.sources.custom import CustomJSONL
from tis.sources.layout import problem

SCORINGS = ("auto", "exact", "multiple_choice", "yes_no")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class CapabilitySet(CustomJSONL):
    name: ClassVar[str] = "capability"
    group = "custom"
    metric_kind: ClassVar[str] = "accuracy"
    metric_by_group: ClassVar[dict[str, str]] = {}
    rubric: ClassVar[str] = "harm"
    rubric_by_group: ClassVar[dict[str, str]] = {}
    metric: ClassVar[str] = "accuracy against reference answers (the reference judge)"
    layout: ClassVar[str] = ("a .jsonl file: one object per line with id, prompt, images, answer, optional choices, "
                             "scoring (exact | multiple_choice | yes_no), category")

    def _sample(self, line: str, number: int, file: Path, seen: set[str]) -> Sample | Problem:
        record = f"line {number}"
        item = self._json_object(line, number, file)
        if isinstance(item, Problem):
            return item
        if "answer" not in item:
            return problem(file, record, "missing answer (the reference answer)")
        answer = item.pop("answer")
        choices = item.pop("choices", None)
        scoring = item.pop("scoring", "auto")
        in_prompt = item.pop("choices_in_prompt", True)
        if not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
            return problem(file, record, "answer should be text or a number")
        if choices is not None and (not isinstance(choices, list) or not choices or len(choices) > len(LETTERS)):
            return problem(file, record, "choices should be a non-empty list")
        if scoring not in SCORINGS:
            return problem(file, record, f"scoring should be one of {', '.join(SCORINGS)}, found {scoring!r}")
        if scoring == "multiple_choice" and not choices:
            return problem(file, record, "scoring multiple_choice needs choices")
        meta = item.get("meta", {})
        if not isinstance(meta, dict):
            return problem(file, record, "meta should be an object")
        item["meta"] = {**meta, "reference": str(answer), "choices": [str(c) for c in choices] if choices else None,
                        "scoring": scoring}
        if choices and in_prompt and isinstance(item.get("prompt"), str):
            options = "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))
            item["prompt"] = f"{item['prompt']}\n{options}\nAnswer with the option's letter."
        return super()._sample(json.dumps(item), number, file, seen)
