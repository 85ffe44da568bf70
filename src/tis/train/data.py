"""Training data in: LLaMA-Factory sharegpt files, `messages` + `images` sets, mixtures, held-out splits.

Layouts read (a spec is `FILE_OR_FOLDER[#NAME][*WEIGHT]`):

- a sharegpt JSON list or JSONL file: `{"conversations": [{"from": "human", "value": "<image>Q"},
  {"from": "gpt", "value": "<think>...</think>A"}], "images": ["images/x.png"], "system": "..."}`;
  image paths relative to the file's folder; the `<image>` count of the record must equal its number
  of images (LLaMA-Factory's rule). The TiS release is this layout.
- a folder with a LLaMA-Factory `dataset_info.json`: `#NAME` picks the entry (optional when there is
  one); its `file_name`, `formatting: sharegpt`, `columns` and `tags` are followed.
- a `messages` set (TRL's layout, and `tis data` exports): JSON/JSONL/Parquet files or a `datasets`
  folder (`save_to_disk`) with `messages` (role/content; content a string or typed parts) and `images`
  (paths, `{"bytes", "path"}` mappings or PIL images). Without `<image>` markers or image parts, the
  images go before the first user turn's text (TRL's convention).

Every record becomes a `TrainRecord`: chat messages whose contents are typed parts, and its images.
An assistant message with a separate `reasoning_content` gets it back inside the thought tags.
Bad records (missing image, wrong image count, no assistant turn) stop loading with an error that
names the file and the record, or, with `skip_bad`, are counted and left out.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError, DataError
from tis.core.io import image_marks_fit, read_records

IMAGE_MARK = "<image>"
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
          "system": "system"}
_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")


@dataclass
class TrainRecord:
    """One training conversation: messages with typed content parts, and its images in order."""

    id: str  # "file#index", unique within a run
    messages: list[dict[str, Any]]
    images: list[Any] = field(default_factory=list)  # Path | bytes | PIL.Image

    def assistant_texts(self) -> list[str]:
        return [part_text(m) for m in self.messages if m["role"] == "assistant"]

    def open_images(self) -> list[Any]:
        return [open_image(ref, self.id) for ref in self.images]


@dataclass
class DataProblem:
    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.record}: {self.reason}"


@dataclass
class DataSet:
    """One `--data` spec loaded: its records (bad ones left out and listed), weight and content hash."""

    spec: str
    path: Path
    layout: str
    weight: float
    records: list[TrainRecord]
    problems: list[DataProblem]
    digest: str

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "path": str(self.path), "layout": self.layout, "weight": self.weight,
                "records": len(self.records), "skipped_bad": len(self.problems), "sha256": self.digest}


@dataclass
class Mixture:
    """The training and held-out records of a run, with what each set contributed."""

    train: list[TrainRecord]
    eval: list[TrainRecord]
    sets: list[dict[str, Any]]
    problems: list[DataProblem]


def part_text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def open_image(ref: Any, record: str = "") -> Any:
    from PIL import Image

    try:
        if isinstance(ref, (str, Path)):
            with Image.open(ref) as img:
                return img.convert("RGB")
        if isinstance(ref, bytes):
            with Image.open(io.BytesIO(ref)) as img:
                return img.convert("RGB")
        if hasattr(ref, "convert"):
            return ref.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        where = f" '{ref}'" if isinstance(ref, (str, Path)) else ""
        raise DataError(f"{record}: cannot open image{where}: {' '.join(str(exc).split())}") from exc
    raise DataError(f"{record}: an image of unknown kind ({type(ref).__name__})")


# --- specs ---------------------------------------------------------------------------------------

def parse_spec(spec: str) -> tuple[Path, str | None, float]:
    """`FILE_OR_FOLDER[#NAME][*WEIGHT]` -> (path, name, weight)."""
    text, weight = spec, 1.0
    head, star, tail = text.rpartition("*")
    if star:
        try:
            weight = float(tail)
        except ValueError:
            raise ConfigError(f"--data {spec}: the weight after '*' must be a number, not '{tail}'") from None
        if not math.isfinite(weight) or weight <= 0:
            raise ConfigError(f"--data {spec}: the weight must be a positive number")
        text = head
    path_text, hash_, name = text.partition("#")
    if not path_text:
        raise ConfigError(f"--data {spec}: no file or folder given")
    return Path(path_text).expanduser(), (name or None) if hash_ else None, weight


def load_set(spec: str, *, skip_bad: bool = False) -> DataSet:
    path, name, weight = parse_spec(spec)
    if not path.exists():
        raise ConfigError(f"--data {spec}: {path} does not exist")
    path = path.resolve()
    rows, layout, base, files, tags = _rows(path, name, spec)
    records: list[TrainRecord] = []
    problems: list[DataProblem] = []
    label = path.name if not name else f"{path.name}#{name}"
    for i, row in enumerate(rows):
        rid = f"{label}[{i}]"
        try:
            records.append(_record(row, rid, base, tags))
        except _Bad as bad:
            problems.append(DataProblem(rid, str(bad)))
    if problems and not skip_bad:
        more = f" ({len(problems) - 1} more bad records)" if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{more}; fix the data or pass --skip-bad to leave bad records out")
    if not records:
        raise DataError(f"--data {spec}: no usable record in {path}")
    return DataSet(spec=spec, path=path, layout=layout, weight=weight, records=records, problems=problems,
                   digest=_digest(files, records))


def load_mixture(specs: list[str], eval_specs: list[str] = (), *, eval_fraction: float = 0.0, seed: int = 0,
                 skip_bad: bool = False) -> Mixture:
    """Load and mix the training sets; hold out `eval_fraction` of each set unless eval sets are given.

    A set's weight scales its share: 0.5 takes a seeded half of its records, 2 takes them twice. The
    held-out records are chosen before weighting, so no repeated copy of one lands in training.
    """
    if not specs:
        raise ConfigError("--data is required: a training set (sharegpt JSON, JSONL, Parquet or a dataset folder)")
    rng = random.Random(seed)
    train: list[TrainRecord] = []
    held: list[TrainRecord] = []
    sets: list[dict[str, Any]] = []
    problems: list[DataProblem] = []
    for spec in specs:
        ds = load_set(spec, skip_bad=skip_bad)
        problems.extend(ds.problems)
        pool = list(ds.records)
        n_eval = 0
        if not eval_specs and eval_fraction > 0 and len(pool) >= 2:
            order = list(range(len(pool)))
            rng.shuffle(order)
            n_eval = min(len(pool) - 1, max(1, round(eval_fraction * len(pool))))
            held.extend(pool[i] for i in sorted(order[:n_eval]))
            keep = set(order[:n_eval])
            pool = [r for i, r in enumerate(pool) if i not in keep]
        whole, frac = divmod(ds.weight, 1.0)
        taken = pool * int(whole)
        extra = round(frac * len(pool))
        if extra:
            taken += [pool[i] for i in sorted(rng.sample(range(len(pool)), extra))]
        if not taken:
            raise ConfigError(f"--data {spec}: weight {ds.weight:g} takes no record of its {len(pool)}")
        train.extend(taken)
        sets.append({**ds.describe(), "held_out": n_eval, "used": len(taken)})
    for spec in eval_specs:
        ds = load_set(spec, skip_bad=skip_bad)
        problems.extend(ds.problems)
        held.extend(ds.records)
        sets.append({**ds.describe(), "role": "eval", "used": len(ds.records)})
    total = len(train)
    for s in sets:
        if s.get("role") != "eval":
            s["share"] = round(s["used"] / total, 4)
    return Mixture(train=train, eval=held, sets=sets, problems=problems)


# --- layouts -------------------------------------------------------------------------------------

@dataclass
class _Tags:
    messages: str = "conversations"
    images: str = "images"
    system: str = "system"
    role: str = "from"
    content: str = "value"
    roles: dict[str, str] = field(default_factory=lambda: dict(_ROLES))
    sharegpt: bool = True  # LLaMA-Factory's image rule (count must match); else TRL's (images lead)


def _rows(path: Path, name: str | None, spec: str) -> tuple[list[Any], str, Path, list[Path], _Tags | None]:
    """(rows, layout, image base folder, files read, column tags or None to detect per record)."""
    if path.is_file():
        return read_records(path), _layout_of(path), path.parent, [path], None
    info = path / "dataset_info.json"
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return _datasets_rows(path, spec), "datasets", path, sorted(path.rglob("*.arrow")), None
    if info.is_file():
        return _llamafactory_rows(path, info, name, spec)
    candidates = sorted([*path.glob("*.json"), *path.glob("*.jsonl")]) or sorted(path.rglob("*.parquet"))
    if not candidates:
        raise ConfigError(f"--data {spec}: {path} holds no dataset_info.json, datasets folder, JSON, JSONL or "
                          "Parquet file")
    if candidates[0].suffix == ".parquet":
        # a relative image path in a Parquet row is relative to that file's folder
        rows = [_anchor(r, f.parent) for f in candidates for r in read_records(f)]
        return rows, "parquet", path, candidates, None
    if len(candidates) > 1:
        raise ConfigError(f"--data {spec}: {path} holds several data files ({', '.join(c.name for c in candidates)});"
                          " name the file")
    return read_records(candidates[0]), _layout_of(candidates[0]), path, candidates, None


def _anchor(row: Any, folder: Path) -> Any:
    """The row with its relative image paths (those without bytes) made absolute against `folder`."""
    if not isinstance(row, dict) or not isinstance(row.get("images"), list):
        return row
    fixed = []
    for ref in row["images"]:
        if isinstance(ref, dict) and not ref.get("bytes") and isinstance(ref.get("path"), str):
            ref = {**ref, "path": str((folder / ref["path"]).resolve())}
        elif isinstance(ref, str):
            ref = str((folder / ref).resolve())
        fixed.append(ref)
    return {**row, "images": fixed}


def _layout_of(path: Path) -> str:
    return {".parquet": "parquet", ".jsonl": "jsonl"}.get(path.suffix, "json")


def _datasets_rows(path: Path, spec: str) -> list[Any]:
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:
        raise ConfigError("reading a datasets folder needs the datasets package: pip install 'tis[train]'") from None
    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        if "train" not in ds:
            raise ConfigError(f"--data {spec}: the datasets folder has splits {', '.join(ds)}, none named train")
        ds = ds["train"]
    return list(ds)


def _llamafactory_rows(folder: Path, info: Path, name: str | None, spec: str):
    try:
        entries = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{info}: not a readable JSON mapping ({exc})") from None
    if not isinstance(entries, dict) or not entries:
        raise DataError(f"{info}: expected a mapping of dataset names to entries")
    if name is None:
        if len(entries) > 1:
            raise ConfigError(f"--data {spec}: {info} has {len(entries)} entries ({', '.join(entries)}); pick one "
                              f"with {folder}#NAME")
        name = next(iter(entries))
    if name not in entries:
        raise ConfigError(f"--data {spec}: no entry '{name}' in {info} (entries: {', '.join(entries)})")
    entry = entries[name]
    if not isinstance(entry, dict) or "file_name" not in entry:
        raise DataError(f"{info}: entry '{name}' has no file_name (only local files are read)")
    formatting = entry.get("formatting", "alpaca")
    if formatting != "sharegpt":
        raise ConfigError(f"{info}: entry '{name}' is formatting '{formatting}'; tis train reads sharegpt entries")
    cols = entry.get("columns") or {}
    tags = entry.get("tags") or {}
    t = _Tags(messages=cols.get("messages", "conversations"), images=cols.get("images", "images"),
              system=cols.get("system", "system"), role=tags.get("role_tag", "from"),
              content=tags.get("content_tag", "value"))
    t.roles = {tags.get("user_tag", "human"): "user", tags.get("assistant_tag", "gpt"): "assistant",
               tags.get("system_tag", "system"): "system"}
    file = folder / entry["file_name"]
    if not file.exists():
        raise DataError(f"{info}: entry '{name}': {file} does not exist")
    if file.is_dir():
        files = sorted([*file.glob("*.json"), *file.glob("*.jsonl"), *file.glob("*.parquet")])
        rows = [r for f in files for r in read_records(f)]
    else:
        files = [file]
        rows = read_records(file)
    # LLaMA-Factory resolves image paths against the dataset folder (its media_dir default)
    return rows, "sharegpt", folder, [info, *files], t


# --- records -------------------------------------------------------------------------------------

class _Bad(Exception):
    pass


def _record(row: Any, rid: str, base: Path, tags: _Tags | None) -> TrainRecord:
    if not isinstance(row, dict):
        raise _Bad(f"expected a mapping, found {type(row).__name__}")
    if tags is None:
        if isinstance(row.get("conversations"), list):
            tags = _Tags()
        elif isinstance(row.get("messages"), list):
            tags = _Tags(messages="messages", role="role", content="content", sharegpt=False)
        else:
            raise _Bad(f"no 'conversations' or 'messages' list (keys: {', '.join(map(str, row)) or 'none'})")
    turns = row.get(tags.messages)
    if not isinstance(turns, list) or not turns:
        raise _Bad(f"'{tags.messages}' is not a non-empty list")
    raw_images = row.get(tags.images, row.get("image"))
    if raw_images is None:
        raw_images = []
    elif not isinstance(raw_images, (list, tuple)):
        raw_images = [raw_images]
    images = [_image_ref(ref, base, rid) for ref in raw_images]

    messages: list[dict[str, Any]] = []
    system = row.get(tags.system)
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    marks = 0
    for k, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise _Bad(f"turn {k} is not a mapping")
        role = tags.roles.get(str(turn.get(tags.role)), _ROLES.get(str(turn.get(tags.role))))
        if role is None:
            raise _Bad(f"turn {k} has role '{turn.get(tags.role)}' (read: user, assistant, system turns)")
        content = turn.get(tags.content)
        if role == "assistant":
            text = _join_text(content, rid, k)
            reasoning = next((turn[key] for key in _REASONING_KEYS if isinstance(turn.get(key), str)), None)
            if reasoning and "</think>" not in text:
                text = f"<think>\n{reasoning.strip()}\n</think>\n{text.lstrip()}"
            if not text.strip():
                raise _Bad(f"turn {k} (assistant) is empty")
            messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
            continue
        parts, n = _user_parts(content, rid, k)
        marks += n
        messages.append({"role": role, "content": parts})
    if not any(m["role"] == "assistant" for m in messages):
        raise _Bad("no assistant turn to learn from")
    if messages[-1]["role"] != "assistant":
        raise _Bad("the last turn is not the assistant's")
    if marks != len(images):
        if image_marks_fit(marks, len(images), sharegpt=tags.sharegpt):
            first = next(m for m in messages if m["role"] == "user")
            first["content"] = [{"type": "image"} for _ in images] + first["content"]
        else:
            raise _Bad(f"{marks} <image> token(s) in the turns but {len(images)} image(s); each image needs one "
                       "<image> where it stands")
    return TrainRecord(id=rid, messages=messages, images=images)


def _join_text(content: Any, rid: str, k: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise _Bad(f"turn {k} has no text content")


def _user_parts(content: Any, rid: str, k: int) -> tuple[list[dict[str, Any]], int]:
    if isinstance(content, str):
        parts: list[dict[str, Any]] = []
        pieces = content.split(IMAGE_MARK)
        for j, piece in enumerate(pieces):
            if j:
                parts.append({"type": "image"})
            if piece:
                parts.append({"type": "text", "text": piece})
        return parts, len(pieces) - 1
    if isinstance(content, list):
        parts, n = [], 0
        for p in content:
            if not isinstance(p, dict):
                raise _Bad(f"turn {k} has a content part that is not a mapping")
            if p.get("type") == "image":
                parts.append({"type": "image"})
                n += 1
            elif p.get("type") == "text":
                text = str(p.get("text") or "")
                if IMAGE_MARK in text:
                    sub, m = _user_parts(text, rid, k)
                    parts.extend(sub)
                    n += m
                elif text:
                    parts.append({"type": "text", "text": text})
        return parts, n
    raise _Bad(f"turn {k} has no content")


def _image_ref(ref: Any, base: Path, rid: str) -> Any:
    if isinstance(ref, dict):
        if ref.get("bytes"):
            return bytes(ref["bytes"])
        ref = ref.get("path")
    if isinstance(ref, (str, Path)):
        p = Path(ref).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise _Bad(f"image '{ref}' not found (looked for {p})")
        return p
    if hasattr(ref, "convert"):  # a PIL image from a datasets folder
        return ref
    raise _Bad(f"image entry of unknown kind ({type(ref).__name__})")


# --- hashing -------------------------------------------------------------------------------------

def _digest(files: list[Path], records: list[TrainRecord]) -> str:
    """SHA-256 over the data files and every image the kept records use (file digests are cached)."""
    from tis.core.hashing import DigestCache, fingerprint_files

    cache = DigestCache()

    def one(path: Path) -> str:
        return fingerprint_files(path.parent, [path], cache=cache)

    h = hashlib.sha256()
    try:
        for f in files:
            h.update(f"file:{f.name}:{one(f)}\n".encode())
        seen: set[str] = set()
        for rec in records:
            for ref in rec.images:
                if isinstance(ref, Path):
                    key = str(ref)
                    if key not in seen:
                        seen.add(key)
                        h.update(f"image:{one(ref)}\n".encode())
                elif isinstance(ref, bytes):
                    h.update(f"image:{hashlib.sha256(ref).hexdigest()}\n".encode())
    finally:
        cache.close()
    return h.hexdigest()
