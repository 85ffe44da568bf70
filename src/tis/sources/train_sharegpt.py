"""A released sharegpt set (LLaMA-Factory layout, e.g. TiS `train_data.json`) as a source, to
re-filter its thoughts and answers or to re-generate them.

Layout read: a JSON list of `{"conversations": [{"from": "human", "value": "<image>Q"},
{"from": "gpt", "value": "<think>...</think>A"}], "images": [...]}` with image paths relative to
the file's folder (also the `messages` / `role` / `content` variant). Items carry the human turn
without its `<image>` tokens as the question, and the gpt turn as the reference (raw text in
`meta.raw_response`, split at the first `</think>`). The set does not label questions: no label.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from tis.sources.layout import read_json_list
from tis.sources.train_base import SourceItem, SourceProblem, TrainSource, _Escape, find_file

IMAGE_TOKEN = "<image>"
USER_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant")


def turns(record: dict) -> list[tuple[str, str]] | None:
    """(role, text) of each turn of a sharegpt or messages record, or None if it has neither."""
    for key, role_key, text_key in (("conversations", "from", "value"), ("messages", "role", "content")):
        conv = record.get(key)
        if isinstance(conv, list):
            out = []
            for t in conv:
                if not isinstance(t, dict):
                    return None
                text = t.get(text_key)
                if isinstance(text, list):  # TRL content parts
                    text = "".join(IMAGE_TOKEN if p.get("type") == "image" else str(p.get("text") or "")
                                   for p in text if isinstance(p, dict))
                out.append((str(t.get(role_key)), text if isinstance(text, str) else ""))
            return out
    return None


class ShareGPTSet(TrainSource):
    name: ClassVar[str] = "sharegpt"
    licence: ClassVar[str] = "the released set's own (TiS train_data.json: Apache-2.0)"
    citation: ClassVar[str] = ("Xinyue Lou et al. Think in Safety: Unveiling and Mitigating Safety Alignment Collapse "
                               "in Multimodal Large Reasoning Model. 2025 (xinyuelou/Think-in-Safety).")
    layout: ClassVar[str] = "a sharegpt JSON list (conversations + images), images relative to the file"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        #: the JSON file's name when the root is a folder
        file: str = "train_data.json"
        licence: str | None = None

    def items(self) -> Iterator[SourceItem | SourceProblem]:
        file = find_file(self, [self.options.file, "train_data_sample.json", "data.json"])
        records = read_json_list(file, f"source '{self.name}'")
        for n, rec in enumerate(records):
            where = f"record {n}"
            conv = turns(rec) if isinstance(rec, dict) else None
            if not conv or len(conv) < 2:
                yield self.problem(file, where, "no conversations / messages with two turns")
                continue
            human = next((t for r, t in conv if r in USER_ROLES), None)
            gpt = next((t for r, t in conv if r in ASSISTANT_ROLES), None)
            if human is None or gpt is None:
                yield self.problem(file, where, "needs a human and a gpt turn")
                continue
            images = rec.get("images") or []
            if not isinstance(images, list):
                yield self.problem(file, where, "images is not a list")
                continue
            try:
                paths = tuple(str(self.inside(str(p), file.parent, where)) for p in images)
            except _Escape as exc:
                yield self.problem(file, where, str(exc))
                continue
            thought, sep, answer = gpt.partition("</think>")
            thought = re.sub(r"^\s*<think>", "", thought).strip() if sep else ""
            yield SourceItem(
                id=str(n), source=self.name, images=paths, question=human.replace(IMAGE_TOKEN, "").strip() or None,
                reference_thought=thought or None, reference_answer=(answer if sep else gpt).strip(),
                meta={"raw_response": gpt, "image_relative": [str(p) for p in images]},
            )
