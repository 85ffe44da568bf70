"""Split a model's output into its thought and its answer, and write a thought back.

A family's way of marking its thought is data (`ThoughtFormat`), so a user can add one in a
profiles file without code. `split_output` records how it split (`Split.source`):

- `api_field`: the server returned the thought in its own field (`reasoning_content`).
- `tags`:      split on the family's delimiters (tags, stage tags, final-answer markers).
- `prefilled`: the chat template opened the thought; the output holds only the closing tag.
- `unclosed`:  a thought opened and never closed: all of it is thought, the answer is empty,
               and the split is flagged truncated.
- `none`:      no thought found: all text is the answer.

Rules for tags that also appear inside an answer (an answer may quote `<think>` or `</think>`):

1. A tag is *quoted*, and never a delimiter, when it lies inside a markdown code span or a
   fenced code block, or when quote characters wrap it on both sides (`"</think>"`).
2. An opening tag starts a thought only at the very start of the output. After the thought is
   closed, a later `<think>` is text of the answer, never a new thought.
3. The first closing tag ends the thought. If no thought was opened, it must stand at a line
   edge, since a prose answer may mention the tag mid-sentence; a prefilled family, whose
   outputs never hold the opening tag, is exempt. "Split at the last
   `</think>`": a later closing tag moves the end of the thought only when it stands at a line
   edge (nothing but whitespace before it on its line, or after it), which is how a model that
   closes its thought twice writes it; a tag mentioned inside a sentence of the answer does not.
   When an `<answer>` tag follows a closing tag, the thought ends at that closing tag and no tag
   inside the answer counts.
4. Delimiters left inside the thought (a thought closed and opened again) are removed; the
   pieces are joined with a blank line.
5. An output that stops inside a tag (`...</thi`) loses that partial tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pydantic import model_validator

from tis.core.errors import ConfigError
from tis.core.types import Frozen, ModelOutput, SplitSource

FormatKind = Literal["tags", "prefilled", "stages", "markdown", "plain", "none", "auto"]


class ThoughtFormat(Frozen):
    """How one family marks its thought. Data only: every field is a string or a flag."""

    name: str
    kind: FormatKind
    description: str = ""
    # tags / prefilled
    open: str = ""
    close: str = ""
    # optional answer delimiters; when present in an output, the answer is their content
    answer_open: str = ""
    answer_close: str = ""
    wrap_answer: bool = False  # join_thought writes the answer delimiters too
    # stages (LLaVA-CoT): stage names filled into the stage tag templates
    thought_stages: tuple[str, ...] = ()
    answer_stage: str = ""
    stage_open: str = "<{}>"
    stage_close: str = "</{}>"
    # markdown / plain: the answer follows the last final-answer marker that starts a line
    final_markers: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> "ThoughtFormat":
        if self.kind in ("tags", "prefilled") and not (self.open.strip() and self.close.strip()):
            raise ValueError(f"kind '{self.kind}' needs both 'open' and 'close' delimiters")
        if bool(self.answer_open.strip()) != bool(self.answer_close.strip()):
            raise ValueError("'answer_open' and 'answer_close' go together: give both or neither")
        if self.wrap_answer and not self.answer_open:
            raise ValueError("'wrap_answer' needs 'answer_open' and 'answer_close'")
        if self.kind == "stages":
            if not self.thought_stages or not self.answer_stage:
                raise ValueError("kind 'stages' needs 'thought_stages' and 'answer_stage'")
            if self.stage_open.count("{}") != 1 or self.stage_close.count("{}") != 1:
                raise ValueError("'stage_open' and 'stage_close' must each hold one '{}' for the stage name")
        if self.kind in ("markdown", "plain") and not any(m.strip() for m in self.final_markers):
            raise ValueError(f"kind '{self.kind}' needs at least one entry in 'final_markers'")
        return self


class Split(Frozen):
    thought: str
    answer: str
    source: SplitSource
    truncated: bool


_BUILTIN = (
    ThoughtFormat(name="r1", kind="tags", open="<think>", close="</think>", answer_open="<answer>",
                  answer_close="</answer>",
                  description="<think>...</think> then the answer, optionally inside <answer>...</answer>"),
    ThoughtFormat(name="r1_answer", kind="tags", open="<think>", close="</think>", answer_open="<answer>",
                  answer_close="</answer>", wrap_answer=True,
                  description="<think>...</think><answer>...</answer> (GLM-4.1V-Thinking, MM-Eureka)"),
    ThoughtFormat(name="r1_prefilled", kind="prefilled", open="<think>", close="</think>",
                  description="the chat template opens <think>; the output is thought</think>answer"),
    ThoughtFormat(name="kimi", kind="tags", open="\u25c1think\u25b7", close="\u25c1/think\u25b7",
                  description="\u25c1think\u25b7...\u25c1/think\u25b7 then the answer (Kimi-VL-Thinking)"),
    ThoughtFormat(name="llava_cot", kind="stages", thought_stages=("SUMMARY", "CAPTION", "REASONING"),
                  answer_stage="CONCLUSION",
                  description="<SUMMARY>, <CAPTION>, <REASONING> are thought; <CONCLUSION> is the answer"),
    ThoughtFormat(name="mulberry", kind="markdown", final_markers=("### The final answer is:",),
                  description="markdown steps; the answer follows '### The final answer is:'"),
    ThoughtFormat(name="plain", kind="plain",
                  final_markers=("**Final Answer:**", "**Final Answer**:", "**Final Answer**", "Final Answer:"),
                  description="a long thought without tags; the answer follows a final-answer marker"),
    ThoughtFormat(name="none", kind="none", description="no thought in the text: all of it is the answer"),
    ThoughtFormat(name="auto", kind="auto",
                  description="the server's reasoning field, else the tag family found first, else none"),
)

FORMATS: dict[str, ThoughtFormat] = {f.name: f for f in _BUILTIN}
BUILTIN_FORMATS = frozenset(FORMATS)
# the families `auto` looks for in the text, in this order when two start at the same place
_AUTO_FAMILIES = ("r1", "kimi", "llava_cot")


def get_format(name_or_format: ThoughtFormat | str) -> ThoughtFormat:
    if isinstance(name_or_format, ThoughtFormat):
        return name_or_format
    key = str(name_or_format).strip()
    fmt = FORMATS.get(key) or FORMATS.get(key.lower().replace("-", "_"))
    if fmt is None:
        raise ConfigError(f"unknown thought format '{name_or_format}'; known formats: {', '.join(sorted(FORMATS))}")
    return fmt


def register_format(fmt: ThoughtFormat) -> None:
    """Add a user's format (from a profiles file). Built-in formats cannot be replaced."""
    if fmt.name in BUILTIN_FORMATS and FORMATS[fmt.name] != fmt:
        raise ConfigError(f"thought format '{fmt.name}' is built in and cannot be redefined; choose another name")
    FORMATS[fmt.name] = fmt


