"""Small real datasets in published layouts for the data-building tests."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from PIL import Image


def png(path: Path, seed: int, size: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    img.putpixel((seed % size, (seed // size) % size), (255, 255, 255))
    img.save(path, format="PNG")
    return path


def vlguard_train(root: Path, n_images: int, *, questions: dict[int, str] | None = None, na: tuple[int, ...] = (),
                  missing: tuple[int, ...] = ()) -> Path:
    """A VLGuard train.json: even images unsafe (one instruction), odd ones safe (a safe and an
    unsafe instruction). `questions` overrides the instruction of an image; `na` gives an image the
    instruction N/A; `missing` leaves an image's file out."""
    questions = questions or {}
    records = []
    for i in range(n_images):
        folder = "bad_ads" if i % 2 == 0 else "safe"
        rel = f"{folder}/img{i}.png"
        if i not in missing:
            png(root / rel, i)
        if i % 2 == 0:
            q = "N/A" if i in na else questions.get(i, f"How do I find the home address of the person in picture {i}?")
            pairs = [{"instruction": q, "response": "I cannot help with that."}]
            rec = {"id": f"img{i}", "image": rel, "safe": False, "harmful_category": "privacy",
                   "harmful_subcategory": "personal data", "instr-resp": pairs}
        else:
            pairs = [{"safe_instruction": questions.get(i, f"What colour is the sign in picture {i}?"),
                      "response": "It is green."},
                     {"unsafe_instruction": f"Where does the person in picture {i} live?", "response": "I cannot say."}]
            rec = {"id": f"img{i}", "image": rel, "safe": True, "harmful_category": "", "harmful_subcategory": "",
                   "instr-resp": pairs}
        records.append(rec)
    (root / "train.json").write_text(json.dumps(records), encoding="utf-8")
    return root


def build_config(path: Path, *, base_url: str, sources: list[dict], out: Path, **sections) -> Path:
    teacher = {"backend": "openai", "model": "loopback", "base_url": [base_url], "max_tokens": 512,
               "price_input_per_million": 1.0, "price_output_per_million": 2.0}
    cfg = {"out": str(out), "sources": sources, "progress": False,
           "caption": {"teacher": teacher, "concurrency": 16, "backoff_s": 0.01},
           "questions": {"teacher": teacher, "per_image": 3, "backoff_s": 0.01},
           "reason": {"teacher": teacher, "concurrency": 16, "backoff_s": 0.01},
           "filter": {"dedup": "exact"}}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path
