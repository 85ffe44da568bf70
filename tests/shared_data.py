"""The shared data folder beside the repository (../shared/data): real benchmark files, human labels
and the TiS sample. A test that needs one of its files fails in CI (CI=true), where the folder must be
there, and is skipped elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(path: str | Path) -> Path:
    """`path` relative to shared/data (or absolute): the file, or a CI failure / a skip naming it."""
    path = SHARED_DATA / path
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing: CI must have the shared data folder beside the repository")
        pytest.skip(f"{path} not found (the shared data folder beside the repository)")
    return path