# ---------------------------------------------------------------------------------------------
# matching helpers

_QUOTES = "`'\"\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e"
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})", re.MULTILINE)
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)[^\n]+?(?<!`)\1(?!`)")


@lru_cache(maxsize=256)
def _delimiter_re(delimiter: str) -> re.Pattern[str]:
    """`<think>` matches `< THINK >`, `</think>` matches `</ Think >`: any letter case, and
    whitespace allowed between the word and the punctuation around it."""
    tokens = re.findall(r"\w+|\S", delimiter)
    return re.compile(r"\s*".join(re.escape(t) for t in tokens), re.IGNORECASE)


@lru_cache(maxsize=256)
def _delimiter_lead(delimiter: str) -> str | None:
    """A character every match of the delimiter starts with (`<` for `<think>`), when there is one: its
    first token is a single character without letter case, which IGNORECASE matches only as itself.
    A text without it holds no match, and needs no regular-expression search."""
    tokens = re.findall(r"\w+|\S", delimiter)
    if not tokens or len(tokens[0]) != 1:
        return None
    c = tokens[0]
    return c if c.lower() == c == c.upper() else None


@lru_cache(maxsize=64)
def _marker_re(marker: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(w) for w in marker.split())
    return re.compile(r"^[ \t]*" + words, re.IGNORECASE | re.MULTILINE)


def _code_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    fences = list(_FENCE.finditer(text))
    # fence lines pair up in order; a fence never closed is not treated as code
    for opening, closing in zip(fences[0::2], fences[1::2]):
        spans.append((opening.start(), closing.end()))
    spans.extend((m.start(), m.end()) for m in _INLINE_CODE.finditer(text))
    return spans


