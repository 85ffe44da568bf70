"""The HTML report: one self-contained file (CSS, script, plots, thumbnails inline) that opens from disk."""

from __future__ import annotations

from pathlib import Path


def write_report(run_dirs: list[Path], out: Path | None = None, **options) -> Path:
    """Write the report of `run_dirs` to `out` (default `<first run>/report.html`) and its numbers to
    `<out stem>.summary.json` beside it; return the report's path. `options`: see `tis.render.build`."""
    from tis.render.build import build_report

    return build_report(run_dirs, out, **options)
