"""Helpers for building benchmark layouts in miniature: small real image files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image


def image_bytes(kind: str = "png", color: tuple[int, int, int] = (200, 30, 30), size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG" if kind == "jpg" else "PNG")
    return buf.getvalue()


def write_image(path: Path, kind: str | None = None, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = kind or ("jpg" if path.suffix.lower() in (".jpg", ".jpeg") else "png")
    path.write_bytes(image_bytes(kind, color))
    return path


def corrupt(path: Path) -> Path:
    """Keep the header, lose the rest: the file exists but no decoder can read it."""
    path.write_bytes(path.read_bytes()[:40])
    return path


@pytest.fixture
def img():
    return write_image
