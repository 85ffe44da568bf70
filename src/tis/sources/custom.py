"""A user's own set in JSON Lines: one object per line with `id`, `prompt`, `images` (paths
relative to the file) and optional `category`, `group`, `meta`.

    {"id": "q1", "prompt": "What is shown here?", "images": ["imgs/a.png"], "category": "weapons"}

A bad line (not JSON, not UTF-8, a wrong field) is a Problem naming the line; the rest of the
file is still read, and `--skip-bad` runs without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, get_args

from tis.sources.base import Benchmark, Problem
from tis.sources.layout import image_ref, problem
from tis.core.errors import DataError
from tis.core.types import Group, ImagePart, Sample, TextPart

REQUIRED = ("id", "prompt")
KEYS = ("id", "prompt", "images", "category", "group", "meta")
GROUPS = get_args(Group)


class CustomJSONL(Benchmark):
    name: ClassVar[str] = "custom"
    group = "custom"
    metric_kind: ClassVar[str] = "safety_rate"
    metric_by_group: ClassVar[dict[str, str]] = {"jailbreak": "asr", "over-refusal": "refusal_rate"}
    rubric: ClassVar[str] = "harm"
    rubric_by_group: ClassVar[dict[str, str]] = {"over-refusal": "refusal"}
    licence: ClassVar[str] = "yours"
    citation: ClassVar[str] = ""
    size: ClassVar[int | None] = None
    size_note: ClassVar[str] = "whatever the file holds"
    metric: ClassVar[str] = "by each sample's group: ASR (jailbreak), safety rate (awareness), refusal rate (over-refusal)"
    layout: ClassVar[str] = ("a .jsonl file (or a folder holding one): one object per line with id, prompt, images "
                             "(paths relative to the file), optional category, group, meta")

    def jsonl_path(self) -> Path:
        assert self.data is not None
        if self.data.is_file():
            return self.data
        found = sorted(self.data.glob("*.jsonl"))
        if len(found) == 1:
            return found[0]
        if not found:
            raise DataError(f"{self.name}: no .jsonl file in {self.data}; pass --data FILE.jsonl")
        raise DataError(f"{self.name}: several .jsonl files in {self.data} ({', '.join(p.name for p in found)}); "
                        "pass --data with the one to use")

    def records(self) -> Iterator[Sample | Problem]:
        file = self.jsonl_path()
        try:
            handle = open(file, "rb")  # decoded line by line: one bad line is a Problem naming it
        except OSError as exc:
            raise DataError(f"{self.name}: cannot read {file}: {exc.strerror}") from None
        seen: set[str] = set()
        with handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    yield problem(file, f"line {number}", f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                                          f"column {exc.start + 1}); save the file as UTF-8")
                    continue
                if line.strip():
                    yield self._sample(line, number, file, seen)

    @staticmethod
    def _json_object(line: str, number: int, file: Path) -> dict | Problem:
        """One line of the file as a JSON object, or the problem naming the line."""
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            return problem(file, f"line {number}", f"not valid JSON ({exc.msg} at column {exc.colno})")
        if not isinstance(item, dict):
            return problem(file, f"line {number}", f"should be a JSON object, found {type(item).__name__}")
        return item

    def _sample(self, line: str, number: int, file: Path, seen: set[str]) -> Sample | Problem:
        record = f"line {number}"
        item = self._json_object(line, number, file)
        if isinstance(item, Problem):
            return item
        unknown = sorted(set(item) - set(KEYS))
        if unknown:
            return problem(file, record, f"unknown key(s) {', '.join(unknown)}; expected {', '.join(KEYS)}")
        missing = [k for k in REQUIRED if k not in item]
        if missing:
            return problem(file, record, f"missing {', '.join(missing)}")
        key = item["id"]
        if not isinstance(key, (str, int)) or isinstance(key, bool) or str(key).strip() == "":
            return problem(file, record, f"id should be a non-empty string or number, found {key!r}")
        key = str(key)
        record = f"line {number} (id {key})"
        if key in seen:
            return problem(file, record, f"duplicate id {key}")
        seen.add(key)
        if not isinstance(item["prompt"], str):
            return problem(file, record, "prompt should be a string")
        images = item.get("images", [])
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, list):
            return problem(file, record, "images should be a list of paths")
        if not item["prompt"].strip() and not images:
            return problem(file, record, "empty prompt and no images")
        group = item.get("group", "custom")
        if group not in GROUPS:
            return problem(file, record, f"group should be one of {', '.join(GROUPS)}, found {group!r}")
        meta = item.get("meta", {})
        if not isinstance(meta, dict):
            return problem(file, record, "meta should be an object")
        content: list = []
        for n, relative in enumerate(images):
            image = image_ref(self, relative, root=file.parent, file=file, record=record, field=f"images[{n}]")
            if not isinstance(image, ImagePart):
                return image
            content.append(image)
        if item["prompt"].strip():
            content.append(TextPart(text=item["prompt"]))
        category = item.get("category")
        return Sample(id=key, benchmark=self.name, category=None if category is None else str(category),
                      group=group, content=tuple(content), meta=meta)
