"""Rendering training conversations through a model's chat template, with the loss on the assistant only.

The loss covers every assistant turn in full: the `<think>...</think>` thought, the answer and the
template's end-of-turn marker (so the model learns to stop); the system prompt, user turns, images
and the template's own assistant header are masked. How a turn is rendered:

- **template**: the conversation goes through the chat template as is. Each assistant turn's span is
  found as the difference between the conversation rendered up to the turn's generation prompt and
  rendered through the turn, so the prompt part is exactly what the model sees at inference.
- **verbatim**: the assistant texts are replaced by placeholders, the template renders the rest
  (headers, end-of-turn markers), and each placeholder is replaced by the assistant text exactly as
  in the data. This is how templates that drop or rewrite thoughts in assistant turns (the R1-distill
  and Qwen3 "Thinking" families drop everything up to `</think>`; some drop earlier turns' thoughts)
  still train on the whole thought. An empty thought block such a template writes before a
  placeholder is left out. A template whose generation prompt already opens the thought (`<think>`
  prefilled) gets the text after the opening tag, as the model writes it at inference.
- **auto** (default): template mode where it keeps every thought of the record, else verbatim.

Token positions come from the processor itself (image placeholders expanded to the image's tokens):
the prompt part of a turn is tokenized with the images it holds and its length is the turn's first
loss position. Image tokens are never cut by `max_length`: an over-long sample has its end cut (its
answer end) when every image token and its first loss token fit, else it is dropped; both counted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from tis.core.errors import ConfigError, DataError
from tis.train.data import TrainRecord, part_text

IGNORE = -100
#: model types whose processors take each sample's images as a nested list of their own
IMAGES_PER_SAMPLE = frozenset({"mllama", "idefics2", "idefics3", "smolvlm"})
#: per-token tensors of a processor's output (cut and padded with the sequence)
PER_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids", "cross_attention_mask")
_SENTINEL = "TISASSISTANTTURN{}END"


class TemplateMismatch(Exception):
    """The template does not render the conversation as a prefix-preserving sequence of turns."""


@dataclass
class Layout:
    """A conversation rendered to text, with the character spans the loss covers."""

    text: str
    spans: list[tuple[int, int]]
    mode: str  # template | verbatim
    expected: list[str]  # per assistant turn: the text its span must hold (thought + answer as trained)


@dataclass
class Encoded:
    """One record tokenized: inputs (batch dim 1, already cut), labels, and what happened to it."""

    record: str
    status: str  # ok | cut | dropped
    mode: str
    inputs: dict[str, Any]
    labels: list[int]
    n_tokens: int  # before any cut
    n_image_tokens: int
    loss_tokens: int
    loss_text: str = ""
    thought_in_loss: bool = True
    answer_in_loss: bool = True
    has_thought: bool = False
    problems: list[str] = field(default_factory=list)


class Renderer:
    """Renders and tokenizes records for one model's processor and chat template."""

    def __init__(self, processor: Any, model_type: str, *, chat_template: str | None = None,
                 thought_open: str = "<think>", thought_close: str = "</think>", handling: str = "auto",
                 max_length: int = 4096, overlong: str = "cut"):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.model_type = model_type
        self.template = chat_template or getattr(processor, "chat_template", None) or \
            getattr(self.tokenizer, "chat_template", None)
        if not self.template:
            raise ConfigError("the model has no chat template; pass --chat-template FILE.jinja")
        self.thought_open, self.thought_close = thought_open, thought_close
        if handling not in ("auto", "template", "verbatim"):
            raise ConfigError(f"thought handling '{handling}' is not one of auto, template, verbatim")
        self.handling = handling
        self.max_length = max_length
        self.overlong = overlong
        self.image_token = getattr(processor, "image_token", None) or "<image>"
        ids = {getattr(processor, "image_token_id", None), self.tokenizer.convert_tokens_to_ids(self.image_token)}
        unk = getattr(self.tokenizer, "unk_token_id", None)
        self.image_ids = {i for i in ids if isinstance(i, int) and i != unk}
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        bos = self.tokenizer.bos_token
        probe = self.render([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], True)
        # a template that writes the BOS itself must not get a second one from the tokenizer
        self.add_special_tokens = not (bos and probe.startswith(bos))

    # -- text ---------------------------------------------------------------------------------

    def render(self, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
        try:
            return self.processor.apply_chat_template(messages, chat_template=self.template, tokenize=False,
                                                      add_generation_prompt=generation_prompt)
        except Exception as exc:  # noqa: BLE001 - jinja raises anything a template can raise
            raise TemplateMismatch(f"the chat template cannot render the conversation: {exc}") from exc

    def layout(self, record: TrainRecord) -> Layout:
        """The record's text and loss spans, by the configured handling (auto: template if it keeps thoughts)."""
        modes = ("template", "verbatim") if self.handling == "auto" else (self.handling,)
        last: Exception | None = None
        for mode in modes:
            try:
                lay = self._template(record.messages) if mode == "template" else self._verbatim(record.messages)
            except TemplateMismatch as exc:
                last = exc
                continue
            if mode == "verbatim" or self.handling == "template" or self._keeps(lay):
                return lay
            last = TemplateMismatch("the chat template drops or rewrites the thought")
        raise DataError(f"{record.id}: {last}")

    def _keeps(self, lay: Layout) -> bool:
        for (s, e), want in zip(lay.spans, lay.expected):
            thought, answer = self.split(want)
            got = _norm(lay.text[s:e])
            if (thought and _norm(thought) not in got) or (answer and _norm(answer) not in got):
                return False
        return True

    def split(self, text: str) -> tuple[str, str]:
        """(thought body, answer) of an assistant text; thought "" when it has none."""
        o, c = self.thought_open, self.thought_close
        if c and c in text:
            head, _, answer = text.partition(c)
            body = head.split(o, 1)[1] if o and o in head else head
            return body.strip(), answer.strip()
        return "", text.strip()

    def _template(self, messages: list[dict[str, Any]]) -> Layout:
        full = self.render(messages, False)
        spans, expected = [], []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            prompt = self.render(messages[:i], True)
            through = self.render(messages[: i + 1], False)
            if not (through.startswith(prompt) and full.startswith(through)):
                raise TemplateMismatch("the chat template renders earlier turns differently once later turns follow")
            spans.append((len(prompt), len(through)))
            expected.append(self._as_trained(part_text(m), prompt))
        return Layout(full, spans, "template", expected)

    def _verbatim(self, messages: list[dict[str, Any]]) -> Layout:
        marked = copy.deepcopy(messages)
        turns: list[tuple[int, str, str]] = []  # (index, sentinel, real text)
        for i, m in enumerate(marked):
            if m["role"] == "assistant":
                sentinel = _SENTINEL.format(len(turns))
                turns.append((i, sentinel, part_text(m)))
                m["content"] = [{"type": "text", "text": sentinel}]
        full = self.render(marked, False)
        text, pos, spans, expected = "", 0, [], []
        for k, (i, sentinel, real) in enumerate(turns):
            prompt = self.render(marked[:i], True)
            if not full.startswith(prompt):
                raise TemplateMismatch("the chat template's generation prompt is not how it renders an assistant turn")
            at = full.find(sentinel, len(prompt))
            if at < 0:
                raise TemplateMismatch("the chat template does not write the assistant's text")
            if k + 1 < len(turns):
                through = self.render(marked[: i + 1], False)
                if not full.startswith(through):
                    raise TemplateMismatch("the chat template renders an assistant turn differently once later "
                                           "turns follow")
                end = len(through)
            else:
                end = len(full)
            text += full[pos:len(prompt)]
            lead = full[len(prompt):at]
            if (self.thought_open and self.thought_open in lead) or (self.thought_close and self.thought_close in lead):
                lead = ""  # an empty thought block the template writes for a turn "without" one
            body = self._as_trained(real, prompt)
            start = len(text)
            text += lead + body + full[at + len(sentinel):end]
            spans.append((start, len(text)))
            expected.append(body)
            pos = end
        text += full[pos:]
        return Layout(text, spans, "verbatim", expected)

    def _as_trained(self, content: str, prompt: str) -> str:
        """The assistant text after a generation prompt that may already open the thought."""
        o = self.thought_open
        tail = prompt.rstrip()
        if not o or not tail.endswith(o):
            return content
        prefill = prompt[tail.rfind(o):]  # e.g. "<think>\n"
        stripped = content.lstrip()
        if stripped.startswith(o):
            rest = stripped[len(o):]
            if prefill.endswith("\n") and rest.startswith("\n"):
                rest = rest[1:]
            return rest
        # no thought in the data: close the prefilled one empty, as such templates render it
        return f"{self.thought_close}\n{content}"

    # -- tokens -------------------------------------------------------------------------------

    def process(self, texts: list[str], images: list[list[Any]]) -> dict[str, Any]:
        if self.model_type in IMAGES_PER_SAMPLE:
            imgs: Any = images if any(images) else None
        else:
            imgs = [im for row in images for im in row] or None
        try:
            return self.processor(text=texts, images=imgs, padding=True, padding_side="right",
                                  return_tensors="pt", add_special_tokens=self.add_special_tokens)
        except (ValueError, TypeError, IndexError) as exc:
            raise DataError(f"the processor cannot encode the sample: {' '.join(str(exc).split())}") from exc

    def _prefix_tokens(self, prefix: str, images: list[Any], full_ids: list[int]) -> int:
        n_img = prefix.count(self.image_token)
        ids = self.process([prefix], [images[:n_img]])["input_ids"][0].tolist()
        n = 0
        for a, b in zip(ids, full_ids):
            if a != b:
                break
            n += 1
        return n

    def bounds(self, lay: Layout, images: list[Any], full_ids: list[int]) -> list[tuple[int, int]]:
        """Token spans of the layout's loss spans within `full_ids` (the processed full text)."""
        out = []
        for s, e in lay.spans:
            ts = self._prefix_tokens(lay.text[:s], images, full_ids)
            te = len(full_ids) if e >= len(lay.text) else self._prefix_tokens(lay.text[:e], images, full_ids)
            out.append((ts, te))
        return out

    def labels_for(self, ids: list[int], spans: list[tuple[int, int]]) -> list[int]:
        labels = [IGNORE] * len(ids)
        for ts, te in spans:
            labels[ts:te] = ids[ts:te]
        return labels

    def keep_length(self, ids: list[int], labels: list[int]) -> int | None:
        """How many tokens the sample keeps (len(ids) if it fits), or None when it must be dropped."""
        n = len(ids)
        if n <= self.max_length:
            return n
        if self.overlong == "drop":
            return None
        first_loss = next((i for i, t in enumerate(labels) if t != IGNORE), None)
        last_image = max((i for i, t in enumerate(ids) if t in self.image_ids), default=-1)
        if first_loss is None or first_loss >= self.max_length or last_image + 1 >= self.max_length:
            return None
        return self.max_length

    def encode(self, record: TrainRecord, *, decode: bool = False) -> Encoded:
        """One record through template, processor, label mask and the length rule."""
        lay = self.layout(record)
        images = record.open_images()
        inputs = self.process([lay.text], [images])
        ids = inputs["input_ids"][0].tolist()
        spans = self.bounds(lay, images, ids)
        labels = self.labels_for(ids, spans)
        keep = self.keep_length(ids, labels)
        status = "ok" if keep == len(ids) else ("dropped" if keep is None else "cut")
        if keep is not None and keep < len(ids):
            inputs = cut(inputs, keep)
            labels = labels[:keep]
        enc = Encoded(record=record.id, status=status, mode=lay.mode, inputs=inputs, labels=labels,
                      n_tokens=len(ids), n_image_tokens=sum(1 for t in ids if t in self.image_ids),
                      loss_tokens=sum(1 for t in labels if t != IGNORE))
        want = lay.expected
        enc.has_thought = any(self.split(w)[0] for w in want)
        kept = [t for t in labels if t != IGNORE]
        loss_text = self.tokenizer.decode(kept, skip_special_tokens=False)
        if decode:
            enc.loss_text = loss_text
        got = _norm(loss_text)
        for w in want:
            thought, answer = self.split(w)
            if thought and (_norm(thought) not in got or _norm(self.thought_close) not in got):
                enc.thought_in_loss = False
            if answer and _norm(answer) not in got:
                enc.answer_in_loss = False
        return enc

    def describe_template(self) -> dict[str, Any]:
        """What the chat template does with thoughts, from a two-turn probe conversation."""
        probe = TrainRecord(id="probe", messages=[
            {"role": "user", "content": [{"type": "text", "text": "first question"}]},
            {"role": "assistant", "content": [{"type": "text", "text": f"{self.thought_open}\nfirst probe thought\n"
                                                                       f"{self.thought_close}\nfirst answer"}]},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]},
            {"role": "assistant", "content": [{"type": "text", "text": f"{self.thought_open}\nsecond probe thought\n"
                                                                       f"{self.thought_close}\nsecond answer"}]},
        ])
        out: dict[str, Any] = {"prefills_thought": False}
        gen = self.render(probe.messages[:1], True).rstrip()
        out["prefills_thought"] = bool(self.thought_open) and gen.endswith(self.thought_open)
        full = self.render(probe.messages, False)
        out["keeps_last_thought"] = "second probe thought" in full
        out["keeps_earlier_thoughts"] = "first probe thought" in full
        try:
            lay = self._template(probe.messages)
            out["template_mode_works"] = self._keeps(lay)
        except TemplateMismatch:
            out["template_mode_works"] = False
        if out["template_mode_works"]:
            out["behaviour"] = "keeps the thought in assistant turns"
        elif not out["keeps_last_thought"]:
            out["behaviour"] = "drops the thought from assistant turns"
        elif not out["keeps_earlier_thoughts"]:
            out["behaviour"] = "drops the thought of earlier assistant turns"
        else:
            out["behaviour"] = "rewrites assistant turns"
        if self.handling == "auto":
            out["handling"] = "template" if out["template_mode_works"] else "verbatim"
        else:
            out["handling"] = self.handling
        return out


