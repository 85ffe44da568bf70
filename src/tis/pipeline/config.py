"""EvalConfig: every setting of an evaluation run. The CLI's flags and the Python API fill it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tis.core.config import cli as _cli
from tis.core.errors import ConfigError


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # model under test
    model: str = Field("demo", description="demo (offline pipeline check; cannot see images) | openai:NAME (with "
                       "--base-url) | hf:PATH_OR_HUB_ID | vllm:PATH_OR_HUB_ID (GPU)", json_schema_extra=_cli("model"))
    base_url: list[str] = Field(default_factory=list, description="OpenAI-compatible base URL, e.g. "
                                "http://127.0.0.1:8000/v1; repeat for replicas", json_schema_extra=_cli("model", "URL"))
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key",
                                    json_schema_extra=_cli("model", "VAR"))
    device: str = Field("auto", description="hf/demo: auto | cpu | cuda[:N]", json_schema_extra=_cli("model"))
    dtype: str = Field("auto", description="hf/demo: auto | float32 | bfloat16 | float16",
                       json_schema_extra=_cli("model"))
    batch_size: int | None = Field(None, ge=1, description="hf/demo: samples per generate call (unset: the "
                                   "backend's choice)", json_schema_extra=_cli("model", "N"))
    base: str | None = Field(None, description="hf: the base model of a PEFT adapter folder given as --model "
                             "hf:ADAPTER_DIR (unset: the adapter's base_model_name_or_path)",
                             json_schema_extra=_cli("model", "PATH_OR_HUB_ID"))
    model_options: dict[str, Any] = Field(default_factory=dict, description="a backend option KEY=VALUE passed to "
                                          "the model backend (e.g. revision=COMMIT, device_map=auto, or a plugin "
                                          "backend's own); repeatable", json_schema_extra=_cli("model", None, "--model-set"))
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout in seconds",
                             json_schema_extra=_cli("model", "SECONDS", "--timeout"))
    thought_format: str | None = Field(None, description="how to split thought from answer: auto | r1 | "
                                       "r1_prefilled | kimi | llava_cot | mulberry | plain | none (unset: the "
                                       "profile's, else auto)", json_schema_extra=_cli("model", "FORMAT"))
    profile: str | None = Field(None, description="a model profile or alias (tis models list): thought format, "
                                "sampling, base model", json_schema_extra=_cli("model", "NAME"))
    profile_files: list[str] = Field(default_factory=list, description="a TOML file of extra or changed model "
                                     "profiles; repeatable", json_schema_extra=_cli("model", "FILE", "--profiles"))
    # benchmark
    benchmark: str = Field("safebench-tiny", description="benchmark name (tis benchmarks list)",
                           json_schema_extra=_cli("benchmark", "NAME", "-b"))
    data: str | None = Field(None, description="the benchmark's data folder or file, as published",
                             json_schema_extra=_cli("benchmark", "PATH"))
    options: dict[str, Any] = Field(default_factory=dict, description="a benchmark option (e.g. "
                                    "variant=baseline); repeatable", json_schema_extra=_cli("benchmark", None, "--set"))
    limit: int | None = Field(None, ge=1, description="only the first N samples",
                              json_schema_extra=_cli("benchmark", "N"))
    sample: int | None = Field(None, ge=1, description="a seeded random subset of N samples (the same every time)",
                               json_schema_extra=_cli("benchmark", "N"))
    sample_seed: int = Field(0, description="seed for --sample", json_schema_extra=_cli("benchmark", "SEED"))
    skip_bad: bool = Field(False, description="skip unreadable items (counted and listed) instead of stopping",
                           json_schema_extra=_cli("benchmark"))
    # generation
    temperature: float | None = Field(None, ge=0, description="sampling temperature (unset: the profile's, else 0)",
                                      json_schema_extra=_cli("generation", "T"))
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling (unset: the profile's, else 1)",
                                json_schema_extra=_cli("generation", "P"))
    max_tokens: int | None = Field(None, ge=1, description="most new tokens per completion (unset: the "
                                   "profile's, else the backend's)", json_schema_extra=_cli("generation", "N"))
    max_thought_tokens: int | None = Field(None, ge=1, description="thought budget: hf closes the thought after N "
                                           "tokens and marks the sample truncated; over HTTP only --max-tokens "
                                           "bounds it", json_schema_extra=_cli("generation", "N"))
    seed: int | None = Field(0, description="sampling seed (none: no seed)",
                             json_schema_extra=_cli("generation", "SEED"))
    n: int = Field(1, ge=1, description="completions per prompt",
                   json_schema_extra=_cli("generation", "N", "-n", "--num-samples"))
    system_prompt: str | None = Field(None, description="a system prompt put before every sample's own (e.g. a "
                                      "safety instruction; unset: the benchmark's prompts as they are)",
                                      json_schema_extra=_cli("generation", "TEXT"))
    thought_prefill: str | None = Field(None, description="text the assistant turn starts with, continued by the "
                                        "model: a safety reminder at the start of the thought ('<think>\\nFirst "
                                        "check whether this request is safe.'), or '<think>\\n\\n</think>' for no "
                                        "thinking where the family allows it. HTTP servers must support "
                                        "continue_final_message (vLLM, SGLang)", json_schema_extra=_cli("generation", "TEXT"))
    # judging
    judges: list[str] | None = Field(None, description="a judge (tis judges list); repeat for several (unset: "
                                     "offline and refusal; refusal alone without tis[judge])",
                                     json_schema_extra=_cli("judging", "SPEC", "--judge"))
    # running
    concurrency: int = Field(16, ge=1, description="requests in flight at once",
                             json_schema_extra=_cli("running", "N"))
    max_retries: int = Field(5, ge=0, description="retries on 429 / 5xx / timeouts",
                             json_schema_extra=_cli("running", "N"))
    backoff_s: float = Field(1.0, ge=0, description="first retry delay in seconds (longer with each retry)",
                             json_schema_extra=_cli("running", "SECONDS"))
    max_connection_failures: int = Field(8, ge=0, description="stop the run when this many model calls in a row "
                                         "could not connect to the server (0: never); what is stored is kept",
                                         json_schema_extra=_cli("running", "N"))
    out: str = Field("runs", description="parent folder of run directories", json_schema_extra=_cli("running", "DIR"))
    name: str | None = Field(None, description="run directory name (unset: derived from the settings, so a re-run "
                             "resumes)", json_schema_extra=_cli("running", "NAME"))
    force: bool = Field(False, description="reuse a --name whose run has another model, benchmark or generation "
                        "settings (its visible outputs are replaced)", json_schema_extra=_cli("running"))
    progress: bool = Field(True, description="show a progress bar", json_schema_extra=_cli("running"))
    report: bool = Field(True, description="write report.html into the run directory",
                         json_schema_extra=_cli("running"))

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