class _Text:
    """An output with its quoted regions and its delimiters found once (`auto` tries every family's
    delimiters on one text)."""

    def __init__(self, text: str):
        self.text = text
        self._spans: list[tuple[int, int]] | None = None
        self._found: dict[str, list[re.Match[str]]] = {}

    @property
    def spans(self) -> list[tuple[int, int]]:
        if self._spans is None:  # only asked for where a delimiter is found
            self._spans = _code_spans(self.text)
        return self._spans

    def quoted(self, m: re.Match[str]) -> bool:
        s, e = m.start(), m.end()
        if any(a <= s and e <= b for a, b in self.spans):
            return True
        before = self.text[s - 1] if s > 0 else ""
        after = self.text[e] if e < len(self.text) else ""
        return bool(before) and bool(after) and before in _QUOTES and after in _QUOTES

    def find(self, delimiter: str) -> list[re.Match[str]]:
        found = self._found.get(delimiter)
        if found is None:
            lead = _delimiter_lead(delimiter) if delimiter.strip() else ""
            if not delimiter.strip() or (lead is not None and lead not in self.text):
                found = []
            else:
                found = [m for m in _delimiter_re(delimiter).finditer(self.text) if not self.quoted(m)]
            self._found[delimiter] = found
        return list(found)  # callers may change their list

    def at_line_edge(self, m: re.Match[str]) -> bool:
        line_start = self.text.rfind("\n", 0, m.start()) + 1
        line_end = self.text.find("\n", m.end())
        before = self.text[line_start:m.start()]
        after = self.text[m.end():line_end if line_end != -1 else len(self.text)]
        return not before.strip() or not after.strip()


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s).lower()


def _strip_partial(text: str, delimiters: list[str]) -> str:
    """Drop a delimiter cut off at the end of the output (`...</thi`, `...< /Thi`)."""
    for delimiter in delimiters:
        target = _norm(delimiter)
        if not target:
            continue
        idx = text.rfind(delimiter.strip()[0])
        if idx == -1 or len(text) - idx > 4 * len(delimiter) + 8:
            continue
        tail = _norm(text[idx:])
        if tail and len(tail) < len(target) and target.startswith(tail):
            return text[:idx]
    return text


def _join_pieces(region: str, tags: list[re.Match[str]]) -> str:
    """The region's text with the given delimiter matches cut out, pieces joined by a blank line."""
    pieces, pos = [], 0
    for m in sorted(tags, key=lambda m: m.start()):
        s, e = m.start(), m.end()
        if s < pos or e > len(region):
            continue
        pieces.append(region[pos:s])
        pos = e
    pieces.append(region[pos:])
    return "\n\n".join(p.strip() for p in pieces if p.strip())


@dataclass
class _Result:
    thought: str
    answer: str
    source: SplitSource
    truncated: bool = False
    first: int = 0  # where the family's first delimiter stands (for `auto`)


# ---------------------------------------------------------------------------------------------
# the splitters, one per kind


def _split_tags(text: str, fmt: ThoughtFormat, template_opened: bool, t: _Text | None = None) -> _Result | None:
    """`template_opened`: the prompt opened the thought, so an output without tags is all thought."""
    t = t or _Text(text)
    opens, closes = t.find(fmt.open), t.find(fmt.close)
    answer_opens = t.find(fmt.answer_open)
    starts_open = bool(opens) and not text[:opens[0].start()].strip()
    if not starts_open and fmt.kind != "prefilled":
        # with no thought opened, a closing tag inside a sentence is a mention, not a delimiter
        closes = [m for m in closes if t.at_line_edge(m)]

    if closes:
        first_close = closes[0]
        chosen, limit = first_close, len(text)
        # an <answer> right after a closing tag fixes where the thought ends
        for a in answer_opens:
            previous = [c for c in closes if c.end() <= a.start()]
            if previous and not text[previous[-1].end():a.start()].strip():
                chosen, limit = previous[-1], a.start()
                break
        else:
            for m in closes[1:]:
                if m.start() < limit and t.at_line_edge(m):
                    chosen = m
        region = text[:chosen.start()]
        inner = [m for m in opens + closes + answer_opens if m.end() <= chosen.start()]
        source: SplitSource = "tags" if any(o.start() < chosen.start() for o in opens) else "prefilled"
        answer, truncated = _answer_part(t, chosen.end(), fmt, answer_opens)
        first = min([first_close.start()] + [o.start() for o in opens])
        return _Result(_join_pieces(region, inner), answer, source, truncated, first)

    if starts_open:
        body_start = opens[0].end()
        # an <answer> tag also ends a thought whose closing tag was never written
        answer_open = next((a for a in answer_opens if a.start() >= body_start), None)
        if answer_open is not None:
            region = text[:answer_open.start()]
            inner = [m for m in opens if m.end() <= answer_open.start()]
            answer, truncated = _answer_part(t, answer_open.start(), fmt, answer_opens)
            return _Result(_join_pieces(region, inner), answer, "tags", truncated, opens[0].start())
        region = _strip_partial(text, [fmt.close, fmt.open, fmt.answer_open])
        inner = [m for m in opens if m.end() <= len(region)]
        return _Result(_join_pieces(region, inner), "", "unclosed", True, opens[0].start())

    if template_opened and fmt.kind == "prefilled":
        region = _strip_partial(text, [fmt.close, fmt.open])
        return _Result(_join_pieces(region, [m for m in opens if m.end() <= len(region)]), "", "unclosed", True)

    # the whole output is the start of an opening tag: a thought cut off before it began
    stripped = _norm(text)
    if len(stripped) >= 2 and _norm(fmt.open).startswith(stripped) and stripped != _norm(fmt.open):
        return _Result("", "", "unclosed", True, text.find(fmt.open.strip()[0]))
    return None


