"""`tis data build CONFIG`: the build's configuration, one section per stage.

    out: builds/my-set                  # the build folder (store, records, export)
    spec: my_spec.yaml                  # optional: the safety specification (default: the shipped one)
    sources:
      - {name: vlguard, root: data/VLGuard, limit: 500}
      - {name: folder, root: my_images, options: {licence: CC-BY-4.0}}
    caption:   {teacher: {backend: openai, model: qwen2.5-vl-72b, base_url: [http://gpu1:8000/v1]}}
    questions: {teacher: {...}, per_image: 3, benign_share: 0.34}
    reason:    {teacher: {backend: openai, model: deepseek-r1, base_url: [...]}, concurrency: 64}
    filter:    {judges: ["llm:openai:judge@http://gpu2:8000/v1"], dedup: minilm}
    balance:   {max_per_cell: 200}
    export:    {name: tis_safety, formats: [sharegpt, parquet]}

Keys are checked: an unknown key or a wrong type names the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeacherConfig(_Model):
    """A model backend that writes a stage's outputs."""

    backend: str = Field("openai", description="model backend: openai, hf, vllm or demo (tis models list)")
    model: str = Field(..., description="model name on the server, or a local folder / hub id")
    base_url: list[str] = Field(default_factory=list, description="OpenAI-compatible server URL(s); several are replicas")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    timeout_s: float = Field(300.0, gt=0, description="seconds allowed per call")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra request fields (openai backend)")
    options: dict[str, Any] = Field(default_factory=dict, description="other backend arguments (hf: device, dtype, batch_size)")
    temperature: float = Field(0.6, ge=0, description="sampling temperature")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling")
    max_tokens: int = Field(4096, ge=1, description="tokens per completion")
    seed: int = Field(0, description="sampling seed (a re-asked malformed output uses seed + attempt)")
    price_input_per_million: float | None = Field(None, ge=0, description="cost of a million prompt tokens")
    price_output_per_million: float | None = Field(None, ge=0, description="cost of a million completion tokens")


class StageConfig(_Model):
    enabled: bool = Field(True, description="run this stage")
    teacher: TeacherConfig | None = Field(None, description="the stage's teacher (file only)")
    prompt: Path | None = Field(None, description="the prompt file (default: the shipped one)")
    concurrency: int = Field(32, ge=1, description="calls in flight")
    max_retries: int = Field(4, ge=0, description="retries of a failed call (429, 5xx, timeouts)")
    backoff_s: float = Field(1.0, ge=0, description="first retry's backoff in seconds")
    parse_retries: int = Field(2, ge=0, description="times a malformed or truncated output is asked again")


class CaptionConfig(StageConfig):
    min_chars: int = Field(20, ge=1, description="a shorter caption is malformed")


class QuestionsConfig(StageConfig):
    per_image: int = Field(3, ge=1, description="questions written per image without one")
    benign_share: float = Field(0.34, ge=0, le=1, description="share of benign questions (over-refusal matters)")
    borderline_share: float = Field(0.33, ge=0, le=1, description="share of borderline questions")

    @model_validator(mode="after")
    def _shares(self):
        if self.benign_share + self.borderline_share > 1:
            raise ValueError("benign_share + borderline_share must be at most 1")
        return self


class ReasonConfig(StageConfig):
    send_image: bool = Field(False, description="send the image too (a vision teacher); else only the caption")
    use_reference: bool = Field(True, description="with the stage off, keep a source's own thought and answer")
    hint_label: bool = Field(True, description="tell the teacher the source's label (never to be mentioned)")


class FilterConfig(_Model):
    judges: list[str] = Field(default_factory=list, description="judge specs that must find the answer safe")
    decision_judge: str | None = Field("refusal", description="judge of the answer's refusal (refused / complied) "
                                                              "checked against the decision; none: off")
    check_label: bool = Field(True, description="drop a decision that contradicts the item's label")
    leakage_phrases: Path | None = Field(None, description="file of leakage phrases (default: the shipped list)")
    min_thought_chars: int = Field(80, ge=0, description="shortest thought kept")
    max_thought_chars: int = Field(12000, ge=1, description="longest thought kept")
    min_answer_chars: int = Field(10, ge=0, description="shortest answer kept")
    max_answer_chars: int = Field(12000, ge=1, description="longest answer kept")
    dedup: Literal["minilm", "exact", "none"] = Field("minilm", description="near-duplicate removal")
    dedup_threshold: float = Field(0.95, gt=0, le=1, description="cosine similarity of a near duplicate")
    dedup_across_images: bool = Field(False, description="also drop near-duplicate texts about different images")
    concurrency: int = Field(32, ge=1, description="judgements in flight")


class BalanceConfig(_Model):
    max_per_cell: int | None = Field(None, ge=1, description="most records per category x decision x source")
    quotas: dict[str, int] = Field(default_factory=dict, description="'category/decision/source': n ('*' matches any)")
    seed: int = Field(0, description="which records a quota keeps")


class ExportConfig(_Model):
    name: str = Field("tis_safety", pattern=r"^[A-Za-z0-9._-]+$", description="dataset name (file and dataset_info key)")
    formats: list[Literal["sharegpt", "parquet"]] = Field(default_factory=lambda: ["sharegpt", "parquet"],
                                                          description="what to write")
    images: Literal["copy", "hardlink", "symlink"] = Field("copy", description="how images are placed beside the set")
    embed_images: bool = Field(True, description="parquet holds the image bytes (else relative paths)")


class SourceConfig(_Model):
    name: str = Field(..., description="training source (tis data sources)")
    root: Path = Field(..., description="its file or folder")
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(None, ge=1, description="first N usable items")
    licence: str | None = Field(None, description="licence text for the card (default: the loader's)")


class BuildConfig(_Model):
    out: Path = Field(Path("tis-build"), description="build folder")
    spec: Path | None = Field(None, description="safety specification YAML (default: the shipped one)")
    sources: list[SourceConfig] = Field(default_factory=list, description="training sources (file only)")
    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    questions: QuestionsConfig = Field(default_factory=QuestionsConfig)
    reason: ReasonConfig = Field(default_factory=ReasonConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    progress: bool = Field(True, description="show progress bars")

    def resolved(self, base: Path, from_file: "BuildConfig | None" = None) -> "BuildConfig":
        """Relative paths written in a config file are relative to the file's folder; those given as
        flags (where they differ from `from_file`, the file's own values) to the working folder."""
        data = self.model_copy(deep=True)

        def fix(p: Path | None, file_value: Path | None) -> Path | None:
            if p is None or p.is_absolute():
                return p
            came_from_file = from_file is None or p == file_value
            return (base / p) if came_from_file else p.resolve()

        f = from_file
        data.out = fix(data.out, f.out if f else None)
        data.spec = fix(data.spec, f.spec if f else None)
        for i, s in enumerate(data.sources):
            s.root = fix(s.root, f.sources[i].root if f and i < len(f.sources) else None)
        for name in ("caption", "questions", "reason"):
            stage = getattr(data, name)
            stage.prompt = fix(stage.prompt, getattr(f, name).prompt if f else None)
        data.filter.leakage_phrases = fix(data.filter.leakage_phrases, f.filter.leakage_phrases if f else None)
        return data
