"""Your own images as a data-building source.

Layout read: a folder of images, optionally with `questions.csv` or `questions.jsonl` beside them
(columns / keys: `image` (path relative to the folder; required), `question`, `label`
(`unsafe`, `benign`, `borderline` or empty), `category`). Without a questions file every image
in the folder (png, jpg, jpeg, webp, gif, bmp) is an item without a question: the *questions*
stage writes harmful, borderline and benign ones for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from tis.core.errors import DataError
from tis.sources.train_base import SourceItem, SourceProblem, TrainSource, _Escape

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
LABELS = ("unsafe", "benign", "borderline")


class ImageFolder(TrainSource):
    name: ClassVar[str] = "folder"
    licence: ClassVar[str] = "yours (set `licence` in the source's options)"
    layout: ClassVar[str] = "a folder of images, optionally questions.csv / questions.jsonl (image, question, label, category)"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        questions: str | None = None  # a file name other than questions.csv / questions.jsonl
        licence: str | None = None

    def items(self) -> Iterator[SourceItem | SourceProblem]:
        if not self.root.is_dir():
            raise DataError(f"source 'folder': {self.root} is not a folder (layout: {self.layout})")
        names = [self.options.questions] if self.options.questions else ["questions.csv", "questions.jsonl"]
        file = next((self.root / n for n in names if (self.root / n).is_file()), None)
        if self.options.questions and file is None:
            raise DataError(f"source 'folder': questions file {self.root / self.options.questions} does not exist")
        if file is None:
            images = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
            if not images:
                raise DataError(f"source 'folder': no images ({', '.join(EXTENSIONS)}) under {self.root}")
            for p in images:
                rel = p.relative_to(self.root).as_posix()
                yield SourceItem(id=rel, source=self.name, images=(str(p),), meta={"image_relative": rel})
            return
        for n, row in self.table_rows(file, "image"):
            where = f"line {n}"
            if not isinstance(row, dict) or not str(row.get("image") or "").strip():
                yield self.problem(file, where, "no `image`")
                continue
            label = str(row.get("label") or "").strip().lower() or None
            if label is not None and label not in LABELS:
                yield self.problem(file, where, f"label '{label}' is not one of {', '.join(LABELS)}")
                continue
            try:
                path = self.inside(str(row["image"]).strip(), self.root, where)
            except _Escape as exc:
                yield self.problem(file, where, str(exc))
                continue
            question = str(row.get("question") or "").strip() or None
            yield SourceItem(id=f"{file.name}:{n}", source=self.name, images=(str(path),), question=question,
                             label=label, category=str(row.get("category") or "").strip() or None,
                             meta={"image_relative": str(row["image"]).strip()})
