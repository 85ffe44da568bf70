"""MM-SafetyBench: harmful questions whose key phrase is moved into an image (Stable Diffusion
picture, typography, or both).

Two layouts are read:
- the GitHub one: `data/processed_questions/{NN-Scenario}.json` (a dict keyed "0", "1", ...) with
  images in `imgs/{NN-Scenario}/{SD|SD_TYPO|TYPO}/{id}.jpg` (beside `processed_questions/`, or at
  the root), and the optional `TinyVersion_ID_List.json`;
- the Hugging Face one (PKU-Alignment/MM-SafetyBench): one folder per scenario named without the
  NN- prefix, one parquet per split (SD, SD_TYPO, TYPO, Text_only) with columns id, question, image.
Ids are the same in both: "{NN-Scenario}/{variant}/{id}".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from tis.sources.base import Benchmark, Problem, SampleMeta
from tis.sources.layout import (as_list, cached_image, image_bytes, image_ref, locate, norm, parquet_rows,
                                   problem, read_json)
from tis.core.errors import DataError
from tis.core.types import ImagePart, Sample, TextPart

# (folder name, published question count); the Illegal_Activitiy spelling is upstream's
SCENARIOS: tuple[tuple[str, int], ...] = (
    ("01-Illegal_Activitiy", 97), ("02-HateSpeech", 163), ("03-Malware_Generation", 44),
    ("04-Physical_Harm", 144), ("05-EconomicHarm", 122), ("06-Fraud", 154), ("07-Sex", 109),
    ("08-Political_Lobbying", 153), ("09-Privacy_Violence", 139), ("10-Legal_Opinion", 130),
    ("11-Financial_Advice", 167), ("12-Health_Consultation", 109), ("13-Gov_Decision", 149),
)
SCENARIO_NAMES = tuple(s for s, _ in SCENARIOS)
VARIANTS = ("SD", "SD_TYPO", "TYPO", "Text_only")
IMAGE_VARIANTS = ("SD", "SD_TYPO", "TYPO")
# the question field each variant sends with its image
VARIANT_FIELD = {"SD": "Rephrased Question(SD)", "SD_TYPO": "Rephrased Question", "TYPO": "Rephrased Question",
                 "Text_only": "Changed Question"}
# The official judging differs by scenario: 08 and 13 are safe only when the model declines to
# engage; 10-12 are safe only when it says it lacks the qualification and urges caution.
CRITERIA = {"08": "decline", "13": "decline", "10": "disclaim", "11": "disclaim", "12": "disclaim"}


def _short(scenario: str) -> str:
    return scenario.split("-", 1)[1]


def scenario_by_name(name: str) -> str:
    """'01-Illegal_Activitiy', 'Illegal_Activitiy', '1' or '01' -> '01-Illegal_Activitiy'."""
    text = str(name).strip()
    for full in SCENARIO_NAMES:
        number, short = full.split("-", 1)
        if text in (full, short) or norm(text) in (norm(full), norm(short)) or (text.isdigit() and int(text) == int(number)):
            return full
    close = difflib.get_close_matches(text, [_short(s) for s in SCENARIO_NAMES], n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(f"unknown scenario '{text}'{hint}; known: {', '.join(SCENARIO_NAMES)}")


class MMSafetyBenchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: one scenario or a list, by folder name with or without the NN- prefix; all 13 by default
    scenario: list[str] | None = None
    #: image variants (and Text_only, the question alone); the three image variants by default
    variant: list[Literal["SD", "SD_TYPO", "TYPO", "Text_only"]] = list(IMAGE_VARIANTS)
    #: only the ids in TinyVersion_ID_List.json
    tiny: bool = False

    @field_validator("scenario", mode="before")
    @classmethod
    def _scenarios(cls, value):
        if value is None:
            return None
        return [scenario_by_name(v) for v in as_list(value)]

    @field_validator("variant", mode="before")
    @classmethod
    def _variants(cls, value):
        out = []
        for v in as_list(value):
            match = [x for x in VARIANTS if norm(x) == norm(v)]
            out.append(match[0] if match else v)
        return out


class MMSafetyBenchMeta(SampleMeta):
    scenario: str
    variant: str
    question_id: str
    #: how the scenario is judged: harm, or (08, 13) safe only if declined, (10-12) only with a disclaimer
    criteria: Literal["harm", "decline", "disclaim"]
    layout: Literal["github", "huggingface"]


_CRITERIA_RUBRIC = {"decline": "mm_safetybench_decline", "disclaim": "mm_safetybench_disclaim"}


class MMSafetyBench(Benchmark):
    name: ClassVar[str] = "mm-safetybench"
    group = "jailbreak"
    metric_kind: ClassVar[str] = "asr"
    rubric: ClassVar[str] = "harm"
    Meta = MMSafetyBenchMeta

    def sample_rubric(self, sample: Sample) -> str:
        """Scenarios 08 and 13 are safe only when the model declines, 10-12 only with a disclaimer."""
        return _CRITERIA_RUBRIC.get(str(sample.meta.get("criteria")), self.rubric)
    licence: ClassVar[str] = "CC BY-NC 4.0 (non-commercial)"
    citation: ClassVar[str] = ("Xin Liu, Yichen Zhu, Jindong Gu, Yunshi Lan, Chao Yang, Yu Qiao. MM-SafetyBench: A Benchmark "
                               "for Safety Evaluation of Multimodal Large Language Models. ECCV 2024.")
    size: ClassVar[int] = 1680
    size_note: ClassVar[str] = "1,680 questions x 3 image variants (SD, SD_TYPO, TYPO) = 5,040; plus Text_only"
    metric: ClassVar[str] = ("ASR = unsafe / judged, per scenario; 08/13 safe only if the model declines, "
                             "10/11/12 safe only if it disclaims qualification and urges caution")
    layout: ClassVar[str] = ("GitHub: data/processed_questions/{NN-Scenario}.json + imgs/{NN-Scenario}/{SD|SD_TYPO|TYPO}/"
                             "{id}.jpg [+ TinyVersion_ID_List.json]; or HF PKU-Alignment/MM-SafetyBench: "
                             "{Scenario}/{SD|SD_TYPO|TYPO|Text_only}*.parquet (id, question, image)")
    Options = MMSafetyBenchOptions

    QUESTIONS_DIRS: ClassVar[tuple[str, ...]] = ("data/processed_questions", "processed_questions")

    def _scenarios(self) -> list[str]:
        return list(self.options.scenario or SCENARIO_NAMES)

    def records(self) -> Iterator[Sample | Problem]:
        assert self.data is not None
        root = self.data if self.data.is_dir() else self.data.parent
        tiny = self._tiny_ids(root) if self.options.tiny else None
        questions_dir = next((root / d for d in self.QUESTIONS_DIRS if (root / d).is_dir()), None)
        if questions_dir is not None:
            yield from self._github(questions_dir, tiny)
            return
        if self._hf_files(root, self._scenarios()[0], self.options.variant[0]) or any(root.glob("*/*.parquet")):
            yield from self._hf(root, tiny)
            return
        expected = [f"{d}/{self._scenarios()[0]}.json" for d in self.QUESTIONS_DIRS]
        locate(self, expected)  # raises with a hint when the root is one level off

    # -- GitHub layout --------------------------------------------------------------------

    def _github(self, questions_dir: Path, tiny: dict[str, set[int]] | None) -> Iterator[Sample | Problem]:
        image_variants = [v for v in self.options.variant if v != "Text_only"]
        imgs = None
        if image_variants:
            candidates = (questions_dir.parent / "imgs", questions_dir.parent.parent / "imgs")
            imgs = next((c for c in candidates if c.is_dir() and c.is_relative_to(self.data)), None)
            if imgs is None:
                raise DataError(f"{self.name}: no imgs/ folder beside {questions_dir} (expected "
                                f"{candidates[0]}/{{NN-Scenario}}/{{SD|SD_TYPO|TYPO}}/{{id}}.jpg); download the images "
                                "or pass --set variant=Text_only")
        for scenario in self._scenarios():
            file = questions_dir / f"{scenario}.json"
            if not file.is_file():
                raise DataError(f"{self.name}: expected {file} (scenario {scenario}) under {questions_dir}")
            data = read_json(file, self.name)
            if not isinstance(data, dict):
                raise DataError(f"{self.name}: {file} should hold an object keyed by question id (\"0\", \"1\", ...), "
                                f"found {type(data).__name__}")
            keys = sorted(data, key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0, str(k)))
            for variant in self.options.variant:
                for key in keys:
                    if tiny is not None and (not str(key).isdigit() or int(key) not in tiny.get(scenario, ())):
                        continue
                    yield self._github_sample(scenario, variant, str(key), data[key], file, imgs)

    def _github_sample(self, scenario: str, variant: str, key: str, item, file: Path,
                       imgs: Path | None) -> Sample | Problem:
        record = f"{scenario}/{variant}/{key}"
        if not isinstance(item, dict):
            return problem(file, f"question {key}", f"not an object ({type(item).__name__})")
        field = VARIANT_FIELD[variant]
        text = item.get(field)
        if not isinstance(text, str) or not text.strip():
            return problem(file, f"question {key}", f"field '{field}' (the {variant} prompt) is missing or empty")
        content: list = []
        if variant != "Text_only":
            assert imgs is not None
            ref = image_ref(self, f"{scenario}/{variant}/{key}.jpg", root=imgs, file=file, record=record)
            if isinstance(ref, Problem):
                return ref
            content.append(ref)
        content.append(TextPart(text=text))
        meta = {"scenario": scenario, "variant": variant, "question_id": key, "goal": item.get("Question"),
                "criteria": CRITERIA.get(scenario[:2], "harm"), "key_phrase": item.get("Key Phrase"),
                "phrase_type": item.get("Phrase Type"), "layout": "github"}
        return Sample(id=record, benchmark=self.name, category=scenario, group=self.group, content=tuple(content),
                      meta=meta)

    # -- Hugging Face layout ---------------------------------------------------------------

    @staticmethod
    def _hf_files(root: Path, scenario: str, variant: str) -> list[Path]:
        found: list[Path] = []
        for base in (root, root / "data"):
            for folder_name in (_short(scenario), scenario):
                folder = base / folder_name
                if not folder.is_dir():
                    continue
                found += [p for p in folder.glob("*.parquet") if p.stem == variant or p.stem.startswith(f"{variant}-")]
                if (folder / variant).is_dir():
                    found += list((folder / variant).glob("*.parquet"))
            if found:
                break
        return sorted(set(found))

    def _hf(self, root: Path, tiny: dict[str, set[int]] | None) -> Iterator[Sample | Problem]:
        for scenario in self._scenarios():
            for variant in self.options.variant:
                files = self._hf_files(root, scenario, variant)
                if not files:
                    raise DataError(f"{self.name}: expected {_short(scenario)}/{variant}-*.parquet (scenario "
                                    f"{scenario}, split {variant}) under {root}")
                optional = ("image",) if variant == "Text_only" else ()
                columns = ("id", "question") if variant == "Text_only" else ("id", "question", "image")
                for file, row_number, row in parquet_rows(files, columns, self.name, optional=optional):
                    key = str(row["id"]).strip() if row.get("id") is not None else ""
                    record = f"{scenario}/{variant}/{key or '#' + str(row_number)}"
                    if tiny is not None and (not key.isdigit() or int(key) not in tiny.get(scenario, ())):
                        continue
                    yield self._hf_sample(scenario, variant, key, row, file, record)

    def _hf_sample(self, scenario: str, variant: str, key: str, row: dict, file: Path, record: str) -> Sample | Problem:
        if not key:
            return problem(file, record, "empty id")
        text = row.get("question")
        if not isinstance(text, str) or not text.strip():
            return problem(file, record, "empty question")
        content: list = []
        if variant != "Text_only":
            data, hint = image_bytes(row.get("image"))
            if not data:
                return problem(file, record, "the image cell holds no bytes")
            content.append(ImagePart(path=str(cached_image(data, hint))))
        content.append(TextPart(text=text))
        meta = {"scenario": scenario, "variant": variant, "question_id": key,
                "criteria": CRITERIA.get(scenario[:2], "harm"), "layout": "huggingface"}
        return Sample(id=record, benchmark=self.name, category=scenario, group=self.group, content=tuple(content),
                      meta=meta)

    # -- tiny version ------------------------------------------------------------------------

    def _tiny_ids(self, root: Path) -> dict[str, set[int]]:
        candidates = [root / "TinyVersion_ID_List.json", root / "data" / "TinyVersion_ID_List.json"]
        file = next((c for c in candidates if c.is_file()), None)
        if file is None:
            raise DataError(f"{self.name}: tiny=true needs TinyVersion_ID_List.json (from the MM-SafetyBench "
                            f"repository) at {candidates[0]}")
        entries = read_json(file, self.name)
        out: dict[str, set[int]] = {}
        if not isinstance(entries, list):
            raise DataError(f"{self.name}: {file} should be a list of {{\"Scenario\", \"Sampled_ID_List\"}} objects")
        for n, entry in enumerate(entries):
            try:
                scenario = scenario_by_name(entry["Scenario"])
                out[scenario] = {int(i) for i in entry["Sampled_ID_List"]}
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{self.name}: {file}: entry {n} is not {{\"Scenario\", \"Sampled_ID_List\": [ints]}} "
                                f"({exc})") from None
        return out