def cut(inputs: dict[str, Any], n: int) -> dict[str, Any]:
    """The per-token tensors of a processor output cut to the first `n` positions."""
    seq = inputs["input_ids"].shape[1]
    out = dict(inputs)
    for key, value in inputs.items():
        if _per_token(key, value, inputs["input_ids"].shape[0], seq):
            out[key] = value[:, :n]
    return out


def _per_token(key: str, value: Any, batch: int, seq: int) -> bool:
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) < 2 or tuple(shape[:2]) != (batch, seq):
        return False
    return key in PER_TOKEN_KEYS or not key.startswith(("pixel", "image", "aspect", "video"))


class Collator:
    """Batches records for TRL's SFTTrainer: one processor call per batch (right padding), labels on
    the assistant spans, over-long samples cut at `max_length` (dropped ones were left out before)."""

    def __init__(self, renderer: Renderer, records: list[TrainRecord]):
        self.renderer = renderer
        self.records = records

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        r = self.renderer
        recs = [self.records[row["idx"]] for row in rows]
        lays = [r.layout(rec) for rec in recs]
        images = [rec.open_images() for rec in recs]
        batch = r.process([lay.text for lay in lays], images)
        ids = batch["input_ids"]
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        labels = torch.full_like(ids, IGNORE)
        keeps = []
        for j, lay in enumerate(lays):
            row = ids[j, : lengths[j]].tolist()
            lab = r.labels_for(row, r.bounds(lay, images[j], row))
            keep = r.keep_length(row, lab) or min(len(row), r.max_length)
            labels[j, :keep] = torch.tensor(lab[:keep], dtype=labels.dtype)
            keeps.append(keep)
        width = max(keeps)
        batch = cut(dict(batch), width)
        mask = batch["attention_mask"]
        for j, keep in enumerate(keeps):
            mask[j, keep:] = 0  # a cut sample's tail beside a longer one: out of attention and loss
        batch["labels"] = labels[:, :width]
        return batch


def _norm(text: str) -> str:
    return " ".join(text.split())
