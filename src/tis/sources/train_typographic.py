"""Instructions rendered as typographic images (FigStep's recipe) as a data-building source.

Layout read: a CSV (`instruction`, optional `category`, `label`) or JSONL file of instructions,
or a folder holding `instructions.csv` / `instructions.jsonl`. Each instruction is typeset with
`tis.sources.figstep.render_figstep_image` into the cache (keyed by text and font) and asked with
FigStep's prompt, the text-in-image attack a safety set should teach a model to see through.
Labels default to unsafe (the instructions are harmful requests), else the row's `label`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from tis.core.errors import ConfigError
from tis.sources.train_base import SourceItem, SourceProblem, TrainSource, find_file

LABELS = ("unsafe", "benign", "borderline")


class Typographic(TrainSource):
    name: ClassVar[str] = "typographic"
    licence: ClassVar[str] = "the instructions' own; rendering recipe from FigStep (MIT)"
    citation: ClassVar[str] = ("Yichen Gong, Delong Ran, Jinyuan Liu, Conglei Wang, Tianshuo Cong, Anyu Wang, Sisi Duan, "
                               "Xiaoyun Wang. FigStep: Jailbreaking Large Vision-Language Models via Typographic Visual "
                               "Prompts. AAAI 2025.")
    layout: ClassVar[str] = "instructions.csv / instructions.jsonl with instruction, category, label"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        font: str | None = None
        licence: str | None = None

    def items(self) -> Iterator[SourceItem | SourceProblem]:
        from tis.sources.figstep import FIGSTEP_PROMPT, find_font, rendered_figstep_image

        file = find_file(self, ["instructions.csv", "instructions.jsonl"])
        font = find_font(self.options.font)
        if font is None:
            raise ConfigError("source 'typographic': no FreeMonoBold font found: install fonts-freefont-ttf or set "
                              "the source option `font` to a .ttf file")
        for n, row in self.table_rows(file, "instruction"):
            where = f"line {n}"
            instruction = str(row.get("instruction") or "").strip() if isinstance(row, dict) else ""
            if not instruction:
                yield self.problem(file, where, "no `instruction`")
                continue
            label = str(row.get("label") or "unsafe").strip().lower()
            if label not in LABELS:
                yield self.problem(file, where, f"label '{label}' is not one of {', '.join(LABELS)}")
                continue
            path = str(rendered_figstep_image(instruction, font))
            yield SourceItem(id=f"{file.name}:{n}", source=self.name, images=(str(path),), question=FIGSTEP_PROMPT,
                             label=label, category=str(row.get("category") or "").strip() or None,
                             meta={"instruction": instruction, "rendered": "figstep"})
