"""A built record: the item, its thought and answer, whether it was kept, and its lineage."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class BuiltRecord(BaseModel):
    """One item through the stages. `status` is `kept` or `dropped` (with `drop_stage`, `drop_reason`)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: str
    source_id: str
    images: list[str] = Field(default_factory=list)  # absolute paths of the originals
    image_sha256: list[str] = Field(default_factory=list)
    question: str | None = None
    label: str | None = None
    category: str | None = None
    caption: str | None = None
    thought: str | None = None
    answer: str | None = None
    decision: str | None = None
    status: Literal["kept", "dropped", "pending"] = "pending"
    drop_stage: str | None = None
    drop_reason: str | None = None
    lineage: dict[str, Any] = Field(default_factory=dict)

    def drop(self, stage: str, reason: str) -> "BuiltRecord":
        self.status, self.drop_stage, self.drop_reason = "dropped", stage, reason
        return self

    @property
    def alive(self) -> bool:
        return self.status != "dropped"
