"""Benchmark loaders, registered by name and imported only when used.

Other packages add loaders through the entry-point group `tis.sources`
(name = "package.module:Class"); they are discovered on first need, never imported until used.
"""

from __future__ import annotations

from tis.core.registry import PluginRegistry

ENTRY_POINT_GROUP = "tis.benchmarks"


BENCHMARKS = PluginRegistry("benchmark", ENTRY_POINT_GROUP)
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
    """Add loaders other packages declare in the `tis.benchmarks` entry-point group; returns the
    names added. Targets are only recorded here: a plugin is imported when it is used. A plugin
    cannot replace a built-in name."""
    return BENCHMARKS.load_entry_points()


def all_benchmarks() -> PluginRegistry:
    """The registry with the built-in loaders and those installed packages declare."""
    BENCHMARKS.names()  # reads the entry points once
    return BENCHMARKS


def parse_options(pairs: list[str]) -> dict:
    """--set KEY=VALUE pairs: ints, floats, true/false and comma lists are typed, the rest kept as text."""
    from tis.core.config import parse_pairs

    return parse_pairs("--set", pairs)
