"""Benchmark loaders, registered by name and imported only when used."""

from __future__ import annotations

from tis.registry import Registry

BENCHMARKS = Registry("benchmark")
BENCHMARKS.register("safebench-tiny", "tis.benchmarks.figstep:SafeBenchTiny",
                    "FigStep SafeBench-Tiny, 50 typographic jailbreaks (ships with tis)")
BENCHMARKS.register("safebench", "tis.benchmarks.figstep:SafeBench",
                    "FigStep SafeBench, 500 typographic jailbreaks (--data PATH)")


def parse_options(pairs: list[str]) -> dict:
    """--set KEY=VALUE pairs: ints, floats, true/false and comma lists are typed, the rest kept as text."""
    from tis.errors import ConfigError

    def value(text: str):
        if "," in text:
            return [value(t) for t in text.split(",") if t != ""]
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
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
