"""`--judge SPEC` strings -> judges.

    refusal                                   a registered judge by name
    offline:weights.npz                       a registered judge with its argument
    llm:openai:MODEL@BASE_URL[,BASE_URL...][?OPTIONS]
    llm:hf:MODEL_FOLDER_OR_HUB_ID[?OPTIONS]
    guard:hf:MODEL_FOLDER_OR_HUB_ID[?OPTIONS]   (guard:PATH is short for guard:hf:PATH)

OPTIONS are `key=value` joined by `&`, e.g.
`llm:openai:gpt-4o@https://api.openai.com/v1?key_env=OPENAI_API_KEY&rubric=siuo_effectiveness`.
The judge model is configured only by the spec: the key is read from the variable `key_env` names
(never from a variable the user did not name), and never shown in identities, logs or errors.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from typing import Any

from tis.core.errors import ConfigError
from tis.judges.base import Judge

LLM_SYNTAX = "llm:openai:MODEL@BASE_URL[?key_env=VAR&rubric=NAME...] or llm:hf:MODEL_FOLDER[?rubric=NAME...]"
GUARD_SYNTAX = "guard:hf:MODEL_FOLDER[?device=cuda&batch_size=8...]"

_COMMON = ("id", "targets")
_LLM = _COMMON + ("rubric", "thought_rubric", "rubric_dir", "images", "max_tokens", "parse_retries",
                  "max_retries", "backoff", "concurrency", "max_chars")
_LLM_OPENAI = _LLM + ("key_env", "timeout")
_LOCAL = ("device", "dtype", "batch_size")
_LLM_HF = _LLM + _LOCAL
_GUARD = _COMMON + _LOCAL + ("max_new_tokens",)
_TARGETS = ("thought", "answer", "full")


def parse_judge_spec(spec: str) -> Judge:
    """A judge from a `--judge` string (see the module docstring)."""
    from tis.judges import JUDGES

    spec = spec.strip()
    if not spec:
        raise ConfigError("--judge is empty: give a judge name (tis judges list) or an llm:... / guard:... spec")
    name, sep, arg = spec.partition(":")
    factory = JUDGES.load(name)
    return factory(arg) if sep and arg else factory()


def shown(spec: str) -> str:
    """The spec as it may be printed: option values other than known harmless ones and any URL
    user-info hidden (a key pasted into a spec by mistake must not reach a log)."""
    body, sep, query = spec.partition("?")
    body = re.sub(r"(https?://)[^/@\s]*@", r"\1***@", body)
    if not sep:
        return body
    safe = set(_LLM_OPENAI + _LLM_HF + _GUARD)
    pairs = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        # a key pasted where the variable's name belongs stays hidden too (names are upper case)
        hide = key not in safe or (key == "key_env" and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value))
        pairs.append(f"{key}={'***' if hide else value}" if eq else key)
    return f"{body}?{'&'.join(pairs)}"


class _Options:
    """`key=value&...` checked against the keys a spec kind takes; typed accessors name the spec."""

    def __init__(self, spec: str, query: str, allowed: tuple[str, ...]):
        self.spec = spec
        self.values: dict[str, str] = {}
        for pair in filter(None, query.split("&")):
            key, eq, value = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not eq or not key:
                raise self.error(f"option '{key or pair[:20]}' has no value: write key=value, joined by &")
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.error(f"unknown option '{key}'{hint}; options: {', '.join(allowed)}")
            if key in self.values:
                raise self.error(f"option '{key}' is given twice")
            self.values[key] = value.strip()

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"--judge '{shown(self.spec)}': {message}")

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.values.get(key)
        if value == "":
            raise self.error(f"option '{key}' is empty")
        return value if value is not None else default

    def number(self, key: str, kind: Callable[[str], Any], default: Any, minimum: float | None = None) -> Any:
        if key not in self.values:
            return default
        try:
            value = kind(self.values[key])
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise self.error(f"option {key}={self.values[key]} is not {what}") from None
        if minimum is not None and value < minimum:
            raise self.error(f"option {key}={self.values[key]} must be at least {minimum:g}")
        return value

    def targets(self) -> tuple[str, ...] | None:
        value = self.text("targets")
        if value is None:
            return None
        given = [t.strip() for t in value.split(",") if t.strip()]
        bad = [t for t in given if t not in _TARGETS]
        if bad or not given:
            raise self.error(f"option targets={value}: take some of {', '.join(_TARGETS)}, comma separated")
        return tuple(given)

    def judge_id(self) -> str | None:
        value = self.text("id")
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", value):
            raise self.error(f"option id={value}: use letters, digits, '.', '_' and '-' only")
        return value


def _split(rest: str) -> tuple[str, str]:
    body, _, query = rest.partition("?")
    return body.strip(), query


def llm_judge(arg: str | None = None) -> Judge:
    """The `llm` judge from the text after `llm:`."""
    spec = f"llm:{arg or ''}"
    kind, sep, rest = (arg or "").partition(":")
    if not sep or kind not in ("openai", "hf") or not rest.strip():
        raise ConfigError(f"--judge '{shown(spec)}': an LLM judge needs a backend and a model: {LLM_SYNTAX}")
    body, query = _split(rest)
    if kind == "openai":
        opts = _Options(spec, query, _LLM_OPENAI)
        # the model name may hold ":" or "/" (llama3:8b, org/name): the server starts at "@http"
        parts = re.split(r"@(?=https?://)", body, maxsplit=1)
        model, urls = (parts[0], parts[1]) if len(parts) == 2 else (body, "")
        if not model or not urls:
            raise opts.error(f"the judge model's server is missing: write MODEL@BASE_URL, e.g. "
                             f"llm:openai:gpt-4o@https://api.openai.com/v1 ({LLM_SYNTAX})")
        key_env = opts.text("key_env")
        if key_env is not None:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env):
                raise opts.error("option key_env takes the NAME of an environment variable that holds the key "
                                 "(e.g. key_env=OPENAI_API_KEY), not the key itself")
            if not os.environ.get(key_env):
                raise opts.error(f"key_env={key_env} names an environment variable that is not set: "
                                 f"export {key_env}=<key>")
        from tis.models.openai_compat import OpenAIBackend

        try:
            backend = OpenAIBackend(model, base_url=[u.strip() for u in urls.split(",") if u.strip()],
                                    api_key_env=key_env, timeout_s=opts.number("timeout", float, 120.0, 0.001))
        except ConfigError as exc:
            raise opts.error(str(exc)) from None
    else:
        opts = _Options(spec, query, _LLM_HF)
        from tis.models.hf import HFBackend

        try:
            backend = HFBackend(model=body, device=opts.text("device", "auto"), dtype=opts.text("dtype", "auto"),
                                batch_size=opts.number("batch_size", int, 4, 1))
        except ConfigError as exc:
            raise opts.error(str(exc)) from None
        model = body
    from tis.judges.llm import LLMJudge

    try:
        return LLMJudge(backend, rubric=opts.text("rubric"), thought_rubric=opts.text("thought_rubric"),
                        rubric_dir=opts.text("rubric_dir"), judge_id=opts.judge_id(), targets=opts.targets(),
                        images=opts.text("images", "auto"), max_tokens=opts.number("max_tokens", int, 1024, 1),
                        parse_retries=opts.number("parse_retries", int, 2, 0),
                        max_retries=opts.number("max_retries", int, 4, 0),
                        backoff_s=opts.number("backoff", float, 1.0, 0),
                        concurrency=opts.number("concurrency", int, None, 1),
                        max_chars=opts.number("max_chars", int, None, 100), model_name=model)
    except ConfigError as exc:
        raise opts.error(str(exc).removeprefix("llm judge: ")) from None


def guard_judge(arg: str | None = None) -> Judge:
    """The `guard` judge from the text after `guard:`."""
    spec = f"guard:{arg or ''}"
    rest = (arg or "").removeprefix("hf:")
    body, query = _split(rest)
    if not body:
        raise ConfigError(f"--judge '{shown(spec)}': a guard judge needs a model folder or hub id: {GUARD_SYNTAX}")
    opts = _Options(spec, query, _GUARD)
    from tis.judges.guard import GuardJudge

    try:
        return GuardJudge(body, device=opts.text("device", "auto"), dtype=opts.text("dtype", "auto"),
                          batch_size=opts.number("batch_size", int, 8, 1),
                          max_new_tokens=opts.number("max_new_tokens", int, 10, 1),
                          judge_id=opts.judge_id(), targets=opts.targets())
    except ConfigError as exc:
        raise opts.error(str(exc).removeprefix("guard judge: ")) from None
