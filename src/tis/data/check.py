"""`tis data check FILE`: is a sharegpt / messages set fit to train on?

Reads a LLaMA-Factory sharegpt JSON (`conversations` + `images`), a messages JSON / JSONL
(`messages` with role / content, TRL's content parts too) or a Parquet file of `messages` +
`images`. For each record it checks:

errors (the record would train wrongly; exit 1):
  schema            no user turn or no assistant turn, or turns that are not text
  image count       `<image>` tokens (or image parts) differ from the number of images
                    (a `messages` record may have none: its images lead, as `tis train` reads it)
  image             an image that is missing or does not open
  format            not exactly one closed `<think>` thought at the very start of the answer
                    (text or a bold / heading before it, several or unclosed thoughts)
  empty thought     nothing but whitespace or markup inside `<think>...</think>`
  leakage           the thought shows it was written from a caption or a reference answer
  mismatch (judge)  with `--judge`: the judge reads the thought and the answer; one refuses and the
                    other does not
warnings (listed, counted):
  noise             empty `* *` emphasis, a `---` rule or a quoted answer right after `</think>`
  mismatch (guess)  without a judge: the thought's closing sentences decide one way, the answer goes
                    the other (a heuristic)
  duplicate         the same images and the same question (and answer) as an earlier record
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tis.core.errors import DataError
from tis.core.io import image_marks_fit, read_records
from tis.data.text import answer_refuses, find_leakage, format_issues, load_leakage_phrases, noise_issues, split, thought_decision

IMAGE_TOKEN = "<image>"
USER = ("human", "user")
ASSISTANT = ("gpt", "assistant")


@dataclass
class Finding:
    index: int
    image: str
    kind: str
    severity: str  # error | warning
    detail: str

    def line(self) -> str:
        return f"[{self.index}] {self.image or '-'}: {self.kind}: {self.detail}"


@dataclass
class CheckReport:
    file: str
    records: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def bad_records(self) -> int:
        return len({f.index for f in self.errors})

    def counts(self) -> dict[str, int]:
        return dict(Counter(f"{f.severity}: {f.kind}" for f in self.findings).most_common())

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "records": self.records, "records_with_errors": self.bad_records,
                "counts": self.counts(), "findings": [f.__dict__ for f in self.findings]}


def _text_of(content: Any) -> tuple[str | None, int]:
    """(text, image parts) of a turn's content: a string, or TRL content parts."""
    if isinstance(content, str):
        return content, 0
    if isinstance(content, list):
        texts, images = [], 0
        for p in content:
            if not isinstance(p, dict):
                return None, 0
            if p.get("type") == "image":
                images += 1
            elif p.get("type") == "text" and isinstance(p.get("text"), str):
                texts.append(p["text"])
        return "".join(texts), images
    return None, 0


