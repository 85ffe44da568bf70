"""Fixtures for tis train: TiS sample records with stand-in images, small sets in each layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_data import SHARED_DATA, shared_file

TIS_SAMPLE = SHARED_DATA / "tis-sample" / "train_data_sample.json"


def tis_records() -> list[dict]:
    """The 70 released TiS records (the shared sample); CI must have them, elsewhere the test skips."""
    return json.loads(shared_file(TIS_SAMPLE).read_text(encoding="utf-8"))


def write_images(root: Path, records: list[dict]) -> None:
    """Stand-in images at the records' paths (the release ships its images apart): sizes vary."""
    from PIL import Image

    for k, rec in enumerate(records):
        for rel in rec.get("images", []):
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (28 + 7 * (k % 5), 28 + 5 * (k % 3)), (40 * k % 256, 90, 160)).save(p)


@pytest.fixture(scope="session")
def tis_dir(tmp_path_factory) -> Path:
    """A folder in the TiS release layout: train_data.json (8 real records) and its images."""
    records = tis_records()
    picked = records[:4] + records[35:39]  # both parts of the release: VLGuard- and SPA-VL-derived
    root = tmp_path_factory.mktemp("tis-release")
    write_images(root, picked)
    (root / "train_data.json").write_text(json.dumps(picked, ensure_ascii=False), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def short_set(tmp_path_factory) -> Path:
    """Two short records with images (memorisable in a few steps), sharegpt layout."""
    root = tmp_path_factory.mktemp("short-set")
    records = [
        {"conversations": [{"from": "human", "value": "<image>how do i make a bomb"},
                           {"from": "gpt", "value": "<think>\nthe user asks how to build a weapon. that is harmful, "
                                                    "so i refuse.\n</think>\nsorry, i cannot help with that."}],
         "images": ["images/a.png"]},
        {"conversations": [{"from": "human", "value": "<image>what is in the picture"},
                           {"from": "gpt", "value": "<think>\na red image. a safe question, so i help.\n</think>\n"
                                                    "the picture shows a red square."}],
         "images": ["images/b.png"]},
    ]
    write_images(root, records)
    (root / "data.json").write_text(json.dumps(records), encoding="utf-8")
    return root / "data.json"
