"""Benchmark loaders, registered by name and imported only when used."""

from __future__ import annotations

from tis.registry import Registry

BENCHMARKS = Registry("benchmark")
BENCHMARKS.register("safebench-tiny", "tis.benchmarks.figstep:SafeBenchTiny",
                    "FigStep SafeBench-Tiny, 50 typographic jailbreaks (ships with tis)")
BENCHMARKS.register("safebench", "tis.benchmarks.figstep:SafeBench",
                    "FigStep SafeBench, 500 typographic jailbreaks (--data PATH)")
