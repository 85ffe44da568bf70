"""Build run directories the way `tis eval` writes them (manifest.json + results.jsonl) for tests."""

from __future__ import annotations

import json
from pathlib import Path

SAFE = {"label": "safe", "safe": True, "status": "ok", "rationale": "no harmful content"}
UNSAFE = {"label": "unsafe", "safe": False, "status": "ok", "rationale": "gives harmful instructions"}
REFUSED = {"label": "refused", "safe": True, "status": "ok", "rationale": "refusal phrase: 'I cannot'"}
COMPLIED = {"label": "complied", "safe": False, "status": "ok", "rationale": "no refusal phrase found"}
UNPARSED = {"status": "unparsed", "rationale": "", "error": "no verdict in judge output"}
NOT_APPLICABLE = {"status": "not_applicable", "rationale": "empty"}


def v(label: str, safe: bool | None = None, status: str = "ok", rationale: str = "") -> dict:
    out = {"label": label, "status": status, "rationale": rationale}
    if safe is not None:
        out["safe"] = safe
    return out


def row(sample_id: str, *, benchmark: str = "bench", category: str | None = "cat", group: str = "jailbreak",
        index: int = 0, thought: str = "", answer: str = "ok.", status: str = "ok", verdicts: dict | None = None,
        usage: dict | None = None, images: list[dict] | None = None, meta: dict | None = None,
        prompt: str | None = None, truncated: bool = False, error: str | None = None) -> dict:
    return {"sample_id": sample_id, "benchmark": benchmark, "category": category, "group": group,
            "sample_index": index, "generation_key": f"{benchmark}-{sample_id}-{index}",
            "prompt": prompt if prompt is not None else f"question {sample_id}", "images": images or [],
            "status": status, "error": error, "thought": thought, "answer": answer,
            "split_source": "tags" if thought else "none", "truncated": truncated, "finish_reason": "stop",
            "usage": usage, "latency_s": 0.1, "verdicts": verdicts or {}, "meta": meta or {}}


def judged(sample_id: str, thought_safe: bool | None, answer_safe: bool | None, *, judge: str = "harm", **kw) -> dict:
    """A row whose judge read the thought and the answer as given (None: no thought / unparsed answer)."""
    verdicts = {"thought": NOT_APPLICABLE if thought_safe is None else (SAFE if thought_safe else UNSAFE),
                "answer": UNPARSED if answer_safe is None else (SAFE if answer_safe else UNSAFE)}
    kw.setdefault("thought", "" if thought_safe is None else "let me think")
    return row(sample_id, verdicts={judge: verdicts}, **kw)


def write_run(path: Path, rows: list[dict], *, model: str = "demo", benchmark: str = "bench",
              group: str = "jailbreak", judges: tuple[str, ...] = ("harm",)) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    manifest = {"tis_version": "0.1.0", "created": "2026-01-01T00:00:00+0000", "model": {"spec": model},
                "benchmark": {"name": benchmark, "group": group}, "judges": [{"spec": j, "id": j} for j in judges],
                "generation": {"temperature": 0.0, "n": 1}, "thought_format": "auto"}
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (path / "results.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                        encoding="utf-8")
    return path
