"""SPA-VL as a data-building source.

Layout read (HF sqrti/SPA-VL): parquet files (`data/train-*.parquet`, or any `*.parquet` under the
root) with columns `image` (the HF Image struct {bytes, path}), `question`, `chosen`, `rejected`,
and the three-level harm classes `class1`, `class2`, `class3` (optional `image_name`). Images
stored as bytes are written once to the cache, named by their hash. SPA-VL does not label a
question harmful or benign, so items carry no label (the teacher decides; the decision filter
then only checks the thought against the answer). `chosen` is kept as the reference answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from tis.core.errors import DataError
from tis.sources.layout import cached_image, image_bytes, parquet_rows
from tis.sources.train_base import SourceItem, SourceProblem, TrainSource

COLUMNS = ("image", "question", "chosen", "rejected", "class1", "class2", "class3")


class SPAVL(TrainSource):
    name: ClassVar[str] = "spa-vl"
    licence: ClassVar[str] = "CC-BY-4.0 (SPA-VL, sqrti/SPA-VL)"
    citation: ClassVar[str] = ("Yongting Zhang et al. SPA-VL: A Comprehensive Safety Preference Alignment Dataset "
                               "for Vision Language Model. CVPR 2025.")
    layout: ClassVar[str] = "parquet files with image, question, chosen, rejected, class1, class2, class3"

    def items(self) -> Iterator[SourceItem | SourceProblem]:
        if self.root.is_file():
            files = [self.root]
        else:
            files = sorted(self.root.glob("data/train*.parquet")) or sorted(self.root.rglob("*.parquet"))
        if not files:
            raise DataError(f"source 'spa-vl': no parquet files under {self.root} (layout: {self.layout})")
        for file, row_no, row in parquet_rows(files, COLUMNS, "spa-vl", optional=("image_name",)):
            where = f"row {row_no}"
            data, hint = image_bytes(row["image"])
            if not data:
                yield self.problem(file, where, "the image cell holds no bytes")
                continue
            question = row.get("question")
            if not isinstance(question, str) or not question.strip():
                yield self.problem(file, where, "empty question")
                continue
            path = cached_image(data, row.get("image_name") or hint)
            yield SourceItem(
                id=f"{file.stem}:{row_no}", source=self.name, images=(str(path),), question=question.strip(),
                label=None, category=row.get("class1") or None, subcategory=row.get("class2") or None,
                reference_answer=row.get("chosen") if isinstance(row.get("chosen"), str) else None,
                meta={"class3": row.get("class3"), "rejected": row.get("rejected")},
            )
