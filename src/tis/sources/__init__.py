"""Benchmark loaders, registered by name and imported only when used.

Other packages add loaders through the entry-point group `tis.sources`
(name = "package.module:Class"); they are discovered on first need, never imported until used.
"""

from __future__ import annotations

from tis.core.registry import Entry, Registry

ENTRY_POINT_GROUP = "tis.benchmarks"


class BenchmarkRegistry(Registry):
    """A registry that looks at installed entry points before calling a name unknown."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self._entry_points_loaded = False

    def entry(self, name: str) -> Entry:
        if name not in self and not self._entry_points_loaded:
            load_entry_points()
        return super().entry(name)


BENCHMARKS = BenchmarkRegistry("benchmark")
BENCHMARKS.register("safebench-tiny", "tis.sources.figstep:SafeBenchTiny",
                    "FigStep SafeBench-Tiny, 50 typographic jailbreaks (ships with tis)")
BENCHMARKS.register("safebench", "tis.sources.figstep:SafeBench",
                    "FigStep SafeBench, 500 typographic jailbreaks (--data PATH)")
BENCHMARKS.register("mm-safetybench", "tis.sources.mm_safetybench:MMSafetyBench",
                    "MM-SafetyBench, 1,680 questions x SD / SD_TYPO / TYPO images (GitHub or HF layout)")
BENCHMARKS.register("hades", "tis.sources.hades:Hades",
                    "HADES, 750 instructions with adversarial images, optimisation step 5 by default (HF parquet)")
BENCHMARKS.register("jailbreakv-28k", "tis.sources.jailbreakv:JailbreakV28K",
                    "JailbreakV-28K, text and image jailbreaks over 16 policies (mini or full CSV)")
BENCHMARKS.register("siuo", "tis.sources.siuo:Siuo",
                    "SIUO, 167 safe inputs whose combination calls for a safety warning")
BENCHMARKS.register("mssbench", "tis.sources.mssbench:MSSBench",
                    "MSSBench, the same query in a safe and an unsafe situation (chat or embodied)")
BENCHMARKS.register("vlguard", "tis.sources.vlguard:VLGuard",
                    "VLGuard test: unsafes, safe_unsafes, safe_safes (over-refusal)")
BENCHMARKS.register("mossbench", "tis.sources.mossbench:MOSSBench",
                    "MOSSBench, 300 harmless queries that oversensitive models refuse")
BENCHMARKS.register("vlsbench", "tis.sources.vlsbench:VLSBench",
                    "VLSBench, harm visible only in the image (no leakage into the text)")
BENCHMARKS.register("mis", "tis.sources.mis:MIS",
                    "MIS test, two images per question (easy, hard, real)")
BENCHMARKS.register("custom", "tis.sources.custom:CustomJSONL",
                    "your own set: one JSON object per line (id, prompt, images, category, group)")
BENCHMARKS.register("capability", "tis.sources.capability:CapabilitySet",
                    "general capability: JSONL items with reference answers (exact / multiple-choice / yes-no)")


def load_entry_points() -> list[str]:
    """Add loaders other packages declare in the `tis.sources` entry-point group; returns the
    names added. Targets are only recorded here: a plugin is imported when it is used. A plugin
    cannot replace a built-in name."""
    from importlib.metadata import entry_points

    BENCHMARKS._entry_points_loaded = True
    added = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BENCHMARKS or ":" not in ep.value:
            continue
        dist = getattr(ep.dist, "name", None)
        BENCHMARKS.register(ep.name, ep.value, f"from the {dist} package" if dist else "from an installed package")
        added.append(ep.name)
    return added


def all_benchmarks() -> BenchmarkRegistry:
    """The registry with the built-in loaders and those installed packages declare."""
    if not BENCHMARKS._entry_points_loaded:
        load_entry_points()
    return BENCHMARKS


def parse_options(pairs: list[str]) -> dict:
    """--set KEY=VALUE pairs: ints, floats, true/false and comma lists are typed, the rest kept as text."""
    from tis.core.errors import ConfigError

    def value(text: str):
        if "," in text:
            return [value(t) for t in text.split(",") if t != ""]
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("nan", "inf", "-inf", "infinity", "-infinity"):
            return text  # a name, not a number
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=VALUE, got '{pair}'")
        out[key.strip().replace("-", "_")] = value(raw.strip())
    return out
