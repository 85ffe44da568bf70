"""Chat messages from a sample: the one builder every backend and local judge uses.

Two shapes of the same conversation:

- `"processor"`: for a transformers processor's chat template. Every content is a list of parts;
  an image is a bare `{"type": "image"}` placeholder (the processor receives the pixels apart).
- `"openai"`: the OpenAI chat API (servers, vLLM's `LLM.chat`). The system prompt is a string;
  an image is `{"type": "image_url", "image_url": {"url": ...}}` with the URL from `image_url`.

Content parts keep their order in the sample (text before or after an image, several images).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from tis.core.types import ImagePart, Sample, TextPart

Style = Literal["processor", "openai"]


def chat_messages(sample: Sample, style: Style = "processor", *,
                  image_url: Callable[[ImagePart], str] | None = None) -> list[dict[str, Any]]:
    """The sample as chat messages: an optional system message, then one user turn."""
    if style not in ("processor", "openai"):
        raise ValueError(f"unknown message style {style!r}")
    if style == "openai" and image_url is None:
        raise ValueError("the openai message style needs image_url to turn an image into a URL")
    parts: list[dict[str, Any]] = []
    for part in sample.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            if style == "openai":
                assert image_url is not None
                parts.append({"type": "image_url", "image_url": {"url": image_url(part)}})
            else:
                parts.append({"type": "image"})
    messages: list[dict[str, Any]] = []
    if sample.system:
        system: Any = sample.system if style == "openai" else [{"type": "text", "text": sample.system}]
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": parts})
    return messages


def text_turns(turns: Sequence[tuple[str, str]], *, as_parts: bool = False) -> list[dict[str, Any]]:
    """Text-only turns (role, text), content as a string or as one text part (templates that
    iterate over parts, such as Llama Guard 3 1B's, need the latter)."""
    if as_parts:
        return [{"role": role, "content": [{"type": "text", "text": text}]} for role, text in turns]
    return [{"role": role, "content": text} for role, text in turns]
