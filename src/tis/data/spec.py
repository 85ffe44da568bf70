"""The safety specification as data: categories with definitions, allowed, disallowed and
safe-completion rules, loaded from a YAML file (the shipped `specs/default.yaml` or the user's own).

`SafetySpec.sha256` is the hash of the file's bytes; it goes into every built record's lineage.
`SafetySpec.text()` is the Markdown a teacher reads.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tis.core.errors import ConfigError

DECISIONS = ("refuse", "safe_completion", "help")


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    definition: str
    allowed: list[str] = Field(min_length=1)
    disallowed: list[str] = Field(min_length=1)
    safe_completion: str
    #: other names sources use for this category (VLGuard's, SPA-VL's), matched like the id
    aliases: list[str] = []

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9_]+", value):
            raise ValueError(f"category id '{value}' must be lower-case letters, digits and '_'")
        return value


class SafetySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    version: int | str = 1
    decisions: dict[str, str]
    general: list[str] = []
    categories: list[Category] = Field(min_length=1)
    # filled in by load_spec
    path: str = ""
    sha256: str = ""

    @field_validator("decisions")
    @classmethod
    def _decisions(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [d for d in DECISIONS if d not in value]
        if missing:
            raise ValueError(f"decisions must describe {', '.join(DECISIONS)} (missing {', '.join(missing)})")
        return value

    def category_ids(self) -> list[str]:
        return [c.id for c in self.categories]

    def category(self, name: str | None) -> Category | None:
        """The category a source's label names, matched loosely (id, name, or a word of either)."""
        if not name:
            return None
        def norm(text: str) -> str:
            return re.sub(r"[^a-z0-9]", "", text.lower())

        key = norm(name)
        for c in self.categories:
            if key in {norm(c.id), norm(c.name), *(norm(a) for a in c.aliases)}:
                return c
        return None

    def text(self) -> str:
        lines = [f"# Safety specification: {self.name} (version {self.version})", "", "## Decisions"]
        lines += [f"- **{k}**: {v}" for k, v in self.decisions.items()]
        if self.general:
            lines += ["", "## General rules"] + [f"- {g}" for g in self.general]
        lines += ["", "## Categories"]
        for c in self.categories:
            lines += ["", f"### {c.name} (`{c.id}`)", c.definition, "", "**Allowed Requests**:"]
            lines += [f"- {a}" for a in c.allowed]
            lines += ["", "**Disallowed Requests**:"] + [f"- {d}" for d in c.disallowed]
            lines += ["", f"**Safe completion**: {c.safe_completion}"]
        return "\n".join(lines) + "\n"


def default_spec_path() -> Path:
    return Path(str(resources.files("tis.data").joinpath("specs/default.yaml")))


def load_spec(path: str | Path | None = None) -> SafetySpec:
    import yaml

    file = Path(path).expanduser() if path else default_spec_path()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"safety specification {file}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"safety specification {file}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"safety specification {file}: should be a mapping with name, decisions, categories")
    try:
        spec = SafetySpec(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise ConfigError(f"safety specification {file}: {problems}") from None
    ids = spec.category_ids()
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"safety specification {file}: category id(s) {', '.join(dup)} appear twice")
    return spec.model_copy(update={"path": str(file), "sha256": hashlib.sha256(raw).hexdigest()})
