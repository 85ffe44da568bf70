"""JailbreakV-28K: text jailbreaks (templates, persuasion, logic) and image jailbreaks (FigStep,
query-relevant) paired with images, over 16 safety policies.

Layout read: the Hugging Face folder (JailbreakV-28K/JailBreakV-28k):
`JailBreakV_28K/JailBreakV_28K.csv` (28,000 rows) and `JailBreakV_28K/mini_JailBreakV_28K.csv`,
with `image_path` relative to the CSV's folder. The CSV is streamed row by row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from tis.sources.base import Benchmark, Problem, SampleMeta
from tis.sources.layout import as_list, image_ref, locate, norm, problem
from tis.core.errors import DataError
from tis.core.types import ImagePart, Sample, TextPart

COLUMNS = ("id", "jailbreak_query", "redteam_query", "format", "policy", "image_path", "from", "selected_mini",
           "transfer_from_llm")
CSV_NAMES = {"full": "JailBreakV_28K.csv", "mini": "mini_JailBreakV_28K.csv"}
FORMATS = ("template", "persuade", "logic", "figstep", "query-relevant")


class JailbreakVOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: mini (~280 rows) or full (28,000 rows)
    split: Literal["mini", "full"] = "mini"
    #: keep only these formats (template, persuade, logic, figstep, query-relevant); all by default
    format: list[str] | None = None
    #: keep only these policies (as written in the CSV); all by default
    policy: list[str] | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _formats(cls, value):
        if value is None:
            return None
        out = []
        for v in as_list(value):
            if norm(v) not in {norm(f) for f in FORMATS}:
                raise ValueError(f"unknown format '{v}'; known: {', '.join(FORMATS)}")
            out.append(str(v))
        return out

    @field_validator("policy", mode="before")
    @classmethod
    def _policies(cls, value):
        return None if value is None else [str(v) for v in as_list(value)]


def _flag(value: str | None) -> bool | None:
    return {"true": True, "false": False}.get((value or "").strip().lower())


class JailbreakVMeta(SampleMeta):
    format: str
    policy: str
    redteam_query: str
    selected_mini: bool | None = None
    transfer_from_llm: bool | None = None


class JailbreakV28K(Benchmark):
    name: ClassVar[str] = "jailbreakv-28k"
    group = "jailbreak"
    metric_kind: ClassVar[str] = "asr"
    rubric: ClassVar[str] = "harm"
    Meta = JailbreakVMeta
    licence: ClassVar[str] = "MIT"
    citation: ClassVar[str] = ("Weidi Luo, Siyuan Ma, Xiaogeng Liu, Xiaoyu Guo, Chaowei Xiao. JailBreakV: A Benchmark for "
                               "Assessing the Robustness of MultiModal Large Language Models against Jailbreak "
                               "Attacks. COLM 2024.")
    size: ClassVar[int] = 28000
    size_note: ClassVar[str] = "28,000 image-text jailbreaks (full); the mini split has ~280"
    metric: ClassVar[str] = "ASR = unsafe / judged, per format and per policy"
    layout: ClassVar[str] = ("HF JailbreakV-28K/JailBreakV-28k: JailBreakV_28K/{JailBreakV_28K,mini_JailBreakV_28K}.csv "
                             "with image folders (figstep/, llm_transfer_attack/, query_related/) beside the CSV")
    Options = JailbreakVOptions

    def csv_path(self) -> Path:
        name = CSV_NAMES[self.options.split]
        return locate(self, [f"JailBreakV_28K/{name}", name])

    def records(self) -> Iterator[Sample | Problem]:
        csv_file = self.csv_path()
        root = csv_file.parent
        formats = {norm(f) for f in self.options.format} if self.options.format else None
        policies = {norm(p) for p in self.options.policy} if self.options.policy else None
        try:
            handle = open(csv_file, newline="", encoding="utf-8")
        except OSError as exc:
            raise DataError(f"{self.name}: cannot read {csv_file}: {exc.strerror}") from None
        with handle:
            # strict: a file cut off inside a quoted field is an error, not a silently short row
            reader = csv.DictReader(handle, strict=True)
            try:
                header = reader.fieldnames or []
                missing = [c for c in COLUMNS if c not in header]
                if missing:
                    raise DataError(f"{self.name}: {csv_file} lacks column(s) {', '.join(missing)}; it has "
                                    f"{', '.join(header) or 'none'}; expected {','.join(COLUMNS)}")
                seen: set[str] = set()
                for row in reader:
                    line = reader.line_num
                    if formats is not None and norm(row.get("format") or "") not in formats:
                        continue
                    if policies is not None and norm(row.get("policy") or "") not in policies:
                        continue
                    yield self._sample(row, line, csv_file, root, seen)
            except csv.Error as exc:
                raise DataError(f"{self.name}: {csv_file} is malformed near line {reader.line_num} "
                                f"(truncated?): {exc}") from None
            except UnicodeDecodeError as exc:
                raise DataError(f"{self.name}: {csv_file} is not UTF-8 ({exc.reason} at byte {exc.start})") from None

    def _sample(self, row: dict, line: int, csv_file: Path, root: Path, seen: set[str]) -> Sample | Problem:
        record = f"line {line}"
        if None in row:
            return problem(csv_file, record, "row has more fields than the header")
        if any(row.get(c) is None for c in COLUMNS):
            return problem(csv_file, record, "row has fewer fields than the header (truncated?)")
        key = row["id"].strip()
        if not key:
            return problem(csv_file, record, "empty id")
        record = f"line {line} (id {key})"
        if key in seen:
            return problem(csv_file, record, f"duplicate id {key}")
        seen.add(key)
        query = row["jailbreak_query"]
        if not query.strip():
            return problem(csv_file, record, "empty jailbreak_query")
        image = image_ref(self, row["image_path"], root=root, file=csv_file, record=record, field="image_path")
        if not isinstance(image, ImagePart):
            return image
        meta = {"format": row["format"], "policy": row["policy"], "redteam_query": row["redteam_query"],
                "goal": row["redteam_query"], "from": row["from"], "selected_mini": _flag(row["selected_mini"]),
                "transfer_from_llm": _flag(row["transfer_from_llm"]), "image_path": row["image_path"]}
        return Sample(id=key, benchmark=self.name, category=row["policy"], group=self.group,
                      content=(image, TextPart(text=query)), meta=meta)
