"""inspect_ai logs out of and into tis runs, through inspect_ai's own types, writer and reader.

Out: one `EvalSample` per completion (id = the sample id, epoch = the completion's index + 1). The
user message holds the prompt text and each image (`ContentImage`, embedded as a data URI so
`inspect view` shows it); the assistant message holds the thought as `ContentReasoning` beside the
answer as `ContentText`; each judge and target gives one `Score` named `{judge}/{target}` whose
value is the verdict's label (or its status where it has none), explanation its rationale, and
metadata the judge, target, status, safe reading and score.

In: each sample (and epoch) of a log becomes one completion of a tis run: the input's system
message, text and images make the sample; the output's reasoning parts are the thought, else the
thought formats split its text. No model is called.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError, DataError
from tis.core.types import ImagePart, Sample, TextPart, Usage
from tis.interop.runs import ImageCache, ImportedCompletion, set_aside

INSTALL = "pip install 'tis[inspect]'"


def _require() -> None:
    try:
        import inspect_ai  # noqa: F401
    except ImportError:
        raise ConfigError(f"inspect_ai logs need the inspect-ai package: {INSTALL}") from None


# ------------------------------------------------------------------------------------------------
# out


def _data_uri(path: str) -> str | None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    mime = mimetypes.guess_type(path)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _inspect_model_name(spec: str) -> str:
    """inspect names models `provider/model`; tis specs are `kind:arg`."""
    kind, sep, arg = spec.partition(":")
    return f"{kind}/{arg}" if sep and arg else f"tis/{spec}"


def _score(verdict: dict[str, Any], judge: str, target: str, text: str):
    from inspect_ai.scorer import Score

    status = verdict.get("status", "ok")
    label = verdict.get("label")
    value = label if status == "ok" and label else status
    return Score(value=value, answer=text, explanation=verdict.get("rationale") or None,
                 metadata={"judge": judge, "target": target, "status": status, "label": label,
                           "safe": verdict.get("safe"), "score": verdict.get("score"),
                           "error": verdict.get("error")})


def run_to_eval_log(run, *, embed_images: bool = True):
    """The inspect_ai `EvalLog` of a tis run (`tis.results.runs.Run`)."""
    _require()
    from inspect_ai._util.error import EvalError
    from inspect_ai.log import (EvalConfig, EvalDataset, EvalLog, EvalMetric, EvalResults, EvalSample,
                                EvalScore, EvalSpec)
    from inspect_ai.model import (ChatCompletionChoice, ChatMessageAssistant, ChatMessageUser,
                                  ContentImage, ContentReasoning, ContentText, ModelOutput, ModelUsage)

    from tis.render.export import manifest_of, plain

    manifest = manifest_of(run)
    bench = manifest.get("benchmark") or {}
    model = _inspect_model_name(run.model)
    rows = [plain(r) for r in run.rows]
    uris: dict[str, str | None] = {}
    samples = []
    tallies: dict[str, list[int]] = {}  # score name -> [safe, decided, total]
    for row in rows:
        parts: list = []
        for im in row.get("images") or []:
            path = im.get("path") or ""
            if embed_images:
                if path not in uris:
                    uris[path] = _data_uri(path)
                image = uris[path] or path
            else:
                image = path
            parts.append(ContentImage(image=image))
        parts.append(ContentText(text=row.get("prompt") or ""))
        meta = row.get("meta") or {}
        inputs = [ChatMessageUser(content=parts)]
        ok = row.get("status", "ok") == "ok"
        content: list = []
        if row.get("thought"):
            content.append(ContentReasoning(reasoning=row["thought"]))
        content.append(ContentText(text=row.get("answer") or ""))
        assistant = ChatMessageAssistant(content=content, model=model, source="generate")
        usage = row.get("usage") or {}
        model_usage = None
        if usage.get("prompt_tokens") is not None or usage.get("completion_tokens") is not None:
            pt, ct = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
            model_usage = ModelUsage(input_tokens=pt, output_tokens=ct, total_tokens=pt + ct,
                                     reasoning_tokens=usage.get("reasoning_tokens"))
        finish = row.get("finish_reason")
        stop = {"stop": "stop", "length": "max_tokens", "thought_budget": "max_tokens", None: "unknown"}.get(
            finish, "unknown")
        output = ModelOutput(model=model, choices=[ChatCompletionChoice(message=assistant, stop_reason=stop)] if ok else [],
                             usage=model_usage, time=row.get("latency_s"), error=None if ok else row.get("error"))
        scores = {}
        for judge, targets in (row.get("verdicts") or {}).items():
            for target, verdict in targets.items():
                name = f"{judge}/{target}"
                text = row.get("thought") if target == "thought" else row.get("answer")
                if target == "full":
                    text = "\n\n".join(t for t in (row.get("thought"), row.get("answer")) if t)
                scores[name] = _score(verdict, judge, target, text or "")
                t = tallies.setdefault(name, [0, 0, 0])
                t[2] += 1
                if verdict.get("status", "ok") == "ok" and verdict.get("safe") is not None:
                    t[1] += 1
                    t[0] += bool(verdict["safe"])
        sample_meta = {"tis": {k: row.get(k) for k in ("benchmark", "category", "group", "generation_key",
                                                       "split_source", "truncated", "finish_reason")}}
        if meta:
            sample_meta["sample"] = meta
        samples.append(EvalSample(
            id=row["sample_id"], epoch=int(row.get("sample_index") or 0) + 1, input=inputs, target="",
            messages=inputs + ([assistant] if ok else []), output=output, scores=scores or None,
            metadata=sample_meta, total_time=row.get("latency_s"),
            error=None if ok else EvalError(message=row.get("error") or "generation failed", traceback="",
                                            traceback_ansi="")))
    ids = list(dict.fromkeys(r["sample_id"] for r in rows))
    epochs = max((int(r.get("sample_index") or 0) + 1 for r in rows), default=1)
    created = manifest.get("created") or ""
    if len(created) >= 24 and created[-5] in "+-" and created[-3] != ":":  # ...+0000 -> ...+00:00
        created = created[:-2] + ":" + created[-2:]
    results = EvalResults(
        total_samples=len(samples), completed_samples=sum(1 for s in samples if s.error is None),
        scores=[EvalScore(name=name, scorer=name.split("/")[0], scored_samples=t[1], unscored_samples=t[2] - t[1],
                          metrics={"safe_rate": EvalMetric(name="safe_rate", value=t[0] / t[1] if t[1] else float("nan"))})
                for name, t in tallies.items()])
    ids_of = _ids(run, manifest)
    spec = EvalSpec(
        created=created or "1970-01-01T00:00:00+00:00", task=f"tis/{bench.get('name') or 'run'}",
        eval_id=ids_of["eval_id"], run_id=ids_of["run_id"], task_id=ids_of["task_id"], model=model, dataset=EvalDataset(name=bench.get("name"), location=str(bench.get("data") or "") or None,
                                         samples=len(ids), sample_ids=ids),
        config=EvalConfig(epochs=epochs), task_args=bench.get("options") or {},
        metadata={"tis": {"run": str(run.dir), "model": manifest.get("model"), "benchmark": bench,
                          "judges": manifest.get("judges"), "thought_format": manifest.get("thought_format"),
                          "generation": manifest.get("generation"), "tis_version": manifest.get("tis_version")}})
    return EvalLog(eval=spec, samples=samples, results=results, status="success")


def _ids(run, manifest: dict[str, Any]) -> dict[str, str]:
    """Stable ids for the log (inspect_ai makes random ones): the same run exports to the same ids."""
    from tis.core.types import content_hash

    base = {"run": run.dir.resolve().name, "created": manifest.get("created"), "model": run.model}
    return {"eval_id": content_hash({**base, "id": "eval"})[:22], "run_id": content_hash({**base, "id": "run"})[:22],
            "task_id": content_hash({"benchmark": manifest.get("benchmark"), "id": "task"})[:22]}


def default_log_name(run) -> str:
    """inspect_ai's own log file naming, `{created}_{task}_{task id}.eval`, which `inspect view` lists by task."""
    import re

    from tis.render.export import manifest_of

    manifest = manifest_of(run)
    created = re.sub(r"[:]", "-", str(manifest.get("created") or "1970-01-01T00-00-00+00-00"))
    task = re.sub(r"[^A-Za-z0-9.-]+", "-", str((manifest.get("benchmark") or {}).get("name") or "run"))
    return f"{created}_{task}_{_ids(run, manifest)['task_id']}.eval"


