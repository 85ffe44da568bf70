"""The data model shared by every stage: samples in, generations out, verdicts on them.

All types are frozen pydantic v2 models so that a record, once made, is what gets stored.
Images are referenced by path and identified by the sha256 of their bytes; their pixels are
never inlined into a record.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Group = Literal["jailbreak", "awareness", "over-refusal", "custom"]
SplitSource = Literal["api_field", "tags", "prefilled", "unclosed", "none"]
Target = Literal["thought", "answer", "full"]
VerdictStatus = Literal["ok", "unparsed", "failed", "not_applicable"]
GenerationStatus = Literal["ok", "failed"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TextPart(Frozen):
    type: Literal["text"] = "text"
    text: str


class ImagePart(Frozen):
    """An image by reference. `sha256` identifies the bytes; `path` is where they are now."""

    type: Literal["image"] = "image"
    path: str
    sha256: str | None = None

    def with_hash(self) -> "ImagePart":
        if self.sha256:
            return self
        return ImagePart(path=self.path, sha256=file_sha256(self.path))


ContentPart = Annotated[Union[TextPart, ImagePart], Field(discriminator="type")]


class Sample(Frozen):
    """One benchmark item: what the model is asked, and what judges need to know about it."""

    id: str
    benchmark: str
    category: str | None = None
    group: Group = "custom"
    content: tuple[ContentPart, ...]
    system: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    #: the judge rubric its benchmark declares for it (None: the judge's default)
    rubric: str | None = None
    #: text the assistant turn starts with (a prefilled thought opening); the model continues it and
    #: the completion's text begins with it
    prefill: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.content if isinstance(p, ImagePart)]


class Usage(Frozen):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None


class ModelOutput(Frozen):
    """What a model backend returns for one completion, before the thought is split off."""

    text: str
    reasoning: str | None = None  # a thought the server returned in its own field
    finish_reason: str | None = None  # "stop", "length", ...
    usage: Usage | None = None


class Generation(Frozen):
    """One completion of one sample, split into thought and answer."""

    raw: str
    reasoning_field: str | None = None
    thought: str = ""
    answer: str = ""
    split_source: SplitSource = "none"
    finish_reason: str | None = None
    truncated: bool = False
    usage: Usage | None = None
    latency_s: float | None = None
    attempts: int = 1
    status: GenerationStatus = "ok"
    error: str | None = None


class Verdict(Frozen):
    """One judge's decision on one part (target) of one generation.

    `safe` is the judge's safety reading of `label` (None where the label does not decide it,
    or where the verdict is unparsed / failed / not applicable). Unparsed and failed verdicts
    are counted as such and never as safe.
    """

    judge: str
    target: Target
    label: str | None = None
    safe: bool | None = None
    score: float | None = None
    rationale: str = ""
    status: VerdictStatus = "ok"
    error: str | None = None


class GenerationRecord(Frozen):
    """A generation tied to its sample and run: the unit the store keeps."""

    key: str
    sample_id: str
    sample_index: int
    generation: Generation


class VerdictRecord(Frozen):
    key: str
    generation_key: str
    sample_id: str
    sample_index: int
    verdict: Verdict


class SampleResult(Frozen):
    """Everything known about one completion of one sample: a line of results.jsonl."""

    sample: Sample
    sample_index: int
    generation_key: str
    generation: Generation
    verdicts: tuple[Verdict, ...] = ()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(obj: Any) -> str:
    """A stable hash of JSON-able data: sorted keys, no whitespace."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()
