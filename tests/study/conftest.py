"""Fixtures of the study tests (helpers in study_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from study_helpers import study_dict, write_sets


@pytest.fixture
def study_file(tmp_path):
    def make(url: str, **over) -> Path:
        write_sets(tmp_path / "sets")
        p = tmp_path / "study.yaml"
        p.write_text(yaml.safe_dump(study_dict(url, **over), sort_keys=False))
        return p
    return make


@pytest.fixture
def tis_main(monkeypatch):
    """`tis` with the study command only (other command groups are tested on their own)."""
    import tis.cli

    monkeypatch.setattr(tis.cli, "COMMAND_MODULES", ("study",))
    return tis.cli.main
