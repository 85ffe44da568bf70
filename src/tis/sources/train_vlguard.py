"""VLGuard's training set as a data-building source.

Layout read (HF ys-zong/VLGuard): `train.json`, a list of records with `id`, `image`, `safe`,
`harmful_category`, `harmful_subcategory` and `instr-resp`: for an unsafe image one
`{instruction, response}`; for a safe image `{safe_instruction, response}` and
`{unsafe_instruction, response}`. 2,000 images (977 safe, 1,023 unsafe), 2,977 questions. Images
(`bad_ads/`, `privacyAlert/`, `hatefulMemes/`, `HOD/`, `harm-p/`, `safe/`...) lie beside the JSON
or in `train/`. Some instructions are literally `N/A`: such an item has no question (the
*questions* stage writes one, or the build drops it with that reason).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from tis.sources.layout import read_json_list
from tis.sources.train_base import SourceItem, SourceProblem, TrainSource, _Escape, find_file

KEYS = {"instruction": "unsafe", "unsafe_instruction": "unsafe", "safe_instruction": "benign"}
FIELDS = ("id", "image", "safe", "instr-resp")


def _missing(text) -> bool:
    return not isinstance(text, str) or not text.strip() or text.strip().upper() in ("N/A", "NA", "NONE")


class VLGuardTrain(TrainSource):
    name: ClassVar[str] = "vlguard"
    licence: ClassVar[str] = ("not stated upstream; images from public datasets with their own terms "
                              "(VLGuard, ys-zong/VLGuard)")
    citation: ClassVar[str] = ("Yongshuo Zong, Ondrej Bohdal, Tingyang Yu, Yongxin Yang, Timothy Hospedales. Safety "
                               "Fine-Tuning at (Almost) No Cost: A Baseline for Vision Large Language Models. ICML 2024.")
    layout: ClassVar[str] = "train.json with image folders beside it or in train/"

    def items(self) -> Iterator[SourceItem | SourceProblem]:
        file = find_file(self, ["train.json", "data/train.json"])
        records = read_json_list(file, f"source '{self.name}'")
        base = file.parent / "train" if (file.parent / "train").is_dir() else file.parent
        for n, rec in enumerate(records):
            where = f"record {n}"
            if not isinstance(rec, dict) or any(f not in rec for f in FIELDS):
                missing = [f for f in FIELDS if not isinstance(rec, dict) or f not in rec]
                yield self.problem(file, where, f"missing field(s) {', '.join(missing)}")
                continue
            where = f"record {n} (id {rec['id']})"
            try:
                image = self.inside(str(rec["image"]), base, where)
            except _Escape as exc:
                yield self.problem(file, where, str(exc))
                continue
            pairs = rec["instr-resp"] if isinstance(rec["instr-resp"], list) else [rec["instr-resp"]]
            found = False
            for pair in pairs:
                if not isinstance(pair, dict):
                    continue
                for key, label in KEYS.items():
                    if key not in pair:
                        continue
                    found = True
                    text = pair[key]
                    yield SourceItem(
                        id=f"{rec['id']}:{key}", source=self.name, images=(str(image),),
                        question=None if _missing(text) else str(text).strip(), label=label,
                        category=None if label == "benign" else rec.get("harmful_category") or None,
                        subcategory=None if label == "benign" else rec.get("harmful_subcategory") or None,
                        reference_answer=pair.get("response") if isinstance(pair.get("response"), str) else None,
                        meta={"image_safe": bool(rec["safe"]), "instruction_key": key,
                              "image_relative": str(rec["image"])},
                    )
            if not found:
                yield self.problem(file, where, "instr-resp holds no instruction, safe_instruction or "
                                                "unsafe_instruction")
