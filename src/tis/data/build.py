"""`tis data build`: sources -> caption -> questions -> reason -> filter -> balance -> export.

Every teacher call and every judgement goes through the pipeline's executors into the build's
run store (`OUT/tis.sqlite`), keyed by content, with its stage and parents; a killed build run
again sends only what is missing. The build writes:

    OUT/records.jsonl    every item, kept or dropped (stage and reason), with its lineage
    OUT/manifest.json    config, specification hash, sources, per-stage calls / tokens / cost, drops
    OUT/export/          the exported set (see tis.data.export)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError, DataError, TisError
from tis.core.types import Generation, GenerationRecord, ImagePart, Sample, TextPart, content_hash
from tis.data import stages
from tis.data.config import BuildConfig
from tis.data.records import BuiltRecord
from tis.data.spec import SafetySpec, load_spec
from tis.data.text import answer_refuses, compose, find_leakage, format_issues, load_leakage_phrases, noise_issues, thought_decision

log = logging.getLogger("tis")

RECORDS = "records.jsonl"
EXPORT = "export"


@dataclass
class BuildResult:
    out: Path
    records: list[BuiltRecord]
    usage: dict[str, dict] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    card: dict[str, Any] | None = None
    wall_s: float = 0.0

    @property
    def kept(self) -> list[BuiltRecord]:
        return [r for r in self.records if r.status == "kept"]


def run_build(cfg: BuildConfig) -> BuildResult:
    return asyncio.run(build(cfg))


def _reason_kind(stage: str, reason: str) -> str:
    return f"{stage}: {reason.split(':')[0].split(' (')[0].strip()}"


async def build(cfg: BuildConfig) -> BuildResult:
    from tis.pipeline.executor import Progress, RunStats
    from tis.pipeline.store import RunLock, RunStore

    t0 = time.perf_counter()
    spec = load_spec(cfg.spec)
    prompts = {s: stages.load_prompt(s, getattr(cfg, s).prompt) for s in ("caption", "questions", "reason")}
    stages.check_prompt("questions", prompts["questions"], ("caption",))
    stages.check_prompt("reason", prompts["reason"], ("question", "spec"))
    if not cfg.sources:
        raise ConfigError("sources: the build has no sources: add at least one {name, root}")
    if cfg.reason.enabled and not cfg.reason.send_image and not cfg.caption.enabled:
        raise ConfigError("reason.send_image is false and caption.enabled is false: a text-only reason teacher "
                          "needs captions; enable the caption stage or send the image")
    phrases = tuple(load_leakage_phrases(cfg.filter.leakage_phrases))
    out = Path(cfg.out)
    with RunLock(out, "tis data build"):
        store = RunStore(out)
        try:
            stats = RunStats()
            with Progress(enabled=cfg.progress) as progress:
                b = _Build(cfg, spec, prompts, phrases, store, stats, progress)
                records = b.load_sources()
                await b.caption(records)
                records = await b.questions(records)
                await b.reason(records)
                await b.filter(records)
                b.balance(records)
            result = b.finish(records, time.perf_counter() - t0)
        finally:
            store.close()
    return result


class _Build:
    def __init__(self, cfg: BuildConfig, spec: SafetySpec, prompts: dict[str, str], phrases: tuple[str, ...],
                 store, stats, progress):
        self.cfg, self.spec, self.prompts, self.phrases = cfg, spec, prompts, phrases
        self.store, self.stats, self.progress = store, stats, progress
        self.sources: list[dict] = []
        self.usage: dict[str, dict] = {}
        self.dedup_info: dict[str, Any] = {}
        self._image_cache: dict[str, str | tuple[str]] = {}

    # sources ----------------------------------------------------------------------------------
    def load_sources(self) -> list[BuiltRecord]:
        from tis.sources.train_base import SourceProblem, load_source

        names = Counter(s.name for s in self.cfg.sources)
        records: list[BuiltRecord] = []
        for i, sc in enumerate(self.cfg.sources):
            try:
                source = load_source(sc.name, sc.root, sc.options)
            except TisError as exc:
                raise type(exc)(f"sources[{i}] ({sc.name}): {exc}") from None
            desc = source.describe()
            if sc.licence:
                desc["licence"] = sc.licence
            self.sources.append(desc)
            prefix = sc.name if names[sc.name] == 1 else f"{sc.name}{i}"
            usable = 0
            try:
                for item in source.items():
                    if isinstance(item, SourceProblem):
                        records.append(BuiltRecord(id=f"{prefix}:problem:{item.file}:{item.record}", source=sc.name,
                                                   source_id=item.record).drop("source", item.reason))
                        continue
                    if sc.limit is not None and usable >= sc.limit:
                        break
                    usable += 1
                    rec = BuiltRecord(id=f"{prefix}:{item.id}", source=sc.name, source_id=item.id,
                                      images=list(item.images), question=item.question, label=item.label,
                                      category=self._category(item.category),
                                      lineage={"spec": {"name": self.spec.name, "sha256": self.spec.sha256},
                                               "source": {"name": sc.name, "root": str(sc.root), "id": item.id,
                                                          "category": item.category,
                                                          "subcategory": item.subcategory}})
                    if item.reference_answer is not None:
                        rec.lineage["reference"] = {"thought": item.reference_thought, "answer": item.reference_answer,
                                                    "raw": item.meta.get("raw_response")}
                    self._check_images(rec)
                    records.append(rec)
            except TisError as exc:
                raise type(exc)(f"sources[{i}] ({sc.name}): {exc}") from None
        if not any(r.alive for r in records):
            reasons = Counter(f"{r.drop_reason.split(':')[0]}" for r in records)
            first = next((r for r in records), None)
            example = f"; e.g. {first.id}: {first.drop_reason}" if first else ""
            raise DataError(f"the sources gave no usable item ({', '.join(f'{n} {k}' for k, n in reasons.most_common())})"
                            f"{example}")
        return records

    def _category(self, name: str | None) -> str | None:
        cat = self.spec.category(name)
        return cat.id if cat else name

    def _check_images(self, rec: BuiltRecord) -> None:
        from PIL import Image, UnidentifiedImageError

        from tis.core.types import file_sha256

        shas = []
        for path in rec.images:
            if path not in self._image_cache:
                try:
                    with Image.open(path) as im:
                        im.verify()
                    self._image_cache[path] = file_sha256(path)
                except FileNotFoundError:
                    self._image_cache[path] = ("image missing",)
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                    self._image_cache[path] = (f"image does not open ({type(exc).__name__})",)
            got = self._image_cache[path]
            if isinstance(got, tuple):
                rec.drop("source", f"{got[0]}: {path}")
                return
            shas.append(got)
        rec.image_sha256 = shas

    def _parts(self, rec: BuiltRecord) -> list[ImagePart]:
        return [ImagePart(path=p, sha256=h) for p, h in zip(rec.images, rec.image_sha256)]

    async def _run(self, stage: str, jobs, parse):
        from tis.data.teach import run_stage

        cfg = getattr(self.cfg, stage)
        if cfg.teacher is None:
            raise ConfigError(f"{stage}.teacher: {len(jobs)} item(s) need the {stage} stage but it has no teacher; "
                              f"set {stage}.teacher or {stage}.enabled: false")
        outcomes, usage = await run_stage(self.store, stage, cfg, jobs, parse, progress=self.progress,
                                          stats=self.stats)
        self.usage[stage] = usage.as_dict()
        return outcomes

    # caption ----------------------------------------------------------------------------------
    async def caption(self, records: list[BuiltRecord]) -> None:
        from tis.data.teach import Job

        if not self.cfg.caption.enabled:
            return
        groups: dict[str, list[BuiltRecord]] = {}
        for r in records:
            if r.alive and r.image_sha256:
                groups.setdefault("+".join(r.image_sha256), []).append(r)
        if not groups:
            return
        jobs = [Job(id=gid, sample=stages.caption_sample(self._parts(rs[0]), self.prompts["caption"]))
                for gid, rs in groups.items()]
        outcomes = await self._run("caption", jobs,
                                   lambda o: stages.parse_caption(o, self.cfg.caption.min_chars))
        for gid, rs in groups.items():
            o = outcomes[gid]
            for r in rs:
                r.lineage["caption_calls"] = o.keys
                if o.value is None:
                    r.drop("caption", o.error or "no caption")
                else:
                    r.caption = o.value
                    r.lineage["caption_key"] = o.key

    # questions --------------------------------------------------------------------------------
    async def questions(self, records: list[BuiltRecord]) -> list[BuiltRecord]:
        from tis.data.teach import Job

        need = [r for r in records if r.alive and not r.question]
        if not need:
            return records
        if not self.cfg.questions.enabled:
            for r in need:
                r.drop("questions", "no question (the questions stage is off)")
            return records
        q = self.cfg.questions
        counts = stages.question_counts(q.per_image, q.benign_share, q.borderline_share)
        groups: dict[str, list[BuiltRecord]] = {}
        for r in need:
            groups.setdefault("+".join(r.image_sha256), []).append(r)
        jobs = []
        for gid, rs in groups.items():
            parents = (rs[0].lineage["caption_key"],) if rs[0].lineage.get("caption_key") else ()
            jobs.append(Job(id=gid, sample=stages.questions_sample(self._parts(rs[0]), rs[0].caption or "(see the image)",
                                                                   self.prompts["questions"], self.spec, counts),
                            parents=parents))
        outcomes = await self._run("questions", jobs, lambda o: stages.parse_questions(o, self.spec, sum(counts)))
        needed = {id(r) for r in need}
        out = [r for r in records if id(r) not in needed]
        for gid, rs in groups.items():
            o = outcomes[gid]
            for parent in rs:
                if o.value is None:
                    out.append(parent.drop("questions", o.error or "no questions"))
                    continue
                # the parent is replaced by the questions written for its images
                for k, qd in enumerate(o.value):
                    child = parent.model_copy(deep=True)
                    child.id = f"{parent.id}/q{k}"
                    child.question, child.label, child.category = qd["question"], qd["label"], qd["category"]
                    child.lineage["questions_key"] = o.key
                    child.lineage["questions_calls"] = o.keys
                    child.lineage["parent_item"] = parent.id
                    out.append(child)
        return out

    # reason -----------------------------------------------------------------------------------
    async def reason(self, records: list[BuiltRecord]) -> None:
        from tis.data.teach import Job

        alive = [r for r in records if r.alive]
        rc = self.cfg.reason
        if not rc.enabled:
            for r in alive:
                ref = r.lineage.get("reference")
                if rc.use_reference and ref and (ref.get("thought") or "").strip():
                    r.thought, r.answer = ref["thought"], ref["answer"]
                    # a released thought has no Decision line: read it from the thought's closing
                    # sentences, else from whether the answer refuses
                    guess = thought_decision(r.thought)
                    r.decision = guess or ("refuse" if answer_refuses(r.answer) else "help")
                    r.lineage["thought_from"] = "source"
                    r.lineage["decision_from"] = "thought" if guess else "answer"
                else:
                    r.drop("reason", "no thought (the reason stage is off and the source has none)")
            return
        jobs = []
        spec_text = self.spec.text()
        for r in alive:
            parents = tuple(k for k in (r.lineage.get("caption_key"), r.lineage.get("questions_key")) if k)
            hint = stages.reason_hint(r.label if rc.hint_label else None, r.category if rc.hint_label else None)
            images = self._parts(r) if rc.send_image else []
            jobs.append(Job(id=r.id, sample=stages.reason_sample(images, r.caption, r.question or "",
                                                                 self.prompts["reason"], spec_text, hint),
                            parents=parents))
        outcomes = await self._run("reason", jobs, lambda o: stages.parse_reason(o, self.spec))
        for r in alive:
            o = outcomes[r.id]
            r.lineage["reason_calls"] = o.keys
            if o.value is None:
                r.drop("reason", o.error or "no thought")
                continue
            v = o.value
            r.thought, r.answer, r.decision = v.thought, v.answer, v.decision
            r.category = r.category or v.category
            r.lineage["reason_key"] = o.key
            r.lineage["thought_from"] = "teacher"

    # filter -----------------------------------------------------------------------------------
    async def filter(self, records: list[BuiltRecord]) -> None:
        fc = self.cfg.filter
        for r in records:
            if not r.alive:
                continue
            raw = (r.lineage.get("reference") or {}).get("raw") if r.lineage.get("thought_from") == "source" else None
            text = raw or compose(r.thought or "", r.answer or "")
            problems = format_issues(text) + noise_issues(text)
            if any("<image>" in (t or "") for t in (r.question, r.thought, r.answer)):
                problems.insert(0, "a literal <image> token in the text (it would break the image count)")
            if problems:
                r.drop("filter", f"format: {problems[0]}")
                continue
            leak = find_leakage(r.thought or "", self.phrases)
            if leak:
                r.drop("filter", f"leakage: the thought says {leak!r}")
                continue
            t, a = len((r.thought or "").strip()), len((r.answer or "").strip())
            if not fc.min_thought_chars <= t <= fc.max_thought_chars:
                r.drop("filter", f"length: thought of {t} characters (bounds {fc.min_thought_chars}-{fc.max_thought_chars})")
                continue
            if not fc.min_answer_chars <= a <= fc.max_answer_chars:
                r.drop("filter", f"length: answer of {a} characters (bounds {fc.min_answer_chars}-{fc.max_answer_chars})")
                continue
            if fc.check_label:
                if r.label == "unsafe" and r.decision == "help":
                    r.drop("filter", "decision: helps with a request labelled unsafe")
                    continue
                if r.label == "benign" and r.decision == "refuse":
                    r.drop("filter", "decision: refuses a request labelled benign (over-refusal)")
                    continue
        await self._judge(records)
        self._dedup(records)

    async def _judge(self, records: list[BuiltRecord]) -> None:
        from tis.judges.spec import parse_judge_spec
        from tis.pipeline.executor import JudgeRequest, JudgingExecutor
        from tis.pipeline.store import verdict_key

        fc = self.cfg.filter
        decision_judge = parse_judge_spec(fc.decision_judge) if fc.decision_judge else None
        safety = [parse_judge_spec(s) for s in fc.judges]
        judges = ([decision_judge] if decision_judge else []) + safety
        if not judges:
            return
        ids = [j.id for j in judges]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"filter: two judges share the id {ids}; give one an id= option")
        alive = [r for r in records if r.alive]
        # a judge's identity can be long (the refusal matcher's phrase list): hash it once, not per request
        identities = {j.id: {"judge_identity_sha256": content_hash(j.identity)} for j in judges}
        ex = JudgingExecutor(self.store, judges, stats=self.stats, progress=self.progress, label="filter")
        reqs: dict[str, list[tuple[Any, Any]]] = {}
        all_reqs = []
        for r in alive:
            gen_key = r.lineage.get("reason_key") or content_hash({"reference": r.id, "text": r.answer})
            gen = Generation(raw=compose(r.thought or "", r.answer or ""), thought=r.thought or "", answer=r.answer or "",
                             split_source="tags")
            grec = GenerationRecord(key=gen_key, sample_id=r.id, sample_index=0, generation=gen)
            sample = Sample(id=r.id, benchmark=stages.BENCHMARK, category=r.category,
                            content=(*self._parts(r), TextPart(text=r.question or "")))
            for j in judges:
                key = verdict_key(gen_key, identities[j.id], "answer", gen.answer)
                req = JudgeRequest(key=key, judge=j, sample=sample, record=grec, target="answer", text=gen.answer,
                                   stage="filter", parents=(gen_key,))
                reqs.setdefault(r.id, []).append((j, req))
                all_reqs.append(req)
        try:
            ex.start()
            verdicts = await ex.run(all_reqs)
        finally:
            await ex.close()
        for r in alive:
            r.lineage["verdicts"] = {}
            for j, req in reqs.get(r.id, []):
                vr = verdicts.get(req.key)
                v = vr.verdict if vr else None
                r.lineage["verdicts"][j.id] = {"key": req.key, "label": v.label if v else None,
                                               "status": v.status if v else "missing"}
                if not r.alive:
                    continue
                if v is None or v.status != "ok":
                    r.drop("filter", f"judge {j.id}: {v.status if v else 'no verdict'} (never counted as passing)")
                    continue
                if j is decision_judge:
                    refused = v.label == "refused"
                    if r.decision == "refuse" and not refused:
                        r.drop("filter", "thought/answer mismatch: the thought refuses, the answer does not")
                    elif r.decision == "help" and refused:
                        r.drop("filter", "thought/answer mismatch: the thought helps, the answer refuses")
                elif v.safe is not True:
                    r.drop("filter", f"judge {j.id}: the answer is {v.label}")

    def _dedup(self, records: list[BuiltRecord]) -> None:
        from tis.data.dedup import exact_duplicates, near_duplicates

        fc = self.cfg.filter
        alive = [r for r in records if r.alive]
        if fc.dedup == "none" or len(alive) < 2:
            return
        texts = [f"{r.question or ''}\n{r.answer or ''}" for r in alive]
        group_ids: dict[str, int] = {}
        groups = [0 if fc.dedup_across_images else group_ids.setdefault("+".join(r.image_sha256), len(group_ids))
                  for r in alive]
        if fc.dedup == "exact":
            dup = exact_duplicates(texts, groups)
        else:
            import numpy as np

            from tis.judges.embedder import Embedder

            from tis.data.vectors import VectorCache
            from tis.judges.embedder import DIM

            embedder = Embedder(batch_size=64)
            cache = VectorCache(Path(self.cfg.out) / "embeddings.sqlite", embedder.identity, DIM)
            try:
                vectors, encoded = cache.encode(texts, embedder.encode)
            finally:
                cache.close()
            self.dedup_info = {"texts": len(texts), "encoded_now": encoded, "embedder": embedder.identity}
            dup = near_duplicates(vectors, fc.dedup_threshold, groups=np.asarray(groups))
        for r, d in zip(alive, dup):
            if d >= 0:
                r.drop("filter", f"near duplicate of {alive[int(d)].id}")

    # balance ----------------------------------------------------------------------------------
    def balance(self, records: list[BuiltRecord]) -> None:
        from tis.data.balance import balance, cell_of

        bc = self.cfg.balance
        alive = [r for r in records if r.alive]
        drops = balance([r.id for r in alive], [cell_of(r.category, r.decision, r.source) for r in alive],
                        max_per_cell=bc.max_per_cell, quotas=bc.quotas, seed=bc.seed)
        for i, reason in drops.items():
            alive[i].drop("balance", reason)
        for r in records:
            if r.alive:
                r.status = "kept"

    # outputs ----------------------------------------------------------------------------------
    def finish(self, records: list[BuiltRecord], wall_s: float) -> BuildResult:
        from tis.data.export import export
        from tis.pipeline.store import write_manifest

        out = Path(self.cfg.out)
        drops = Counter(_reason_kind(r.drop_stage or "?", r.drop_reason or "") for r in records if r.status == "dropped")
        teachers = {}
        for stage, u in self.usage.items():
            t = u.get("teacher", {})
            teachers[stage] = {"backend": t.get("backend"), "model": t.get("model"), "calls": u["calls"],
                               "new_calls": u["new"], "malformed": u["malformed"], "failed": u["failed"],
                               "prompt_tokens": u["prompt_tokens"], "completion_tokens": u["completion_tokens"],
                               "cost": u["cost"], "wall_s": u["wall_s"]}
        for r in records:
            r.lineage["teachers"] = {s: {"backend": t["backend"], "model": t["model"]} for s, t in teachers.items()}
        _write_jsonl(out / RECORDS, (r.model_dump() for r in records))
        card_extra = {"spec": {"name": self.spec.name, "version": self.spec.version, "sha256": self.spec.sha256,
                               "path": self.spec.path},
                      "sources": [{k: s.get(k) for k in ("name", "root", "licence", "citation")} for s in self.sources],
                      "teachers": teachers, "drops": dict(drops.most_common())}
        ec = self.cfg.export
        card = export((r for r in records if r.status == "kept"), out / EXPORT, name=ec.name, formats=ec.formats,
                      images=ec.images, embed_images=ec.embed_images, card=card_extra)
        failed = sum(u["failed"] for u in self.usage.values())
        # a password in a server URL (https://user:pass@host) never reaches the manifest
        config = json.loads(re.sub(r"//[^/@\s\"]+@", "//***@", self.cfg.model_dump_json()))
        manifest = {"command": "tis data build", "config": config,
                    "spec": card_extra["spec"], "sources": self.sources, "stages": teachers,
                    "counts": {"items": len(records), "kept": card["records"],
                               "dropped": sum(1 for r in records if r.status == "dropped"), "failed_calls": failed},
                    "drops": card_extra["drops"], "dedup": self.dedup_info, "executor": self.stats.as_dict(), "wall_s": round(wall_s, 3),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_manifest(out, manifest)
        return BuildResult(out=out, records=records, usage=self.usage, drops=dict(drops), card=card, wall_s=wall_s)


def _write_jsonl(path: Path, rows) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


def read_records(build_dir: str | Path) -> list[BuiltRecord]:
    path = Path(build_dir) / RECORDS
    if not path.is_file():
        raise ConfigError(f"{build_dir} is not a tis data build folder (no {RECORDS})")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            try:
                out.append(BuiltRecord.model_validate_json(line))
            except ValueError as exc:
                raise DataError(f"{path}: line {n} is not a built record ({str(exc).splitlines()[0]})") from None
    return out
