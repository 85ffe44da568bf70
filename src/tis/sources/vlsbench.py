"""VLSBench: image-text pairs where the harm is visible only in the image (no visual safety
information leaks into the text), so a model must look to notice it.

Layout read: the Hugging Face folder (Foreshhh/vlsbench): `data.json` (a list of instruction_id,
instruction, image_path, category, sub_category, source; newer copies add safety_reason) with
images in `imgs/` beside it. Every published item is read: one of the 2,241 has an empty
instruction, and its image alone is the prompt (an image-only sample).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from tis.sources.base import Benchmark, Problem
from tis.sources.layout import image_ref, keyed_item, locate, problem, read_json_list
from tis.core.types import ImagePart, Sample, TextPart

FIELDS = ("instruction_id", "instruction", "image_path", "category")


class VLSBench(Benchmark):
    name: ClassVar[str] = "vlsbench"
    group = "awareness"
    metric_kind: ClassVar[str] = "safety_rate"
    rubric: ClassVar[str] = "vlsbench"
    licence: ClassVar[str] = "Apache-2.0"
    citation: ClassVar[str] = ("Xuhao Hu, Dongrui Liu, Hao Li, Xuanjing Huang, Jing Shao. VLSBench: Unveiling Visual "
                               "Leakage in Multimodal Safety. ACL 2025.")
    size: ClassVar[int] = 2241
    size_note: ClassVar[str] = "2,241 image-text pairs over 6 categories"
    metric: ClassVar[str] = ("judge labels 1 safe with refusal / 2 safe with warning / 3 unsafe; safety rate = "
                             "(1 + 2) / total")
    layout: ClassVar[str] = "HF Foreshhh/vlsbench: data.json + imgs/"

    def records(self) -> Iterator[Sample | Problem]:
        file = locate(self, ["data.json", "data/data.json"])
        items = read_json_list(file, self.name)
        seen: set[str] = set()
        for n, item in enumerate(items):
            yield self._sample(item, n, file, seen)

    def _sample(self, item, n: int, file: Path, seen: set[str]) -> Sample | Problem:
        keyed = keyed_item(item, n, FIELDS, "instruction_id", file, seen)
        if isinstance(keyed, Problem):
            return keyed
        key, record = keyed
        instruction = item["instruction"]
        if instruction is not None and not isinstance(instruction, str):
            return problem(file, record, f"instruction is not text ({type(instruction).__name__})")
        image = image_ref(self, item["image_path"], root=file.parent, file=file, record=record, field="image_path")
        if not isinstance(image, ImagePart):
            return image
        meta = {k: item.get(k) for k in ("instruction_id", "sub_category", "source", "safety_reason") if k in item}
        # the published set has an item whose instruction is empty: the image alone is the prompt
        text = (instruction or "").strip()
        content = (image, TextPart(text=instruction)) if text else (image,)
        return Sample(id=key, benchmark=self.name, category=str(item["category"]), group=self.group,
                      content=content, meta=meta)
