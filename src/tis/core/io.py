"""Reading record files (a JSON list, JSON Lines or Parquet file, as a list of rows) and the image
rule of chat training records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError, DataError


def read_records(path: Path) -> list[Any]:
    """The rows of a `.parquet` file, a `.jsonl` file (one JSON value a line; blank lines skipped) or
    a JSON file holding a list. A file that does not read or parse is a DataError naming it (and the
    line, for JSON); reading Parquet without pyarrow is a ConfigError saying what to install."""
    path = Path(path)
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(f"{path}: reading Parquet needs pyarrow: pip install 'tis[parquet]'") from None
        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())})") from None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {n} is not JSON ({exc.msg})") from None
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (truncated?) at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: a set is a JSON list of records, not a {type(data).__name__}")
    return data


def image_marks_fit(marks: int, images: int, *, sharegpt: bool) -> bool:
    """Whether a chat record's `<image>` marks (or image parts) fit its images: one mark per image
    (LLaMA-Factory's sharegpt rule) or, in a `messages` record (TRL's layout), no mark at all, the
    images then standing before the first user turn's text."""
    return marks == images or (not sharegpt and marks == 0)