def read_set(path: Path) -> list[Any]:
    """The records of a set file; a Parquet file's image cells `{bytes, path}` become the path, or
    `{"embedded": ..., "bytes": ...}` where the bytes are embedded."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows = read_records(path)
    if path.suffix == ".parquet":
        for row in rows:
            row["images"] = [c.get("path") if isinstance(c, dict) and not c.get("bytes") else
                             {"embedded": bool(isinstance(c, dict) and c.get("bytes")), "bytes": c.get("bytes") if isinstance(c, dict) else None}
                             for c in (row.get("images") or [])]
    return rows


def check_file(path: str | Path, *, judge=None, leakage_phrases: str | Path | None = None,
               open_images: bool = True) -> CheckReport:
    path = Path(path)
    records = read_set(path)
    phrases = tuple(load_leakage_phrases(leakage_phrases))
    report = CheckReport(file=str(path), records=len(records))
    image_state: dict[str, str | None] = {}
    seen: dict[tuple, int] = {}
    pairs: list[tuple[int, str, str, str, str]] = []  # for the judge: index, image, question, thought, answer
    for n, rec in enumerate(records):
        def add(kind: str, severity: str, detail: str, image: str = "") -> None:
            report.findings.append(Finding(n, image, kind, severity, detail))

        if not isinstance(rec, dict):
            add("schema", "error", "the record is not an object")
            continue
        images = rec.get("images", [])
        if images is None:
            images = []
        if not isinstance(images, list):
            add("schema", "error", "`images` is not a list")
            continue
        shown = str(images[0]) if images and isinstance(images[0], str) else ""
        turns, key = None, None
        for k, role_key, text_key in (("conversations", "from", "value"), ("messages", "role", "content")):
            if isinstance(rec.get(k), list):
                turns, key = [(t.get(role_key), t.get(text_key)) if isinstance(t, dict) else (None, None)
                              for t in rec[k]], k
                break
        if turns is None:
            add("schema", "error", "no `conversations` or `messages` list", shown)
            continue
        user_text, assistant_text, image_parts, bad_turn = [], [], 0, False
        for role, content in turns:
            text, parts = _text_of(content)
            if text is None or role is None:
                bad_turn = True
                continue
            image_parts += parts
            if role in USER:
                user_text.append(text)
            elif role in ASSISTANT:
                assistant_text.append(text)
        if bad_turn:
            add("schema", "error", f"a turn of `{key}` lacks a role or text", shown)
            continue
        if not user_text or not assistant_text:
            add("schema", "error", "needs a user and an assistant turn", shown)
            continue
        tokens = sum(t.count(IMAGE_TOKEN) for t in user_text) + image_parts
        if not image_marks_fit(tokens, len(images), sharegpt=key == "conversations"):
            add("image count", "error", f"{tokens} <image> token(s) for {len(images)} image(s)", shown)
        for im in images:
            problem = _image_problem(im, path.parent, image_state, open_images)
            if problem:
                add("image", "error", problem, str(im) if isinstance(im, str) else "(embedded)")
        answer_text = assistant_text[-1]
        issues = format_issues(answer_text)
        for issue in issues:
            kind = "empty thought" if issue == "empty thought" else "format"
            add(kind, "error", issue, shown)
        for issue in noise_issues(answer_text):
            add("noise", "warning", issue, shown)
        thought, answer = split(answer_text)
        leak = find_leakage(thought, phrases)
        if leak:
            add("leakage", "error", f"the thought says {leak!r}", shown)
        question = " ".join(user_text).replace(IMAGE_TOKEN, "").strip()
        if thought and answer:
            pairs.append((n, shown, question, thought, answer))
        dkey = (tuple(str(i) for i in images), " ".join(question.lower().split()))
        if dkey in seen:
            add("duplicate", "warning", f"same images and question as record {seen[dkey]}", shown)
        else:
            seen[dkey] = n
    _mismatches(report, pairs, judge)
    report.findings.sort(key=lambda f: (f.index, f.severity != "error"))
    return report


def _image_problem(im: Any, base: Path, cache: dict[str, str | None], open_images: bool) -> str | None:
    if isinstance(im, dict):  # an embedded image from parquet
        data = im.get("bytes")
        if not data:
            return "an image cell with neither bytes nor a path"
        if not open_images:
            return None
        import io

        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except Exception as exc:
            return f"embedded image does not open ({type(exc).__name__})"
        return None
    if not isinstance(im, str) or not im:
        return "an image entry that is not a path"
    if im in cache:
        return cache[im]
    p = (base / im) if not Path(im).is_absolute() else Path(im)
    problem = None
    if not p.is_file():
        problem = f"image file missing ({p})"
    elif open_images:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(p) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            problem = f"image does not open ({type(exc).__name__})"
    cache[im] = problem
    return problem


def _mismatches(report: CheckReport, pairs, judge) -> None:
    if judge is None:
        for n, shown, _, thought, answer in pairs:
            decided = thought_decision(thought)
            refused = answer_refuses(answer)
            if decided == "refuse" and not refused:
                report.findings.append(Finding(n, shown, "mismatch (guess)", "warning",
                                               "the thought decides to refuse; the answer does not refuse"))
            elif decided == "help" and refused:
                report.findings.append(Finding(n, shown, "mismatch (guess)", "warning",
                                               "the thought decides to help; the answer refuses"))
        return
    import asyncio

    from tis.core.types import Generation, Sample, TextPart

    async def run() -> list:
        await judge.start()
        sem = asyncio.Semaphore(getattr(judge, "max_concurrency", 8) or 8)

        async def one(n, question, thought, answer):
            sample = Sample(id=str(n), benchmark="tis-data-check", content=(TextPart(text=question),))
            gen = Generation(raw="", thought=thought, answer=answer)
            async with sem:
                t = await judge.judge(sample, gen, "thought", thought)
                a = await judge.judge(sample, gen, "answer", answer)
            return t, a

        try:
            return await asyncio.gather(*(one(n, q, t, a) for n, _, q, t, a in pairs))
        finally:
            await judge.close()

    for (n, shown, _, _, _), (tv, av) in zip(pairs, asyncio.run(run())):
        if tv.status != "ok" or av.status != "ok":
            report.findings.append(Finding(n, shown, "mismatch (judge)", "error",
                                           f"the judge gave no verdict ({tv.status} / {av.status}); not counted as fine"))
        elif (tv.label == "refused") != (av.label == "refused"):
            report.findings.append(Finding(n, shown, "mismatch (judge)", "error",
                                           f"the thought is judged {tv.label}, the answer {av.label}"))
