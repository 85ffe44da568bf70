"""Exporters: LLaMA-Factory sharegpt JSON (+ `dataset_info.json` and the images beside it), a
Hugging Face dataset folder of Parquet with `messages` + `images` for TRL, and the dataset card.

Layout written (the export folder):

    {name}.json              sharegpt: [{"conversations": [{"from": "human", "value": "<image>Q"},
                                                         {"from": "gpt", "value": "<think>\\nT\\n</think>\\nA"}],
                                         "images": ["images/<sha256[:16]>.png"]}]
    dataset_info.json        {"{name}": {"file_name": "{name}.json", "formatting": "sharegpt",
                                         "columns": {"messages": "conversations", "images": "images"},
                                         "tags": {"role_tag": "from", "content_tag": "value",
                                                  "user_tag": "human", "assistant_tag": "gpt"}}}
    images/                  each image once, named by its hash (copied, hard-linked or symlinked)
    hf/data/train-00000-of-00001.parquet
                             messages: [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": Q}]},
                                        {"role": "assistant", "content": [{"type": "text", "text": "<think>..."}]}]
                             images: [{"bytes": ..., "path": "<sha16>.png"}] (the `datasets` Image feature;
                             with embed_images false: no bytes, "../../images/<sha16>.png")
    lineage.jsonl            one line per record, same order: id, source, label, decision, lineage
    README.md, card.json     the dataset card

Everything is written into a temporary folder beside the export, which then replaces the old
export by rename: a full disk or a crash while exporting leaves the previous export as it was.
Records are streamed: memory does not grow with the number of records.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tis.core.errors import TisError
from tis.data.records import BuiltRecord
from tis.data.text import compose

IMAGE_TOKEN = "<image>"
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
PARQUET_FILE = "hf/data/train-00000-of-00001.parquet"
_ROWS_PER_GROUP = 256


def image_name(path: str, sha256: str) -> str:
    ext = Path(path).suffix.lower() or ".img"
    return f"{sha256[:16]}{ext}"


def sharegpt_record(rec: BuiltRecord, image_names: list[str]) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": IMAGE_TOKEN * len(image_names) + (rec.question or "")},
                              {"from": "gpt", "value": compose(rec.thought or "", rec.answer or "")}],
            "images": [f"images/{n}" for n in image_names]}


def messages_record(rec: BuiltRecord, n_images: int) -> list[dict[str, Any]]:
    user = [{"type": "image", "text": None} for _ in range(n_images)] + [{"type": "text", "text": rec.question or ""}]
    return [{"role": "user", "content": user},
            {"role": "assistant", "content": [{"type": "text", "text": compose(rec.thought or "", rec.answer or "")}]}]


def dataset_info(name: str) -> dict[str, Any]:
    return {name: {"file_name": f"{name}.json", "formatting": "sharegpt",
                   "columns": {"messages": "conversations", "images": "images"}, "tags": dict(SHAREGPT_TAGS)}}


def _hf_features() -> dict[str, Any]:
    value = {"dtype": "string", "_type": "Value"}
    return {"messages": {"_type": "List", "feature": {
                "role": value, "content": {"_type": "List", "feature": {"type": value, "text": value}}}},
            "images": {"_type": "List", "feature": {"_type": "Image"}}}


def _place(src: Path, dst: Path, how: str) -> None:
    if how == "symlink":
        os.symlink(src, dst)
        return
    if how == "hardlink":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system: copy
    shutil.copyfile(src, dst)


class _Parquet:
    def __init__(self, path: Path, embed: bool):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        path.parent.mkdir(parents=True, exist_ok=True)
        text = pa.string()
        part = pa.struct([("type", text), ("text", text)])
        self.schema = pa.schema([
            ("messages", pa.list_(pa.struct([("role", text), ("content", pa.list_(part))]))),
            ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", text)]))),
        ], metadata={b"huggingface": json.dumps({"info": {"features": _hf_features()}}).encode()})
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        self.embed = embed
        self.rows: list[dict] = []

    def add(self, messages: list, images: list[tuple[Path, str]]) -> None:
        cells = [{"bytes": src.read_bytes() if self.embed else None, "path": name if self.embed else f"../../images/{name}"}
                 for src, name in images]
        self.rows.append({"messages": messages, "images": cells})
        if len(self.rows) >= _ROWS_PER_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(self.pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


class CardCounts:
    """What the card counts, gathered while records stream past."""

    def __init__(self):
        self.records = 0
        self.by_source: Counter[str] = Counter()
        self.by_category: Counter[str] = Counter()
        self.by_decision: Counter[str] = Counter()
        self.by_label: Counter[str] = Counter()
        self.images: set[str] = set()

    def add(self, rec: BuiltRecord) -> None:
        self.records += 1
        self.by_source[rec.source] += 1
        self.by_category[rec.category or "none"] += 1
        self.by_decision[rec.decision or "none"] += 1
        self.by_label[rec.label or "none"] += 1
        self.images.update(rec.image_sha256)


def export(records: Iterable[BuiltRecord], out_dir: str | Path, *, name: str = "tis_safety",
           formats: Iterable[str] = ("sharegpt", "parquet"), images: str = "copy", embed_images: bool = True,
           card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the export folder atomically; returns the card (as in card.json)."""
    out_dir = Path(out_dir)
    formats = list(formats)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        counts = _write(records, tmp, name=name, formats=formats, images=images, embed=embed_images)
        full_card = build_card(counts, card or {}, name=name, formats=formats)
        _write_text(tmp / "card.json", json.dumps(full_card, indent=2, ensure_ascii=False, default=str) + "\n")
        _write_text(tmp / "README.md", card_markdown(full_card))
        _swap(tmp, out_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TisError(f"export to {out_dir} failed ({exc.strerror or exc}); the previous export, if any, is "
                       "unchanged") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return full_card


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()


def _swap(tmp: Path, out_dir: Path) -> None:
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _write(records: Iterable[BuiltRecord], tmp: Path, *, name: str, formats: list[str], images: str,
           embed: bool) -> CardCounts:
    (tmp / "images").mkdir(parents=True)
    counts = CardCounts()
    placed: set[str] = set()
    share = open(tmp / f"{name}.json", "w", encoding="utf-8") if "sharegpt" in formats else None
    parquet = _Parquet(tmp / PARQUET_FILE, embed) if "parquet" in formats else None
    lineage = open(tmp / "lineage.jsonl", "w", encoding="utf-8")
    try:
        if share:
            share.write("[")
        for n, rec in enumerate(records):
            names = [image_name(p, h) for p, h in zip(rec.images, rec.image_sha256)]
            for src, nm in zip(rec.images, names):
                if nm not in placed:  # each image once, however many records use it
                    _place(Path(src), tmp / "images" / nm, images)
                    placed.add(nm)
            if share:
                share.write(("," if n else "") + "\n" + json.dumps(sharegpt_record(rec, names), ensure_ascii=False))
            if parquet:
                parquet.add(messages_record(rec, len(names)),
                            [(tmp / "images" / nm, nm) for nm in names])
            lineage.write(json.dumps({"index": n, "id": rec.id, "source": rec.source, "source_id": rec.source_id,
                                      "label": rec.label, "category": rec.category, "decision": rec.decision,
                                      "lineage": rec.lineage}, ensure_ascii=False, default=str) + "\n")
            counts.add(rec)
        if share:
            share.write("\n]\n")
    finally:
        if share:
            share.close()
        if parquet:
            parquet.close()
        lineage.close()
    if "sharegpt" in formats:
        _write_text(tmp / "dataset_info.json", json.dumps(dataset_info(name), indent=2) + "\n")
    return counts


def build_card(counts: CardCounts, extra: dict[str, Any], *, name: str, formats: list[str]) -> dict[str, Any]:
    card = {"name": name, "records": counts.records, "images": len(counts.images),
            "by_source": dict(counts.by_source.most_common()), "by_category": dict(counts.by_category.most_common()),
            "by_decision": dict(counts.by_decision.most_common()), "by_label": dict(counts.by_label.most_common()),
            "formats": formats, "files": {"sharegpt": f"{name}.json" if "sharegpt" in formats else None,
                                          "dataset_info": "dataset_info.json" if "sharegpt" in formats else None,
                                          "parquet": PARQUET_FILE if "parquet" in formats else None}}
    card.update(extra)
    return card


def _table(title: str, counts: dict[str, Any], head: str = "count") -> list[str]:
    if not counts:
        return []
    lines = [f"### {title}", "", f"| | {head} |", "|---|---:|"]
    lines += [f"| {str(k).replace('|', '/')} | {v} |" for k, v in counts.items()]
    return lines + [""]


def card_markdown(card: dict[str, Any]) -> str:
    lines = [f"# {card['name']}", "",
             "A safety fine-tuning set whose answers start with a safety-oriented thought "
             "(`<think>...</think>` then the answer), built with `tis data build`.", "",
             f"- Records: {card['records']}; images: {card['images']}",
             f"- Formats: {', '.join(card.get('formats', []))}"]
    spec = card.get("spec") or {}
    if spec:
        lines.append(f"- Safety specification: {spec.get('name')} (sha256 `{spec.get('sha256')}`)")
    lines.append("")
    lines += ["## Counts", ""]
    lines += _table("By source", card.get("by_source", {}))
    lines += _table("By category", card.get("by_category", {}))
    lines += _table("By decision", card.get("by_decision", {}))
    lines += _table("By label", card.get("by_label", {}))
    drops = card.get("drops") or {}
    if drops:
        lines += ["## Dropped", ""] + _table("By reason", drops)
    teachers = card.get("teachers") or {}
    if teachers:
        lines += ["## Teachers", "", "| stage | backend | model | calls | prompt tokens | completion tokens | cost |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for stage, t in teachers.items():
            lines.append(f"| {stage} | {t.get('backend', '')} | {t.get('model', '')} | {t.get('calls', 0)} | "
                         f"{t.get('prompt_tokens', 0)} | {t.get('completion_tokens', 0)} | "
                         f"{'' if t.get('cost') is None else t['cost']} |")
        lines.append("")
    sources = card.get("sources") or []
    if sources:
        lines += ["## Sources and licences", "", "| source | root | licence | citation |", "|---|---|---|---|"]
        for s in sources:
            lines.append(f"| {s.get('name')} | {Path(str(s.get('root', ''))).name} | {s.get('licence', '')} | "
                         f"{s.get('citation', '')} |")
        lines.append("")
    lines += ["## Loading", "", "LLaMA-Factory: put this folder's `dataset_info.json` entry into your `data/dataset_info.json` "
              f"(or point `dataset_dir` here) and use `dataset: {card['name']}`.", "",
              "TRL: `datasets.load_dataset(\"parquet\", data_files=\"hf/data/*.parquet\")` gives `messages` and `images`.", ""]
    return "\n".join(lines)


def iter_kept(records: Iterable[BuiltRecord]) -> Iterator[BuiltRecord]:
    return (r for r in records if r.status == "kept")
