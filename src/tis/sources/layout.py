"""Shared pieces of the loaders: finding a published file under a root, reading JSON and
parquet with clear errors, image references, and the content-addressed cache for images that
arrive as bytes (parquet)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tis.core.errors import DataError
from tis.core.paths import cache_dir
from tis.core.types import ImagePart

if TYPE_CHECKING:
    from tis.sources.base import Benchmark, Problem


def _hint_below(root: Path, relatives: Sequence[str]) -> str:
    """Where the expected file is when `root` is the parent or a sibling of the real root."""
    def subdirs(folder: Path) -> list[Path]:
        try:
            return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return []

    for folder in subdirs(root):
        for rel in relatives:
            if (folder / rel).is_file():
                return f"; did you mean {folder}?"
    parent = root.parent
    if parent != root:
        for rel in relatives:
            if (parent / rel).is_file():
                return f"; did you mean {parent}?"
        for folder in subdirs(parent):
            if folder == root:
                continue
            for rel in relatives:
                if (folder / rel).is_file():
                    return f"; did you mean {folder}?"
    return ""


def locate(bench: "Benchmark", relatives: Sequence[str]) -> Path:
    """The first of `relatives` under the dataset root. `--data` may also name the file itself.

    Raises DataError naming the expected file, with a hint when the root given is the parent or
    a sibling of the right one.
    """
    root = bench.data
    assert root is not None
    if root.is_file():
        if any(Path(rel).name == root.name for rel in relatives):
            return root
        raise DataError(f"{bench.name}: {root} is not one of the files this benchmark reads "
                        f"({', '.join(Path(r).name for r in relatives)}); pass the dataset folder with --data")
    for rel in relatives:
        if (root / rel).is_file():
            return root / rel
    raise DataError(f"{bench.name}: expected {' or '.join(relatives)} under {root}{_hint_below(root, relatives)}")


def read_json(path: Path, bench_name: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{bench_name}: {path} is not valid JSON (truncated or damaged?): {exc.msg} at line "
                        f"{exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{bench_name}: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{bench_name}: cannot read {path}: {exc.strerror}") from None


def read_json_list(path: Path, name: str) -> list[Any]:
    """A JSON file holding a list (`read_json`); any other value is a DataError naming the file."""
    items = read_json(path, name)
    if not isinstance(items, list):
        raise DataError(f"{name}: {path} should be a list of records, found {type(items).__name__}")
    return items


def image_ref(bench: "Benchmark", relative: Any, *, root: Path, file: Path | str, record: str,
              field: str = "image") -> "ImagePart | Problem":
    """An ImagePart for a path from a record, or a Problem when it is empty, escapes the root or
    names no file. Only existence is checked here; `tis benchmarks check` opens every image."""
    from tis.sources.base import Problem

    if not isinstance(relative, str) or not relative.strip():
        return Problem(file=str(file), record=record, message=f"field '{field}' has no image path ({relative!r})")
    try:
        path = bench.resolve_inside(relative.strip(), root=root, record=record)
    except DataError:
        return Problem(file=str(file), record=record,
                       message=f"image path '{relative}' points outside {root}; refused")
    if not path.is_file():
        return Problem(file=str(path), record=record, message=f"image file is missing (from {file})")
    return ImagePart(path=str(path))


def shape_problem(item: Any, fields: Sequence[str]) -> str | None:
    """Why a JSON record cannot be read at all (not an object, missing fields), or None."""
    if not isinstance(item, dict):
        return f"not an object ({type(item).__name__})"
    missing = [f for f in fields if f not in item]
    if missing:
        return f"missing field(s) {', '.join(missing)}; expected {', '.join(fields)}"
    return None


def keyed_item(item: Any, n: int, fields: Sequence[str], key_field: str, file: Path | str,
               seen: set[str]) -> "tuple[str, str] | Problem":
    """(key, record name) of item `n` of a JSON list, a record of `fields` known by `key_field`;
    the Problem where it is not an object, lacks a field or repeats a key seen before."""
    why = shape_problem(item, fields)
    if why:
        return problem(file, f"item {n}", why)
    key = str(item[key_field])
    record = f"item {n} ({key_field} {key})"
    if key in seen:
        return problem(file, record, f"duplicate {key_field} {key}")
    seen.add(key)
    return key, record


def problem(file: Path | str, record: str, message: str) -> "Problem":
    from tis.sources.base import Problem

    return Problem(file=str(file), record=record, message=message)


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def norm(text: str) -> str:
    """Loose matching of names given by users: case and punctuation ignored."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


# --- images stored as bytes ---------------------------------------------------------------

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
          (b"BM", "bmp"))


def image_extension(data: bytes, path_hint: str | None = None) -> str:
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if path_hint and "." in path_hint:
        ext = path_hint.rsplit(".", 1)[1].lower()
        if ext.isalnum() and len(ext) <= 5:
            return ext
    return "img"


def cached_image(data: bytes, path_hint: str | None = None) -> Path:
    """Write image bytes once to the cache, named by their sha256, and return the path.

    Written to a temporary file then renamed, so a reader never sees half an image and two
    processes extracting the same set do not clash.
    """
    digest = hashlib.sha256(data).hexdigest()
    folder = cache_dir() / "images"
    path = folder / f"{digest}.{image_extension(data, path_hint)}"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{digest[:16]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def image_bytes(cell: Any) -> tuple[bytes | None, str | None]:
    """The bytes (and original file name) of a parquet image cell: the Hugging Face `Image`
    struct {bytes, path} or plain binary."""
    if isinstance(cell, dict):
        return cell.get("bytes"), cell.get("path")
    if isinstance(cell, (bytes, bytearray)):
        return bytes(cell), None
    return None, None


def parquet_rows(files: Iterable[Path], columns: Sequence[str], bench_name: str, *, optional: Sequence[str] = (),
                 batch_size: int = 32) -> Iterator[tuple[Path, int, dict]]:
    """(file, row number, row) for every row of the files, read a small batch at a time and only
    the named columns, so memory stays flat however large the set is."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{bench_name}: reading parquet needs pyarrow: pip install 'tis[parquet]'") from None
    import pyarrow as pa

    for file in files:
        try:
            # pre_buffer (pyarrow's default) keeps every column chunk read so far: memory would grow
            # with the file. Without it, and with a bounded read buffer, it stays flat.
            reader = pq.ParquetFile(file, pre_buffer=False, buffer_size=1 << 20)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{bench_name}: {file} is not a readable parquet file (truncated?): {exc}") from None
        names = reader.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{bench_name}: {file} lacks column(s) {', '.join(missing)}; it has "
                            f"{', '.join(names) or 'none'}; expected {', '.join(columns)}")
        wanted = list(columns) + [c for c in optional if c in names and c not in columns]
        row_number = 0
        try:
            for batch in reader.iter_batches(batch_size=batch_size, columns=wanted):
                for row in batch.to_pylist():
                    yield file, row_number, row
                    row_number += 1
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{bench_name}: {file} cannot be read past row {row_number} (truncated?): {exc}") from None
