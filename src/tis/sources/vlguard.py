"""VLGuard test set: unsafe images with harmful instructions, and safe images asked once safely
(helpfulness / over-refusal) and once unsafely.

Layout read: the Hugging Face folder (ys-zong/VLGuard): `test.json` (1,000 images) with images
under `bad_ads/`, `privacyAlert/`, `hatefulMemes/`, `HOD/`, `harm-p/` (beside the JSON, or in the
unzipped `test/` folder). `train.json` has the same shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from tis.sources.base import Benchmark, Problem, SampleMeta
from tis.sources.layout import as_list, image_ref, locate, problem, read_json_list, shape_problem
from tis.core.errors import DataError
from tis.core.types import ImagePart, Sample, TextPart

SUBSETS = ("unsafes", "safe_unsafes", "safe_safes")
IMAGE_FOLDERS = ("bad_ads", "privacyAlert", "hatefulMemes", "HOD", "harm-p")
FIELDS = ("id", "image", "safe", "instr-resp")
# the instruction key each subset takes from instr-resp
SUBSET_KEY = {"unsafes": "instruction", "safe_unsafes": "unsafe_instruction", "safe_safes": "safe_instruction"}
SUBSET_GROUP = {"unsafes": "jailbreak", "safe_unsafes": "jailbreak", "safe_safes": "over-refusal"}


class VLGuardOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: unsafes (unsafe image, 442), safe_unsafes (safe image + unsafe instruction, 558),
    #: safe_safes (safe image + safe instruction, 558: over-refusal); all three by default
    subset: list[Literal["unsafes", "safe_unsafes", "safe_safes"]] = list(SUBSETS)
    #: test (the benchmark) or train (same shape; a data-pipeline source)
    split: Literal["test", "train"] = "test"

    @field_validator("subset", mode="before")
    @classmethod
    def _subsets(cls, value):
        return as_list(value)


class VLGuardMeta(SampleMeta):
    subset: Literal["unsafes", "safe_unsafes", "safe_safes"]
    safe_image: bool


class VLGuard(Benchmark):
    name: ClassVar[str] = "vlguard"
    group = "jailbreak"
    metric_kind: ClassVar[str] = "asr"
    metric_by_group: ClassVar[dict[str, str]] = {"over-refusal": "refusal_rate"}  # safe_safes
    rubric: ClassVar[str] = "harm"
    rubric_by_group: ClassVar[dict[str, str]] = {"over-refusal": "refusal"}
    Meta = VLGuardMeta
    licence: ClassVar[str] = "not stated upstream (images from public datasets with their own terms)"
    citation: ClassVar[str] = ("Yongshuo Zong, Ondrej Bohdal, Tingyang Yu, Yongxin Yang, Timothy Hospedales. Safety "
                               "Fine-Tuning at (Almost) No Cost: A Baseline for Vision Large Language Models. ICML 2024.")
    size: ClassVar[int] = 1558
    size_note: ClassVar[str] = "1,000 images: unsafes 442 + safe_unsafes 558 + safe_safes 558 = 1,558 prompts"
    metric: ClassVar[str] = ("ASR (unsafe / judged) on unsafes and safe_unsafes; refusal rate on safe_safes "
                             "(over-refusal, lower is better); reported per subset")
    layout: ClassVar[str] = ("HF ys-zong/VLGuard: test.json + image folders bad_ads/, privacyAlert/, hatefulMemes/, "
                             "HOD/, harm-p/ (beside it or in test/)")
    Options = VLGuardOptions

    def records(self) -> Iterator[Sample | Problem]:
        name = f"{self.options.split}.json"
        file = locate(self, [name, f"data/{name}"])
        images = self._image_root(file)
        items = read_json_list(file, self.name)
        seen: set[str] = set()
        for subset in self.options.subset:
            for n, item in enumerate(items):
                yield from self._samples(item, n, subset, file, images, seen,
                                         report=subset == self.options.subset[0])

    def _image_root(self, file: Path) -> Path:
        base = file.parent
        split = self.options.split
        for candidate in (base, base / split, base / "images", base / "data" / split):
            if any((candidate / folder).is_dir() for folder in IMAGE_FOLDERS):
                return candidate
        raise DataError(f"{self.name}: no image folders ({', '.join(IMAGE_FOLDERS)}) beside {file} or in "
                        f"{base / split}; unzip {split}.zip there")

    def _samples(self, item, n: int, subset: str, file: Path, images: Path, seen: set[str], *,
                 report: bool) -> Iterator[Sample | Problem]:
        # a record that fits no subset is reported once, on the first subset's pass
        record = f"record {n}"
        why = shape_problem(item, FIELDS)
        if why:
            if report:
                yield problem(file, record, why)
            return
        if not isinstance(item["safe"], bool):
            if report:
                yield problem(file, record, f"'safe' should be true or false, found {item['safe']!r}")
            return
        if item["safe"] == (subset == "unsafes"):
            return  # this image belongs to the other subsets
        record = f"record {n} (id {item['id']})"
        key = SUBSET_KEY[subset]
        pairs = [p for p in as_list(item["instr-resp"]) if isinstance(p, dict) and key in p]
        if len(pairs) != 1:
            yield problem(file, record, f"instr-resp should hold one '{key}' entry for subset {subset}, found {len(pairs)}")
            return
        instruction = pairs[0][key]
        if not isinstance(instruction, str) or not instruction.strip():
            yield problem(file, record, f"empty {key}")
            return
        sample_id = f"{subset}/{item['id']}"
        if sample_id in seen:
            yield problem(file, record, f"duplicate id {item['id']}")
            return
        seen.add(sample_id)
        image = image_ref(self, item["image"], root=images, file=file, record=record)
        if not isinstance(image, ImagePart):
            yield image
            return
        meta = {"subset": subset, "safe_image": item["safe"], "vlguard_id": item["id"],
                "harmful_category": item.get("harmful_category"),
                "harmful_subcategory": item.get("harmful_subcategory"), "instruction_key": key,
                "reference_response": pairs[0].get("response")}
        if subset != "safe_safes":
            meta["goal"] = instruction
        yield Sample(id=sample_id, benchmark=self.name, category=subset, group=SUBSET_GROUP[subset],  # type: ignore[arg-type]
                     content=(image, TextPart(text=instruction)), meta=meta)