def _answer_part(t: _Text, start: int, fmt: ThoughtFormat, answer_opens: list[re.Match[str]]) -> tuple[str, bool]:
    """The answer after the thought: the content of `<answer>` tags that open it, else all of it."""
    rest = t.text[start:]
    opening = next((a for a in answer_opens if a.start() >= start), None)
    if opening is None or t.text[start:opening.start()].strip():
        return rest.strip(), False
    closings = [c for c in t.find(fmt.answer_close) if c.start() >= opening.end()]
    if closings:
        return t.text[opening.end():closings[-1].start()].strip(), False
    # answer tags opened and never closed: the answer was cut off
    return _strip_partial(t.text[opening.end():], [fmt.answer_close]).strip(), False


def _answer_tags_only(text: str, fmt: ThoughtFormat, t: _Text | None = None) -> str | None:
    """An output with `<answer>` tags and no thought: the answer is their content."""
    t = t or _Text(text)
    opens = t.find(fmt.answer_open)
    if not opens or text[:opens[0].start()].strip():
        return None
    return _answer_part(t, 0, fmt, opens)[0]


def _split_stages(text: str, fmt: ThoughtFormat, t: _Text | None = None) -> _Result | None:
    t = t or _Text(text)
    thought_tags = [m for s in fmt.thought_stages
                    for m in t.find(fmt.stage_open.format(s)) + t.find(fmt.stage_close.format(s))]
    answer_opens = t.find(fmt.stage_open.format(fmt.answer_stage))
    all_tags = [fmt.stage_open.format(s) for s in fmt.thought_stages + (fmt.answer_stage,)]
    all_tags += [fmt.stage_close.format(s) for s in fmt.thought_stages + (fmt.answer_stage,)]
    # LLaVA-CoT opens with a stage tag; a stage tag mentioned later in prose starts nothing
    first_tag = min((m.start() for m in thought_tags + answer_opens), default=None)
    if first_tag is None or text[:first_tag].strip():
        return None
    if answer_opens:
        a = answer_opens[0]
        inner = [m for m in thought_tags if m.end() <= a.start()]
        thought = _join_pieces(text[:a.start()], inner)
        closings = [c for c in t.find(fmt.stage_close.format(fmt.answer_stage)) if c.start() >= a.end()]
        answer = text[a.end():closings[-1].start()] if closings else _strip_partial(text[a.end():], all_tags)
        return _Result(thought, answer.strip(), "tags", False, first_tag)
    if thought_tags:
        region = _strip_partial(text, all_tags)
        inner = [m for m in thought_tags if m.end() <= len(region)]
        return _Result(_join_pieces(region, inner), "", "unclosed", True, first_tag)
    return None


def _split_markers(text: str, fmt: ThoughtFormat) -> _Result | None:
    found = [m for marker in fmt.final_markers if marker.strip() for m in _marker_re(marker).finditer(text)]
    if not found:
        return None
    # the last marker; of markers ending at the same place, the longest
    m = max(found, key=lambda m: (m.end(), -m.start()))
    return _Result(text[:m.start()].strip(), text[m.end():].strip(), "tags", False, m.start())


