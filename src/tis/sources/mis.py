"""MIS test: multi-image safety, each question asked about two images whose combination is
what makes it harmful.

Layout read: the Hugging Face folder (Tuwhy/MIS_Test) with one JSON list per split (easy, hard,
real) holding id, category, sub_category, question, image_path1, image_path2; image paths are
relative to the JSON's folder (else to the dataset root).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from tis.sources.base import Benchmark, Problem, SampleMeta
from tis.sources.layout import as_list, image_ref, keyed_item, locate, problem, read_json_list
from tis.core.types import ImagePart, Sample, TextPart

SPLITS = ("easy", "hard", "real")
FIELDS = ("id", "category", "question", "image_path1", "image_path2")


def split_files(split: str) -> list[str]:
    names = [f"{split}.json", f"mis_{split}.json", f"MIS_{split}.json", f"{split}/{split}.json", f"{split}/data.json"]
    return names + [f"data/{n}" for n in names]


class MISOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: easy, hard, real (real photographs); all three by default
    split: list[Literal["easy", "hard", "real"]] = list(SPLITS)

    @field_validator("split", mode="before")
    @classmethod
    def _splits(cls, value):
        return as_list(value)


class MISMeta(SampleMeta):
    split: str
    sub_category: str | None = None


class MIS(Benchmark):
    name: ClassVar[str] = "mis"
    group = "jailbreak"
    metric_kind: ClassVar[str] = "asr"
    rubric: ClassVar[str] = "harm"
    Meta = MISMeta
    licence: ClassVar[str] = "Apache-2.0"
    citation: ClassVar[str] = ("Yi Ding, Lijun Li, Bing Cao, Jing Shao. Rethinking Bottlenecks in Safety Fine-Tuning "
                               "of Vision Language Models. arXiv 2501.18533, 2025.")
    size: ClassVar[int | None] = None
    size_note: ClassVar[str] = "splits easy / hard / real; two images per sample"
    metric: ClassVar[str] = "ASR = unsafe / judged, per split and category"
    layout: ClassVar[str] = ("HF Tuwhy/MIS_Test: {easy,hard,real}.json (or mis_{split}.json) with id, category, "
                             "sub_category, question, image_path1, image_path2; images relative to the JSON")
    Options = MISOptions

    def records(self) -> Iterator[Sample | Problem]:
        assert self.data is not None
        for split in self.options.split:
            file = locate(self, split_files(split))
            items = read_json_list(file, self.name)
            seen: set[str] = set()
            for n, item in enumerate(items):
                yield self._sample(item, n, split, file, seen)

    def _sample(self, item, n: int, split: str, file: Path, seen: set[str]) -> Sample | Problem:
        keyed = keyed_item(item, n, FIELDS, "id", file, seen)
        if isinstance(keyed, Problem):
            return keyed
        key, record = keyed
        if not isinstance(item["question"], str) or not item["question"].strip():
            return problem(file, record, "empty question")
        images: list[ImagePart] = []
        for field in ("image_path1", "image_path2"):
            image = self._image(item[field], file, record, field)
            if not isinstance(image, ImagePart):
                return image
            images.append(image)
        meta = {"split": split, "mis_id": item["id"], "sub_category": item.get("sub_category")}
        return Sample(id=f"{split}/{key}", benchmark=self.name, category=str(item["category"]), group=self.group,
                      content=(*images, TextPart(text=item["question"])), meta=meta)

    def _image(self, relative, file: Path, record: str, field: str) -> ImagePart | Problem:
        assert self.data is not None
        root = self.data if self.data.is_dir() else self.data.parent
        first = image_ref(self, relative, root=file.parent, file=file, record=record, field=field)
        if isinstance(first, ImagePart) or file.parent == root or "missing" not in first.message:
            return first
        second = image_ref(self, relative, root=root, file=file, record=record, field=field)
        return second if isinstance(second, ImagePart) else first
