"""Rubric files: the instructions an LLM judge follows, as text templates with named fields.

A rubric file is a small header, a line `---`, then the template:

    # comment lines start with '#'
    vocabulary: harm                  # a label vocabulary of tis.core.labels (harm, refusal, mssbench, ...)
    labels: safe, unsafe              # the labels the judge may give: a subset of that vocabulary
    images: no                        # yes: send the sample's images to the judge (when it accepts them)
    score: 1-10                       # optional: the judge also gives a number in this range
    targets: answer, full             # optional: the parts this rubric can judge [thought, answer, full]
    description: one line for listings
    ---
    Decide whether ... {request} ... {response} ...

Fields are `{name}`; write `{{` and `}}` for literal braces. The project's rubrics are in
`tis/judges/rubrics/`; a user's file (or a folder of them) can replace or add to them.
"""

from __future__ import annotations

import difflib
import hashlib
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from tis.core import labels as vocabularies
from tis.core.errors import ConfigError
from tis.core.types import Sample, Target

VOCABULARIES: dict[str, dict[str, bool | None]] = {
    "harm": vocabularies.HARM,
    "refusal": vocabularies.REFUSAL,
    "mssbench": vocabularies.MSSBENCH,
    "vlsbench": vocabularies.VLSBENCH,
    "effectiveness": vocabularies.EFFECTIVENESS,
}

#: the fields a template may use, and what each holds
FIELDS: dict[str, str] = {
    "request": "the sample's text as the model received it, in a delimited block",
    "response": "the text being judged (thought, answer or both), in a delimited block",
    "part": "which part is judged, in words (e.g. \"final answer\")",
    "category": "the sample's category (e.g. the MM-SafetyBench scenario)",
    "safety_warning": "the benchmark's safety warning for the sample (SIUO: meta.safety_warning), in a block",
    "reference": "the benchmark's reference answer (SIUO: meta.reference_answer), in a block",
    "labels": "the allowed labels, quoted and comma separated",
}
#: fields that hold text from outside the project (model output, dataset text): put in nonce blocks
BLOCK_FIELDS = ("request", "response", "safety_warning", "reference")
#: where a field comes from in sample.meta
META_FIELDS = {"safety_warning": "safety_warning", "reference": "reference_answer"}

HEADER_KEYS = ("vocabulary", "labels", "images", "score", "targets", "description")
ALL_TARGETS: tuple[Target, ...] = ("thought", "answer", "full")

# MM-SafetyBench's criteria (the loader writes meta.criteria) for samples stored without a rubric
_MMSB_RUBRIC = {"decline": "mm_safetybench_decline", "disclaim": "mm_safetybench_disclaim"}


@dataclass(frozen=True)
class Rubric:
    name: str
    source: str  # the file it was read from
    vocabulary: str
    labels: tuple[str, ...]
    images: bool
    template: str
    fields: frozenset[str]
    sha256: str
    score: tuple[float, float] | None = None
    targets: tuple[Target, ...] = ALL_TARGETS
    description: str = ""
    safe_of: dict[str, bool | None] = field(default_factory=dict)

    def render(self, values: dict[str, str]) -> str:
        return self.template.format_map({k: values[k] for k in self.fields})


def builtin_dir() -> Path:
    return Path(str(resources.files("tis.judges").joinpath("rubrics")))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.txt"))


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(".txt") or "/" in ref or "\\" in ref or ref.startswith(("~", "."))


def find_rubric(ref: str, rubric_dir: str | Path | None = None) -> Path:
    """The file for a rubric name (looked up in `rubric_dir` first, then the project's) or path."""
    if _looks_like_path(ref):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise ConfigError(f"rubric file {path} does not exist")
        return path
    folders = ([Path(rubric_dir).expanduser()] if rubric_dir else []) + [builtin_dir()]
    for folder in folders:
        if (folder / f"{ref}.txt").is_file():
            return folder / f"{ref}.txt"
    names = sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.txt")})
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"unknown rubric '{ref}'{hint}; known rubrics: {', '.join(names)}; "
                      "or give the path of a rubric file")