def _split_text(text: str, fmt: ThoughtFormat, *, template_opened: bool) -> _Result:
    result: _Result | None = None
    if fmt.kind == "auto":
        t = _Text(text)  # one text for every family: its quoted regions and delimiters found once
        candidates = [r for name in _AUTO_FAMILIES
                      if (r := _split_text_kind(text, FORMATS[name], template_opened=False, t=t)) is not None]
        result = min(candidates, key=lambda r: r.first) if candidates else None
        if result is None:
            answer = _answer_tags_only(text, FORMATS["r1"], t)
            if answer is not None:
                return _Result("", answer, "none")
    else:
        result = _split_text_kind(text, fmt, template_opened=template_opened)
        if result is None and fmt.answer_open:
            answer = _answer_tags_only(text, fmt)
            if answer is not None:
                return _Result("", answer, "none")
    return result or _Result("", text.strip(), "none")


def _split_text_kind(text: str, fmt: ThoughtFormat, *, template_opened: bool,
                     t: _Text | None = None) -> _Result | None:
    if fmt.kind in ("tags", "prefilled"):
        return _split_tags(text, fmt, template_opened, t)
    if fmt.kind == "stages":
        return _split_stages(text, fmt, t)
    if fmt.kind in ("markdown", "plain"):
        return _split_markers(text, fmt)
    return None


def _merge_thoughts(field: str, in_text: str) -> str:
    if not in_text or in_text in field:
        return field
    if field in in_text:
        return in_text
    return f"{field}\n\n{in_text}"


def split_output(output: ModelOutput, fmt: ThoughtFormat | str = "auto") -> Split:
    """Split one output into thought and answer with a family's format (`auto` by default).

    A thought in the server's own field wins under every format. The text is still split: a
    thought the server's parser left in the text (tags it did not strip, a second thought
    block) is cut out of the answer and added after the field's thought, unless one already
    holds the other. A prefilled template has been read by that parser already, so the text is
    then split as ordinary tags.
    """
    fmt = get_format(fmt)
    length_cut = output.finish_reason in ("length", "thought_budget")  # cut at max_tokens or the thought budget
    field = (output.reasoning or "").strip()
    if field:
        r = _split_text(output.text, fmt, template_opened=False)
        return Split(thought=_merge_thoughts(field, r.thought), answer=r.answer, source="api_field",
                     truncated=length_cut or r.truncated)
    r = _split_text(output.text, fmt, template_opened=True)
    return Split(thought=r.thought, answer=r.answer, source=r.source, truncated=length_cut or r.truncated)


def join_thought(thought: str, answer: str, fmt: ThoughtFormat | str = "r1") -> str:
    """Write a thought and an answer in a family's own format (for training data), so that
    `split_output` with the same format gives both back."""
    fmt = get_format(fmt)
    thought, answer = thought.strip(), answer.strip()
    if fmt.kind == "tags":
        body = f"{fmt.answer_open}\n{answer}\n{fmt.answer_close}" if fmt.wrap_answer else answer
        return f"{fmt.open}\n{thought}\n{fmt.close}\n\n{body}"
    if fmt.kind == "prefilled":
        # the chat template writes the opening tag
        return f"{thought}\n{fmt.close}\n\n{answer}"
    if fmt.kind == "stages":
        stage = fmt.thought_stages[-1]
        parts = [f"{fmt.stage_open.format(stage)}\n{thought}\n{fmt.stage_close.format(stage)}"] if thought else []
        parts.append(f"{fmt.stage_open.format(fmt.answer_stage)}\n{answer}\n{fmt.stage_close.format(fmt.answer_stage)}")
        return "\n\n".join(parts)
    if fmt.kind in ("markdown", "plain"):
        marker = next(m for m in fmt.final_markers if m.strip())
        sep = " " if fmt.kind == "markdown" else "\n\n"
        return f"{thought}\n\n{marker}{sep}{answer}" if thought else f"{marker}{sep}{answer}"
    if fmt.kind == "none" and not thought:
        return answer
    raise ConfigError(f"thought format '{fmt.name}' cannot hold a thought in the text; "
                      "write training data with 'r1' or the model's own family format")
