"""Reading a whole benchmark and opening every image: what `tis benchmarks check` reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tis.sources.base import Benchmark, Problem
from tis.core.types import Sample


@dataclass
class CheckReport:
    benchmark: str
    total: int = 0  # usable samples
    images: int = 0  # distinct image files opened
    categories: Counter = field(default_factory=Counter)
    groups: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"benchmark": self.benchmark, "total": self.total, "images": self.images,
                "categories": dict(sorted(self.categories.items())), "groups": dict(self.groups),
                "problems": [p.model_dump() for p in self.problems]}


def image_fault(path: str) -> str | None:
    """Why an image file cannot be used, or None. verify() checks the structure (PNG checksums);
    load() decodes the pixels, which is what finds a cut-off JPEG."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
    except Exception as exc:  # PIL raises many kinds for damaged files
        return f"image cannot be read: {type(exc).__name__}: {exc}"
    return None


def check_benchmark(bench: Benchmark, *, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Read every record and open every image once. Whole-set faults (DataError) propagate."""
    report = CheckReport(benchmark=bench.name)
    opened: dict[str, str | None] = {}
    ids: set[str] = set()
    for item in bench.records():
        if isinstance(item, Problem):
            report.problems.append(item)
            continue
        sample: Sample = item
        if sample.id in ids:
            report.problems.append(Problem(file=bench.name, record=sample.id, message="duplicate sample id"))
            continue
        ids.add(sample.id)
        faults = []
        for image in sample.images:
            if image.path not in opened:
                opened[image.path] = image_fault(image.path)
            if opened[image.path]:
                faults.append(Problem(file=image.path, record=sample.id, message=opened[image.path]))
        if faults:
            report.problems.extend(faults)
            continue
        report.total += 1
        report.categories[sample.category or "(none)"] += 1
        report.groups[sample.group] += 1
        if progress is not None:
            progress(report.total)
    report.images = len(opened)
    return report
