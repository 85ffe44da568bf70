"""Training-set sources for data building: each reads a published layout into `SourceItem`s.

A training source differs from a benchmark: an item may lack a question (the *questions* stage
writes some), carries a label (`unsafe` / `benign`, or None where the source does not say), and
may carry a reference thought and answer (a released set to re-filter). Loaders are registered in
`TRAIN_SOURCES` by name, imported only when used, and each declares its licence so a build's card
can list it.
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from tis.core.errors import DataError
from tis.core.registry import Registry
from tis.core.types import Frozen
from tis.sources.base import validated_options

Label = Literal["unsafe", "benign", "borderline"]


class SourceItem(Frozen):
    """One item a build starts from: images, maybe a question, what the source says about it."""

    id: str  # unique within the source
    source: str
    images: tuple[str, ...] = ()  # absolute paths
    question: str | None = None  # None: the questions stage writes some
    label: Label | None = None  # None: the source does not say; the teacher decides
    category: str | None = None
    subcategory: str | None = None
    reference_thought: str | None = None
    reference_answer: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class SourceProblem(Frozen):
    """A record that cannot be used: which file, which record, what is wrong."""

    source: str
    file: str
    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.file}: {self.record}: {self.reason}"


class TrainSource(ABC):
    name: ClassVar[str]
    licence: ClassVar[str] = "unknown"
    citation: ClassVar[str] = ""
    layout: ClassVar[str] = ""

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, root: str | Path, options: dict[str, Any] | None = None):
        self.root = Path(root).expanduser().resolve()
        if not self.root.exists():
            raise DataError(f"source '{self.name}': root {self.root} does not exist (layout: {self.layout})")
        self.options = validated_options(self.Options, options, f"source '{self.name}'")

    @abstractmethod
    def items(self) -> Iterator[SourceItem | SourceProblem]:
        """Yield an item per usable record and a problem per unusable one, lazily. A fault that
        stops the whole set from being read (missing file, wrong root) raises DataError."""

    def table_rows(self, file: Path, column: str) -> Iterator[tuple[int, Any]]:
        """(line number, row) of a CSV file with a header holding `column` (rows from line 2) or a
        JSONL file (a line that is not JSON gives `{"_error": why}`). A CSV without the column or a
        file that is not UTF-8 stops the whole set (DataError naming the file)."""
        try:
            if file.suffix.lower() == ".csv":
                with open(file, newline="", encoding="utf-8") as f:
                    reader = csv.DictReader(f)
                    if not reader.fieldnames or column not in reader.fieldnames:
                        raise DataError(f"source '{self.name}': {file} needs an `{column}` column (has "
                                        f"{', '.join(reader.fieldnames or []) or 'none'})")
                    yield from enumerate(reader, start=2)
            else:
                with open(file, encoding="utf-8") as f:
                    for n, line in enumerate(f, start=1):
                        if not line.strip():
                            continue
                        try:
                            yield n, json.loads(line)
                        except json.JSONDecodeError as exc:
                            yield n, {"_error": str(exc)}
        except UnicodeDecodeError as exc:
            raise DataError(f"source '{self.name}': {file} is not UTF-8 text: {exc}") from None

    def problem(self, file: Path | str, record: str, reason: str) -> SourceProblem:
        return SourceProblem(source=self.name, file=str(file), record=record, reason=reason)

    def inside(self, relative: str, base: Path, record: str) -> Path:
        path = (base / relative).resolve()
        if not path.is_relative_to(base.resolve()):
            raise _Escape(f"image path '{relative}' points outside {base}")
        return path

    def describe(self) -> dict[str, Any]:
        licence = getattr(self.options, "licence", None) or self.licence  # a source may take its user's licence
        return {"name": self.name, "root": str(self.root), "licence": licence, "citation": self.citation,
                "options": self.options.model_dump()}


class _Escape(Exception):
    pass


def find_file(source: TrainSource, candidates: list[str]) -> Path:
    """The first candidate (relative to the root, or the root itself if it is a file) that exists."""
    if source.root.is_file():
        return source.root
    for rel in candidates:
        if (source.root / rel).is_file():
            return source.root / rel
    raise DataError(f"source '{source.name}': none of {', '.join(candidates)} under {source.root} "
                    f"(layout: {source.layout})")


TRAIN_SOURCES = Registry("training source")
TRAIN_SOURCES.register("vlguard", "tis.sources.train_vlguard:VLGuardTrain",
                       "VLGuard train.json: 2,000 images, 2,977 questions (safe / unsafe)")
TRAIN_SOURCES.register("spa-vl", "tis.sources.train_spavl:SPAVL",
                       "SPA-VL parquet: image, question, chosen / rejected, three-level harm classes")
TRAIN_SOURCES.register("mis", "tis.sources.train_mis:MISTrain",
                       "MIS training split: two images per question with a reference answer")
TRAIN_SOURCES.register("sharegpt", "tis.sources.train_sharegpt:ShareGPTSet",
                       "a released sharegpt set (e.g. TiS train_data.json) to re-filter or re-generate")
TRAIN_SOURCES.register("folder", "tis.sources.train_folder:ImageFolder",
                       "your folder of images with a CSV or JSONL of questions (or none)")
TRAIN_SOURCES.register("typographic", "tis.sources.train_typographic:Typographic",
                       "instructions rendered as FigStep typographic images")


def load_source(name: str, root: str | Path, options: dict[str, Any] | None = None) -> TrainSource:
    cls = TRAIN_SOURCES.load(name)
    return cls(root, options)
