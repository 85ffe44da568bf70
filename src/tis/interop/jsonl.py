"""Completions from any harness as JSONL: one `{id, prompt, images, output}` object per line.

Optional keys: `reasoning` (a thought kept apart from the output; else the thought formats split
`output`), `index` (the completion's number when a prompt has several, from 0), `category`,
`system`, `meta` (an object kept with the sample), `finish_reason` ("length" marks a cut-off
output), `error` (the completion failed: stored as failed, outside every rate). Image paths are
relative to the JSONL file's folder unless absolute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from tis.core.errors import DataError
from tis.core.types import Sample, TextPart, Usage
from tis.interop.runs import ImageCache, ImportedCompletion, set_aside

KEYS = {"id", "prompt", "images", "output", "reasoning", "index", "category", "system", "meta",
        "finish_reason", "error", "usage"}


def read_jsonl(path: str | Path, *, benchmark: str, group: str = "custom", skip_bad: bool = False,
               problems: list | None = None) -> Iterator[ImportedCompletion]:
    path = Path(path)
    try:
        f = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    images = ImageCache()
    with f:
        lines = enumerate(f, 1)
        while True:
            try:
                n, line = next(lines)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start} of a block)") from None
            if not line.strip():
                continue
            try:
                yield _completion(path, line, benchmark, group, images)
            except _Bad as exc:
                record = f"line {n}" + (f" (id {exc.sid})" if exc.sid is not None else "")
                set_aside(path, record, exc, skip_bad=skip_bad, problems=problems)


class _Bad(Exception):
    def __init__(self, message: str, sid=None):
        super().__init__(message)
        self.sid = sid


def _completion(path: Path, line: str, benchmark: str, group: str, images: ImageCache) -> ImportedCompletion:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _Bad(f"not valid JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise _Bad("not a JSON object")
    sid = rec.get("id")
    if isinstance(sid, bool) or not isinstance(sid, (str, int)) or str(sid) == "":
        raise _Bad("'id' must be a non-empty string or an integer")

    def bad(message: str) -> _Bad:
        return _Bad(message, sid)

    unknown = sorted(set(rec) - KEYS)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    prompt = rec.get("prompt")
    if not isinstance(prompt, str):
        raise bad("'prompt' must be a string")
    error = rec.get("error")
    if error is not None and not isinstance(error, str):
        raise bad("'error' must be a string or null")
    output = rec.get("output")
    if output is None and error is None:
        raise bad("'output' is missing (give 'error' for a completion that failed)")
    if output is not None and not isinstance(output, str):
        raise bad("'output' must be a string")
    for key in ("reasoning", "category", "system", "finish_reason"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            raise bad(f"'{key}' must be a string")
    index = rec.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise bad("'index' must be an integer from 0")
    meta = rec.get("meta") or {}
    if not isinstance(meta, dict):
        raise bad("'meta' must be an object")
    paths = rec.get("images") or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise bad("'images' must be a list of file paths")
    parts: list = []
    for p in paths:
        full = Path(p) if Path(p).is_absolute() else path.parent.resolve() / p
        part = images.part(str(full))
        if isinstance(part, str):
            raise bad(part)
        parts.append(part)
    usage = None
    if rec.get("usage") is not None:
        u = rec["usage"]
        try:
            usage = Usage(**{k: u.get(k) for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens")})
        except (AttributeError, ValueError):
            raise bad("'usage' must be an object of token counts") from None
    content = tuple(parts) + ((TextPart(text=prompt),) if prompt else ())
    if not content:
        raise bad("no prompt text and no image")
    sample = Sample(id=str(sid), benchmark=benchmark, category=rec.get("category"), group=group, content=content,
                    system=rec.get("system"), meta=meta)
    return ImportedCompletion(sample=sample, sample_index=index, text=output or "", reasoning=rec.get("reasoning"),
                              finish_reason=rec.get("finish_reason"), usage=usage, error=error)