def load_rubric(ref: str | Path, rubric_dir: str | Path | None = None) -> Rubric:
    path = Path(ref) if isinstance(ref, Path) else find_rubric(ref, rubric_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"rubric file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_rubric(text, name=path.stem, source=str(path))


def parse_rubric(text: str, *, name: str, source: str = "<text>") -> Rubric:
    where = f"rubric file {source}"
    lines = text.splitlines()
    try:
        split = next(i for i, line in enumerate(lines) if line.strip() == "---")
    except StopIteration:
        raise ConfigError(f"{where}: no '---' line between the header and the template") from None
    header: dict[str, str] = {}
    for n, line in enumerate(lines[:split], start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition(":")
        key = key.strip().lower()
        if not sep or key not in HEADER_KEYS:
            raise ConfigError(f"{where}, line {n}: '{stripped[:60]}' is not a header line; "
                              f"the header takes {', '.join(k + ':' for k in HEADER_KEYS)}")
        if key in header:
            raise ConfigError(f"{where}, line {n}: '{key}' is given twice")
        header[key] = value.split(" #", 1)[0].strip()

    if "labels" not in header:
        raise ConfigError(f"{where}: the header needs a 'labels:' line (e.g. labels: safe, unsafe)")
    rubric_labels = tuple(dict.fromkeys(x.strip() for x in header["labels"].split(",") if x.strip()))
    if len(rubric_labels) < 2:
        raise ConfigError(f"{where}: 'labels:' needs at least two labels, found {header['labels']!r}")
    vocabulary = _vocabulary(where, header.get("vocabulary"), rubric_labels)
    images = _yes_no(where, "images", header.get("images", "no"))
    score = _score_range(where, header["score"]) if header.get("score") else None
    targets = _targets(where, header["targets"]) if header.get("targets") else ALL_TARGETS

    template = "\n".join(lines[split + 1:]).strip("\n")
    fields = _template_fields(where, template)
    if "response" not in fields:
        raise ConfigError(f"{where}: the template never uses {{response}}, so the judge would not see the text "
                          "it judges")
    return Rubric(name=name, source=source, vocabulary=vocabulary, labels=rubric_labels, images=images,
                  template=template, fields=frozenset(fields), sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                  score=score, targets=targets, description=header.get("description", ""),
                  safe_of={label: VOCABULARIES[vocabulary][label] for label in rubric_labels})


def _vocabulary(where: str, given: str | None, rubric_labels: tuple[str, ...]) -> str:
    if given:
        vocab = given.strip().lower()
        if vocab not in VOCABULARIES:
            raise ConfigError(f"{where}: unknown vocabulary '{given}'; known: {', '.join(VOCABULARIES)}")
        unknown = [x for x in rubric_labels if x not in VOCABULARIES[vocab]]
        if unknown:
            raise ConfigError(f"{where}: label(s) {', '.join(repr(x) for x in unknown)} are not in the {vocab} "
                              f"vocabulary ({', '.join(VOCABULARIES[vocab])})")
        return vocab
    fits = [v for v, allowed in VOCABULARIES.items() if all(x in allowed for x in rubric_labels)]
    if not fits:
        unknown = sorted({x for x in rubric_labels if not any(x in allowed for allowed in VOCABULARIES.values())})
        detail = (f"unknown label(s) {', '.join(repr(x) for x in unknown)}" if unknown
                  else "these labels come from different vocabularies")
        raise ConfigError(f"{where}: {detail}; the labels must all come from one vocabulary: "
                          + "; ".join(f"{v}: {', '.join(a)}" for v, a in VOCABULARIES.items()))
    if len(fits) > 1:
        raise ConfigError(f"{where}: the labels fit the vocabularies {', '.join(fits)}: add a "
                          "'vocabulary:' line to say which")
    return fits[0]


def _yes_no(where: str, key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("yes", "true"):
        return True
    if low in ("no", "false"):
        return False
    raise ConfigError(f"{where}: '{key}:' takes yes or no, not {value!r}")


def _score_range(where: str, value: str) -> tuple[float, float]:
    low, sep, high = value.partition("-")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        lo = hi = float("nan")
    if not sep or not lo < hi:
        raise ConfigError(f"{where}: 'score:' takes a range LOW-HIGH such as 1-10, not {value!r}")
    return lo, hi


def _targets(where: str, value: str) -> tuple[Target, ...]:
    given = [x.strip() for x in value.split(",") if x.strip()]
    bad = [x for x in given if x not in ALL_TARGETS]
    if bad or not given:
        raise ConfigError(f"{where}: 'targets:' takes some of {', '.join(ALL_TARGETS)}, not {value!r}")
    return tuple(t for t in ALL_TARGETS if t in given)  # type: ignore[misc]


def _template_fields(where: str, template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{where}: the template has an unbalanced brace ({exc}); write {{{{ and }}}} for "
                          "literal braces") from None
    fields: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in FIELDS:
            close = difflib.get_close_matches(name, list(FIELDS), n=1)
            hint = f" (did you mean {{{close[0]}}}?)" if close else ""
            raise ConfigError(f"{where}: the template uses {{{name}}}, which is not a field{hint}; fields: "
                              f"{', '.join('{' + f + '}' for f in FIELDS)} (write {{{{ and }}}} for literal braces)")
        if spec or conversion:
            raise ConfigError(f"{where}: field {{{name}}} takes no format or conversion")
        fields.append(name)
    return fields


def default_rubric_name(sample: Sample, target: Target) -> str:
    """The project's rubric for a sample and target: the one its benchmark declared (`Sample.rubric`);
    for samples stored before benchmarks declared one, by benchmark name as then."""
    if target == "thought":
        return "thought"
    if sample.rubric:
        return sample.rubric
    bench = sample.benchmark
    if bench == "mm-safetybench":
        return _MMSB_RUBRIC.get(str(sample.meta.get("criteria")), "harm")
    if bench == "siuo":
        return "siuo_safety"
    if bench in ("mssbench", "vlsbench"):
        return bench
    if bench == "mossbench" or sample.group == "over-refusal":
        return "refusal"
    return "harm"


#: every rubric `default_rubric_name` can choose
DEFAULT_RUBRICS = ("harm", "thought", "mm_safetybench_decline", "mm_safetybench_disclaim", "siuo_safety",
                   "mssbench", "vlsbench", "refusal")
