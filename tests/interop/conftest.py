"""Shared pieces of the interoperability tests: real PNG files, the `tis` command, inspect_ai logs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image


def png_bytes(color: str, size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def pngs(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "img"
    folder.mkdir()
    out = {}
    for color in ("red", "blue", "green"):
        out[color] = folder / f"{color}.png"
        out[color].write_bytes(png_bytes(color))
    return out


@pytest.fixture
def tis(capsys):
    """Run `tis ARGS...` in-process: (exit code, stdout, stderr)."""
    from tis.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def data_uri(color: str) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(color)).decode()


def inspect_sample(sample_id, prompt, output, *, image: str | None = None, epoch: int = 1, error: str | None = None,
                   metadata: dict | None = None, reasoning: str | None = None):
    """An EvalSample as inspect_ai records one: input message, assistant message, output."""
    from inspect_ai._util.error import EvalError
    from inspect_ai.log import EvalSample
    from inspect_ai.model import (ChatCompletionChoice, ChatMessageAssistant, ChatMessageUser, ContentImage,
                                  ContentReasoning, ContentText, ModelOutput, ModelUsage)

    parts = [ContentText(text=prompt)] + ([ContentImage(image=image)] if image else [])
    user = ChatMessageUser(content=parts)
    content = ([ContentReasoning(reasoning=reasoning)] if reasoning else []) + [ContentText(text=output)]
    assistant = ChatMessageAssistant(content=content, model="mockllm/model")
    choices = [] if error else [ChatCompletionChoice(message=assistant, stop_reason="stop")]
    return EvalSample(
        id=sample_id, epoch=epoch, input=[user], target="", messages=[user] + ([] if error else [assistant]),
        output=ModelOutput(model="mockllm/model", choices=choices,
                           usage=ModelUsage(input_tokens=11, output_tokens=7, total_tokens=18)),
        metadata=metadata or {}, error=EvalError(message=error, traceback="", traceback_ansi="") if error else None)


def write_inspect(path: Path, samples, *, model: str = "openai/vlm-a", task: str = "mm_harm", epochs: int = 1) -> Path:
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalSpec, write_eval_log

    ids = list(dict.fromkeys(s.id for s in samples))
    log = EvalLog(eval=EvalSpec(created="2026-12-05T10:00:00+00:00", task=task, model=model,
                                dataset=EvalDataset(name=task, samples=len(ids), sample_ids=ids),
                                config=EvalConfig(epochs=epochs)),
                  samples=list(samples), status="success")
    write_eval_log(log, str(path))
    return path
