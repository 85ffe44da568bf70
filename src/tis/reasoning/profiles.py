"""Model profiles: what the project knows about each model, kept as data in `profiles.toml`.

A profile names the model's Hugging Face repo, how it marks its thought, the base
(non-reasoning) model it pairs with for the base-versus-reasoning comparison, the class that
loads it and the sampling it is meant to run with.

User files passed to `load_profiles` are read after the shipped one, in order. A table whose
name is new adds a profile; a table for a known name replaces only the fields it gives. A
`[formats.NAME]` table defines a thought format, usable by name in profiles and on the command
line once the file is loaded.

`aliases` are other names of a model (the name a paper uses: LLaVA-CoT for `Llama-3.2V-11B-cot`);
`get_profile` finds a profile by its name, an alias or its Hugging Face id, and an alias that names
two profiles is an error. `check_profile_files` reads user files up front, so a missing or broken
file is reported even when no profile is asked for.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from tis.core.errors import ConfigError
from tis.models.base import GenerationParams
from tis.reasoning.formats import ThoughtFormat, get_format, register_format
from tis.core.types import Frozen

SHIPPED = "profiles.toml (shipped with tis)"


class Profile(Frozen):
    name: str
    hf_id: str | None = None
    family: str
    thought_format: str | ThoughtFormat = "none"
    base: str | None = None  # the base profile's name, for reasoning models
    architecture: str | None = None  # the transformers class that loads it
    trust_remote_code: bool = False
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(4096, ge=1)
    aliases: tuple[str, ...] = ()
    example: str | None = None  # an output in the family's format
    notes: str = ""

    @property
    def format(self) -> ThoughtFormat:
        return get_format(self.thought_format)

    @property
    def reasoning(self) -> bool:
        return self.format.kind != "none"

    def generation_params(self, **overrides: Any) -> GenerationParams:
        """The profile's recommended sampling, with any field overridden."""
        values: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p,
                                  "max_tokens": self.max_tokens}
        values.update(overrides)
        return GenerationParams(**values)


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: profiles file not found; check the path") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read profiles file: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _shipped() -> dict[str, Any]:
    text = resources.files("tis.reasoning").joinpath("profiles.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _is_branch(part: object) -> bool:
    # pydantic names the branch of a union in the error location ("str", "...ThoughtFormat]")
    return isinstance(part, str) and (part == "str" or "ThoughtFormat" in part)


def _field_error(source: str, what: str, err: ValidationError) -> ConfigError:
    errors = err.errors()
    # a thought_format given as a table fails both union branches; the table's error is the useful one
    first = next((e for e in errors if any(_is_branch(p) and p != "str" for p in e["loc"])), errors[0])
    field = ".".join(str(part) for part in first["loc"] if not _is_branch(part)) or "(table)"
    return ConfigError(f"{source}: {what}: field '{field}': {first['msg']}")


def _load_formats(source: str, tables: Any) -> None:
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: 'formats' must hold tables such as [formats.my_format]")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: formats.{name} must be a table of format fields")
        if table.get("name", name) != name:
            raise ConfigError(f"{source}: formats.{name}: field 'name' must be '{name}' or left out")
        try:
            fmt = ThoughtFormat(**{**table, "name": name})
        except ValidationError as e:
            raise _field_error(source, f"thought format '{name}'", e) from None
        except TypeError as e:
            raise ConfigError(f"{source}: thought format '{name}': {e}") from None
        try:
            register_format(fmt)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None


def load_profiles(extra: Iterable[str | Path] = ()) -> dict[str, Profile]:
    """The shipped profiles, extended and overridden by each file in `extra`, in order."""
    fields: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    profiles: dict[str, Profile] = {}
    files = [(SHIPPED, _shipped())] + [(str(p), _read(Path(p))) for p in extra]
    for source, data in files:
        _load_formats(source, data.pop("formats", {}))
        for name, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f'{source}: \'{name}\' must be a table of profile fields (["{name}"]), not a value')
            if table.get("name", name) != name:
                raise ConfigError(f"{source}: profile '{name}': field 'name' must be '{name}' or left out")
            merged = {**fields.get(name, {}), **table}
            merged.pop("name", None)
            try:
                profile = Profile(name=name, **merged)
            except ValidationError as e:
                raise _field_error(source, f"profile '{name}'", e) from None
            if isinstance(profile.thought_format, ThoughtFormat):
                try:
                    register_format(profile.thought_format)
                except ConfigError as e:
                    raise ConfigError(f"{source}: profile '{name}': {e}") from None
            fields[name], sources[name], profiles[name] = merged, source, profile
    for name, profile in profiles.items():
        try:
            profile.format
        except ConfigError as e:
            raise ConfigError(f"{sources[name]}: profile '{name}': field 'thought_format': {e}") from None
        if profile.base is not None and profile.base not in profiles:
            raise ConfigError(f"{sources[name]}: profile '{name}': field 'base': no profile named "
                              f"'{profile.base}'; define it or leave 'base' out")
    _check_aliases(profiles, sources)
    return profiles


def _check_aliases(profiles: dict[str, Profile], sources: dict[str, str]) -> None:
    """An alias names one profile: not another profile's name or alias (letter case aside)."""
    owner = {name.lower(): name for name in profiles}
    for name, profile in profiles.items():
        for alias in profile.aliases:
            key = alias.strip().lower()
            if not key:
                raise ConfigError(f"{sources[name]}: profile '{name}': field 'aliases': an alias is empty")
            other = owner.get(key)
            if other is not None and other != name:
                raise ConfigError(f"{sources[name]}: profile '{name}': field 'aliases': '{alias}' already names "
                                  f"profile '{other}'")
            owner[key] = name


def check_profile_files(files: Iterable[str | Path]) -> dict[str, Profile]:
    """Read the shipped profiles and every user file now (registering their thought formats);
    a missing or invalid file is a ConfigError naming it."""
    return load_profiles(list(files))


def _find(name: str, profiles: dict[str, Profile]) -> Profile | None:
    if name in profiles:
        return profiles[name]
    key = name.strip().lower()
    for p in profiles.values():
        if key == p.name.lower() or key in (a.lower() for a in p.aliases) or (p.hf_id and key == p.hf_id.lower()):
            return p
    return None


def get_profile(name: str, extra: Iterable[str | Path] = ()) -> Profile:
    """A profile by its name, one of its aliases, or its Hugging Face repo id (any letter case)."""
    profiles = load_profiles(extra)
    profile = _find(name, profiles)
    if profile is None:
        close = difflib.get_close_matches(name, list(profiles), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; add it in a profiles file"
        raise ConfigError(f"unknown model profile '{name}'{hint}")
    return profile


def base_of(name: str, extra: Iterable[str | Path] = ()) -> Profile | None:
    """The base (non-reasoning) profile a reasoning model pairs with, or None."""
    profiles = load_profiles(extra)
    profile = _find(name, profiles)
    if profile is None:
        return get_profile(name, extra)  # raises the unknown-profile error
    return profiles[profile.base] if profile.base else None
