"""EvalConfig: every setting of an evaluation run. The CLI's flags and the Python API fill it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tis.core.errors import ConfigError


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # model under test
    model: str = Field("demo", description="demo | openai:NAME | hf:PATH_OR_HUB_ID")
    base_url: list[str] = Field(default_factory=list, description="OpenAI-compatible base URL(s)")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = Field(None, ge=1)
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout")
    thought_format: str | None = Field(None, description="[auto, or the profile's]")
    profile: str | None = None
    profile_files: list[str] = Field(default_factory=list, description="extra profile TOML files")
    # benchmark
    benchmark: str = "safebench-tiny"
    data: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(None, ge=1)
    sample: int | None = Field(None, ge=1)
    sample_seed: int = 0
    skip_bad: bool = False
    # generation
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_thought_tokens: int | None = Field(None, ge=1, description="close the thought after N tokens (hf)")
    seed: int | None = 0
    n: int = Field(1, ge=1)
    # judging
    judges: list[str] | None = Field(None, description="[offline + refusal; refusal alone without tis[judge]]")
    # running
    concurrency: int = Field(16, ge=1)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    out: str = "runs"
    name: str | None = None
    progress: bool = True
    report: bool = Field(True, description="write report.html into the run directory")

    @field_validator("judges")
    @classmethod
    def _judges_not_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("at least one judge is needed")
        return v


def make_config(**kwargs: Any) -> EvalConfig:
    try:
        return EvalConfig(**kwargs)
    except ValidationError as exc:
        problems = "; ".join(f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"bad option: {problems}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of option: value")
    return data
