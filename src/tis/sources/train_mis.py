"""MIS's training split as a data-building source.

Layout read (HF Tuwhy/MIS_Train): a JSON list (`mis_train.json`, `train.json` or `MIS_train.json`)
whose records hold `id`, `category`, `sub_category`, `question`, `image_path1`, `image_path2`
(paths relative to the JSON's folder) and optionally `answer` / `response` (a reference answer,
MIS's own safety reasoning). Each question is about two images together; MIS's questions are
harmful in combination, so items are labelled unsafe (set `label: none` to let the teacher decide).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from tis.sources.layout import read_json_list
from tis.sources.train_base import SourceItem, SourceProblem, TrainSource, _Escape, find_file

FIELDS = ("id", "question", "image_path1", "image_path2")


class MISTrain(TrainSource):
    name: ClassVar[str] = "mis"
    licence: ClassVar[str] = "Apache-2.0 (MIS, Tuwhy/MIS_Train)"
    citation: ClassVar[str] = ("Yi Ding, Lijun Li, Bing Cao, Jing Shao. Rethinking Bottlenecks in Safety Fine-Tuning "
                               "of Vision Language Models. arXiv 2501.18533, 2025.")
    layout: ClassVar[str] = "mis_train.json (or train.json) with image_path1, image_path2 relative to it"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        label: Literal["unsafe", "none"] = "unsafe"

    def items(self) -> Iterator[SourceItem | SourceProblem]:
        file = find_file(self, ["mis_train.json", "MIS_train.json", "train.json", "data/mis_train.json",
                                "data/train.json"])
        records = read_json_list(file, f"source '{self.name}'")
        for n, rec in enumerate(records):
            where = f"record {n}"
            if not isinstance(rec, dict) or any(f not in rec for f in FIELDS):
                yield self.problem(file, where, f"needs fields {', '.join(FIELDS)}")
                continue
            where = f"record {n} (id {rec['id']})"
            try:
                images = tuple(str(self.inside(str(rec[k]), file.parent, where)) for k in ("image_path1", "image_path2"))
            except _Escape as exc:
                yield self.problem(file, where, str(exc))
                continue
            answer = rec.get("answer") or rec.get("response")
            yield SourceItem(
                id=str(rec["id"]), source=self.name, images=images, question=str(rec["question"]).strip() or None,
                label=None if self.options.label == "none" else "unsafe", category=rec.get("category") or None,
                subcategory=rec.get("sub_category") or None,
                reference_answer=answer if isinstance(answer, str) else None,
            )
