"""Shared fixtures. Heavy ones (tiny models, servers) live in plugin modules listed here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = [name for name in ("fixtures_tiny_vlm",) if (Path(__file__).parent / f"{name}.py").exists()]

@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Rendered / extracted images go to a per-session cache, never the user's."""
    if "TIS_CACHE_DIR" not in os.environ or not os.environ["TIS_CACHE_DIR"].startswith(str(tmp_path_factory.getbasetemp())):
        monkeypatch.setenv("TIS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tis-cache"))