def write_inspect_log(run, path: Path, *, embed_images: bool = True) -> Path:
    _require()
    from inspect_ai.log import write_eval_log

    log = run_to_eval_log(run, embed_images=embed_images)
    if path.suffix not in (".eval", ".json"):
        raise ConfigError(f"{path}: an inspect_ai log file name ends in .eval (or .json)")
    write_eval_log(log, str(path))
    return path


# ------------------------------------------------------------------------------------------------
# in


def read_log(path: str | Path):
    """The whole log with attachments resolved (images and long texts inlined again)."""
    _require()
    from inspect_ai.log import read_eval_log

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such inspect_ai log file")
    try:
        # the whole log at once: inspect_ai's per-sample streaming and its field exclusion both read
        # a log several times slower (measured with benchmarks/bench_import.py)
        return read_eval_log(str(path), resolve_attachments=True)
    except Exception as exc:  # inspect_ai raises many kinds for a file that is not one of its logs
        raise DataError(f"{path}: not a readable inspect_ai log ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


class _Bad(Exception):
    pass


class _Images:
    """Images of a log's inputs as files: data URIs are written once each under `folder`."""

    def __init__(self, folder: Path, log_dir: Path):
        self.folder, self.log_dir = folder, log_dir
        self.cache = ImageCache()
        self.written: dict[str, ImagePart] = {}

    def part(self, image: str) -> ImagePart:
        if image.startswith("data:"):
            head, sep, data = image.partition(",")
            if not sep or ";base64" not in head:
                raise _Bad("an image data URI that is not base64")
            digest = hashlib.sha256(data.encode("ascii", "replace")).hexdigest()
            if digest not in self.written:
                try:
                    raw = base64.b64decode(data, validate=True)
                except (binascii.Error, ValueError):
                    raise _Bad("an image data URI whose base64 does not decode") from None
                ext = mimetypes.guess_extension(head[5:].split(";")[0]) or ".img"
                sha = hashlib.sha256(raw).hexdigest()
                self.folder.mkdir(parents=True, exist_ok=True)
                out = self.folder / f"{sha[:32]}{ext}"
                if not out.exists():
                    out.write_bytes(raw)
                part = self.cache.part(str(out))
                if isinstance(part, str):
                    raise _Bad(part)
                self.written[digest] = part
            return self.written[digest]
        if image.startswith(("http://", "https://")):
            raise _Bad(f"image {image} is a URL: tis judges local files; download it and use its path")
        if image.startswith("attachment://"):
            raise _Bad(f"image {image} is an attachment the log does not hold")
        path = Path(image[7:] if image.startswith("file://") else image)
        part = self.cache.part(str(path if path.is_absolute() else self.log_dir / path))
        if isinstance(part, str):
            raise _Bad(part)
        return part


def _input(sample, images: _Images) -> tuple[tuple, str | None]:
    from inspect_ai.model import ContentImage, ContentText

    if isinstance(sample.input, str):
        return (TextPart(text=sample.input),), None
    system: list[str] = []
    parts: list = []
    for m in sample.input:
        if m.role == "system":
            system.append(m.text)
            continue
        if m.role != "user":
            raise _Bad(f"its input holds a '{m.role}' message: tis imports single-turn inputs (system + user)")
        if isinstance(m.content, str):
            parts.append(TextPart(text=m.content))
            continue
        for c in m.content:
            if isinstance(c, ContentText):
                parts.append(TextPart(text=c.text))
            elif isinstance(c, ContentImage):
                parts.append(images.part(c.image))
            else:
                raise _Bad(f"its input holds a '{c.type}' part: tis imports text and image inputs")
    # tis keeps the images before the text, as its loaders do
    ordered = tuple(p for p in parts if p.type == "image") + tuple(p for p in parts if p.type == "text")
    if not ordered:
        raise _Bad("its input has no text and no image")
    return ordered, "\n\n".join(system) or None


def _output(sample) -> tuple[str, str | None, str | None]:
    """(text, reasoning, finish reason) of the sample's completion."""
    from inspect_ai.model import ContentReasoning, ContentText

    out = sample.output
    message, stop = None, None
    if out is not None and out.choices:
        message, stop = out.choices[0].message, out.choices[0].stop_reason
    elif sample.messages and sample.messages[-1].role == "assistant":
        message = sample.messages[-1]
    if message is None:
        return "", None, None
    finish = {"max_tokens": "length", "model_length": "length"}.get(stop, stop)
    if isinstance(message.content, str):
        return message.content, None, finish
    texts, thoughts = [], []
    for c in message.content:
        if isinstance(c, ContentText):
            texts.append(c.text)
        elif isinstance(c, ContentReasoning):
            if not c.redacted and c.reasoning:
                thoughts.append(c.reasoning)
            elif c.summary:  # an encrypted thought: its summary is all there is to judge
                thoughts.append(c.summary)
    return "\n".join(texts), "\n\n".join(thoughts) or None, finish


def _usage(sample) -> Usage | None:
    u = sample.output.usage if sample.output is not None else None
    if u is None:
        return None
    return Usage(prompt_tokens=u.input_tokens, completion_tokens=u.output_tokens, reasoning_tokens=u.reasoning_tokens)


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


def log_completions(log, path: Path, run_dir: Path, *, benchmark: str, group: str = "custom",
                    category_key: str = "category", skip_bad: bool = False,
                    problems: list | None = None) -> Iterator[ImportedCompletion]:
    """Each sample of `log` as a completion; input images that are data URIs go to `run_dir/images`."""
    images = _Images((run_dir / "images").resolve(), path.parent.resolve())
    for s in log.samples or []:
        try:
            content, system = _input(s, images)
            text, reasoning, finish = _output(s)
            error = s.error.message if s.error is not None else None
            if error is None and s.output is not None and s.output.error:
                error = s.output.error
            if error is None and not text and not reasoning:
                raise _Bad("it has no output (no assistant message and no error)")
        except _Bad as exc:
            set_aside(path, f"sample {s.id} (epoch {s.epoch})", exc, skip_bad=skip_bad, problems=problems,
                      what="samples")
            continue
        meta = dict(s.metadata or {})
        category = meta.get(category_key)
        if s.target:
            meta["target"] = s.target
        if s.scores:
            meta["inspect_scores"] = {name: {"value": sc.value, "answer": sc.answer, "explanation": sc.explanation}
                                      for name, sc in s.scores.items()}
        sample = Sample(id=str(s.id), benchmark=benchmark, group=group, content=content, system=system,
                        category=str(category) if category is not None and not isinstance(category, (dict, list)) else None,
                        meta=_jsonable(meta))
        yield ImportedCompletion(sample=sample, sample_index=max(int(s.epoch or 1), 1) - 1, text=text,
                                 reasoning=reasoning, finish_reason=finish, usage=_usage(s), error=error,
                                 latency_s=s.total_time)


def log_source(log, path: Path) -> dict[str, Any]:
    spec = log.eval
    return {"kind": "inspect_ai", "file": str(path), "id": spec.eval_id or spec.run_id or str(path),
            "task": spec.task, "model": spec.model, "created": spec.created, "status": log.status}


def log_generation(log) -> dict[str, Any]:
    """The generation settings the log records, as tis's GenerationParams fields."""
    cfg = log.eval.model_generate_config
    out: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("max_tokens", "max_tokens"),
                         ("seed", "seed")):
        value = getattr(cfg, theirs, None)
        if value is not None:
            out[ours] = value
    return out
