"""Where tis keeps things it builds or extracts (demo model, rendered and extracted images)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$TIS_CACHE_DIR, else $XDG_CACHE_HOME/tis, else ~/.cache/tis."""
    if os.environ.get("TIS_CACHE_DIR"):
        return Path(os.environ["TIS_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "tis"
