"""MOSSBench: harmless image-question pairs with a stimulus that makes oversensitive models
refuse (exaggerated risk, negated harm, counterintuitive interpretation).

Layout read: the GitHub `data/images_information/information.json` (a dict of 300 items: image,
short description, description, question, pid, metadata{over, human, child, syn, ocr, harm}) with
images in `data/images/`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from tis.sources.base import Benchmark, Problem, SampleMeta
from tis.sources.layout import as_list, image_ref, locate, problem, read_json, shape_problem
from tis.core.errors import DataError
from tis.core.types import ImagePart, Sample, TextPart

OVER_TYPES = {1: "exaggerated risk", 2: "negated harm", 3: "counterintuitive interpretation"}
FIELDS = ("image", "question", "pid", "metadata")


class MOSSBenchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: keep only these oversensitivity types (1 exaggerated risk, 2 negated harm,
    #: 3 counterintuitive interpretation); all by default
    over_type: list[int] | None = None

    @field_validator("over_type", mode="before")
    @classmethod
    def _types(cls, value):
        if value is None:
            return None
        types = as_list(value)
        for t in types:
            if t not in OVER_TYPES:
                raise ValueError(f"over_type must be 1, 2 or 3, got {t!r}")
        return types


class MOSSBenchMeta(SampleMeta):
    pid: str | int
    over_type: Literal[1, 2, 3]  # the paper's three types of oversensitivity


class MOSSBench(Benchmark):
    name: ClassVar[str] = "mossbench"
    group = "over-refusal"
    metric_kind: ClassVar[str] = "refusal_rate"
    rubric: ClassVar[str] = "refusal"
    Meta = MOSSBenchMeta
    licence: ClassVar[str] = "CC BY-SA 4.0 (test use only)"
    citation: ClassVar[str] = ("Xirui Li, Hengguang Zhou, Ruochen Wang, Tianyi Zhou, Minhao Cheng, Cho-Jui Hsieh. "
                               "MOSSBench: Is Your Multimodal Language Model Oversensitive to Safe Queries? ICLR 2025.")
    size: ClassVar[int] = 300
    size_note: ClassVar[str] = "300 harmless image-question pairs over 3 oversensitivity types"
    metric: ClassVar[str] = "refusal rate (lower is better), overall and per type"
    layout: ClassVar[str] = "GitHub: data/images_information/information.json + data/images/"
    Options = MOSSBenchOptions

    def records(self) -> Iterator[Sample | Problem]:
        file = locate(self, ["data/images_information/information.json", "images_information/information.json"])
        data_dir = file.parent.parent
        if not (data_dir / "images").is_dir():
            raise DataError(f"{self.name}: no images/ folder at {data_dir / 'images'} (beside images_information/)")
        items = read_json(file, self.name)
        if isinstance(items, dict):
            entries = list(items.items())
        elif isinstance(items, list):
            entries = [(str(n), item) for n, item in enumerate(items)]
        else:
            raise DataError(f"{self.name}: {file} should be an object of items keyed by pid, found {type(items).__name__}")
        wanted = set(self.options.over_type) if self.options.over_type else None
        seen: set[str] = set()
        for key, item in entries:
            sample = self._sample(key, item, file, data_dir, seen)
            if isinstance(sample, Sample) and wanted is not None and sample.meta["over_type"] not in wanted:
                continue
            yield sample

    def _sample(self, key: str, item, file: Path, data_dir: Path, seen: set[str]) -> Sample | Problem:
        record = f"item {key}"
        why = shape_problem(item, FIELDS)
        if why:
            return problem(file, record, why)
        pid = str(item["pid"])
        if pid in seen:
            return problem(file, record, f"duplicate pid {pid}")
        seen.add(pid)
        metadata = item["metadata"] if isinstance(item["metadata"], dict) else {}
        match = re.search(r"\d", str(metadata.get("over", "")))
        over = int(match.group()) if match else None
        if over not in OVER_TYPES:
            return problem(file, record, f"metadata.over should be 'type 1', 'type 2' or 'type 3', found "
                                         f"{metadata.get('over')!r}")
        if not isinstance(item["question"], str) or not item["question"].strip():
            return problem(file, record, "empty question")
        relative = item["image"]
        # the image is named relative to data/ ("images/1.png") or to data/images/ ("1.png")
        root = data_dir if isinstance(relative, str) and "/" in relative else data_dir / "images"
        image = image_ref(self, relative, root=root, file=file, record=record)
        if not isinstance(image, ImagePart):
            return image
        meta = {"pid": item["pid"], "over": metadata.get("over"), "over_type": over,
                "short_description": item.get("short description"), "description": item.get("description"),
                **{k: metadata.get(k) for k in ("human", "child", "syn", "ocr", "harm")}}
        return Sample(id=pid, benchmark=self.name, category=OVER_TYPES[over], group=self.group,
                      content=(image, TextPart(text=item["question"])), meta=meta)
