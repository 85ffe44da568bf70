"""SIUO (Safe Inputs but Unsafe Output): an image and a question that are each harmless but
together call for a safety warning.

Layout read: the GitHub `data/siuo_gen.json` (167 items: question_id, image, question, category,
safety_warning, reference_answer) with images in `data/images/`; `data/siuo_mcqa.json` adds
options A-D and correct_option for the multiple-choice task.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from tis.sources.base import Benchmark, Problem, SampleMeta
from tis.sources.layout import image_ref, keyed_item, locate, problem, read_json_list
from tis.core.errors import DataError
from tis.core.types import ImagePart, Sample, TextPart

FILES = {"gen": "siuo_gen.json", "mcqa": "siuo_mcqa.json"}
FIELDS = ("question_id", "image", "question", "category", "safety_warning", "reference_answer")


class SiuoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: gen: open-ended answers (the main protocol); mcqa: multiple choice
    task: Literal["gen", "mcqa"] = "gen"


class SiuoMeta(SampleMeta):
    question_id: str | int
    safety_warning: str
    reference_answer: str
    task: Literal["gen", "mcqa"]


class Siuo(Benchmark):
    name: ClassVar[str] = "siuo"
    group = "awareness"
    metric_kind: ClassVar[str] = "safety_rate"
    extra_metrics: ClassVar[tuple[str, ...]] = ("effective_rate",)  # a judge with rubric=siuo_effectiveness
    rubric: ClassVar[str] = "siuo_safety"
    Meta = SiuoMeta
    licence: ClassVar[str] = "CC BY-NC 4.0 (non-commercial)"
    citation: ClassVar[str] = ("Siyin Wang, Xingsong Ye, Qinyuan Cheng, Junwen Duan, Shimin Li, Jinlan Fu, Xipeng Qiu, "
                               "Xuanjing Huang. Cross-Modality Safety Alignment. Findings of NAACL 2025.")
    size: ClassVar[int] = 167
    size_note: ClassVar[str] = "167 image-question pairs over 9 categories"
    metric: ClassVar[str] = ("safe rate, effective rate and safe & effective (both), overall and per category; "
                             "majority vote over several responses")
    layout: ClassVar[str] = "GitHub: data/siuo_gen.json (and siuo_mcqa.json) with images in data/images/"
    Options = SiuoOptions

    def records(self) -> Iterator[Sample | Problem]:
        name = FILES[self.options.task]
        file = locate(self, [f"data/{name}", name])
        images = file.parent / "images"
        if not images.is_dir():
            raise DataError(f"{self.name}: no images/ folder beside {file} (expected {images}/S-01.png ...)")
        items = read_json_list(file, self.name)
        seen: set[str] = set()
        for n, item in enumerate(items):
            yield self._sample(item, n, file, images, seen)

    def _sample(self, item, n: int, file: Path, images: Path, seen: set[str]) -> Sample | Problem:
        fields = FIELDS + (("options", "correct_option") if self.options.task == "mcqa" else ())
        keyed = keyed_item(item, n, fields, "question_id", file, seen)
        if isinstance(keyed, Problem):
            return keyed
        key, record = keyed
        if not isinstance(item["question"], str) or not item["question"].strip():
            return problem(file, record, "empty question")
        image = image_ref(self, item["image"], root=images, file=file, record=record)
        if not isinstance(image, ImagePart):
            return image
        meta = {"question_id": item["question_id"], "safety_warning": item["safety_warning"],
                "reference_answer": item["reference_answer"], "task": self.options.task}
        text = item["question"]
        if self.options.task == "mcqa":
            options = item["options"]
            if not isinstance(options, dict) or not options:
                return problem(file, record, "options should be an object {A: ..., B: ..., ...}")
            text = text.rstrip() + "\n" + "\n".join(f"{letter}. {options[letter]}" for letter in sorted(options))
            meta.update(options=options, correct_option=item["correct_option"])
        category = item["category"]
        if isinstance(category, list):
            category = ", ".join(map(str, category))
        return Sample(id=key, benchmark=self.name, category=str(category), group=self.group,
                      content=(image, TextPart(text=text)), meta=meta)
