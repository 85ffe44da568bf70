"""`tis benchmarks`: the loaders known (built in and installed), what each reads, and a check that
reads a whole downloaded set and opens every image."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from tis.cli import group_help
from tis.cli.listing import add_listing_flags, print_listing


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmarks", help="the benchmarks tis reads, and a check of a downloaded copy")
    bsub = p.add_subparsers(dest="benchmarks_command", metavar="SUBCOMMAND")
    ls = bsub.add_parser("list", help="name, group, size, licence and citation of every benchmark",
                         description="One row per benchmark, built in or installed. Piped: tab-separated rows "
                                     "without a header; --json: every field.")
    add_listing_flags(ls)
    ls.set_defaults(func=list_benchmarks)
    info = bsub.add_parser("info", help="everything known about one benchmark: layout, options, metric")
    info.add_argument("name")
    info.set_defaults(func=show_info)
    check = bsub.add_parser("check", help="read a whole set, open every image, and list every problem")
    check.add_argument("name")
    check.add_argument("--data", required=False, help="the benchmark's data folder or file, as published")
    check.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                       help="a benchmark option (e.g. variant=SD_TYPO); repeatable")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=run_check)
    p.set_defaults(func=group_help(p))


def _stdout():
    import sys

    from rich.console import Console

    # piped output is not cut to 80 columns: long citations stay readable in a file
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _size(cls: Any) -> str:
    size = getattr(cls, "size", None)
    return f"{size:,}" if isinstance(size, int) and size else "-"


def list_benchmarks(args: argparse.Namespace) -> int:
    from tis.sources import all_benchmarks

    registry = all_benchmarks()
    rows, records = [], []
    for entry in registry.entries():
        try:
            cls = registry.load(entry.name)
        except Exception as exc:  # a broken plugin must not hide the others
            rows.append((entry.name, "?", "-", "?", f"cannot load {entry.target}: {exc}"))
            records.append({"name": entry.name, "summary": entry.summary, "class": entry.target,
                            "error": f"cannot load {entry.target}: {exc}"})
            continue
        size = getattr(cls, "size", None)
        rows.append((entry.name, str(cls.group), _size(cls), cls.licence, cls.citation or "-"))
        records.append({"name": entry.name, "summary": entry.summary, "class": entry.target, "group": str(cls.group),
                        "size": size if isinstance(size, int) and size else None, "licence": cls.licence,
                        "citation": cls.citation or None, "needs_data": not getattr(cls, "bundled", False)})
    return print_listing(args, ("name", "group", "size", "licence", "citation"), rows, records)


def option_docs(options_cls: type) -> dict[str, str]:
    """The `#:` comments written above each option in its loader's source."""
    import inspect

    try:
        source = inspect.getsource(options_cls)
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+)\s*:", stripped)
        if match and pending:
            docs[match.group(1)] = " ".join(pending)
        pending = []
    return docs


def _type_name(annotation: Any) -> str:
    return re.sub(r"\btyping\.", "", str(annotation)).replace("<class '", "").replace("'>", "")


def benchmark_info(name: str) -> dict[str, Any]:
    import inspect

    from tis.sources import all_benchmarks

    registry = all_benchmarks()
    entry = registry.entry(name)
    cls = registry.load(name)
    docs = option_docs(cls.Options)
    options = {}
    for field_name, info in cls.Options.model_fields.items():
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        options[field_name] = {"type": _type_name(info.annotation), "default": default,
                               "help": info.description or docs.get(field_name, "")}
    return {"name": entry.name, "summary": entry.summary, "class": entry.target, "group": cls.group,
            "size": getattr(cls, "size", None), "size_note": getattr(cls, "size_note", ""),
            "licence": cls.licence, "citation": cls.citation, "layout": getattr(cls, "layout", "") or cls.__doc__ or "",
            "metric": getattr(cls, "metric", ""), "needs_data": not getattr(cls, "bundled", False),
            "options": options, "description": inspect.cleandoc(inspect.getmodule(cls).__doc__ or "")}


def show_info(args: argparse.Namespace) -> int:
    info = benchmark_info(args.name)
    lines = [f"{info['name']}: {info['summary']}"]
    rows = [("group", info["group"]), ("size", _size_text(info)), ("licence", info["licence"]),
            ("citation", info["citation"] or "-"), ("layout", info["layout"]), ("metric", info["metric"] or "-"),
            ("data", "--data PATH (the folder as published)" if info["needs_data"] else "ships with tis"),
            ("loader", info["class"])]
    lines += [f"  {key:9} {value}" for key, value in rows]
    if info["options"]:
        lines.append("  options (--set KEY=VALUE):")
        for key, opt in info["options"].items():
            default = json.dumps(opt["default"]) if opt["default"] is not None else "none"
            lines.append(f"    {key} ({opt['type']}, default {default})" + (f": {opt['help']}" if opt["help"] else ""))
    else:
        lines.append("  options   none")
    if info["description"]:
        lines += ["", info["description"]]
    print("\n".join(lines))
    return 0


def _size_text(info: dict) -> str:
    size = f"{info['size']:,}" if isinstance(info["size"], int) and info["size"] else "-"
    return f"{size} ({info['size_note']})" if info["size_note"] else size


def run_check(args: argparse.Namespace) -> int:
    from rich.table import Table

    from tis.sources import all_benchmarks, parse_options
    from tis.sources.check import check_benchmark

    cls = all_benchmarks().load(args.name)
    bench = cls(args.data, parse_options(args.options))
    report = check_benchmark(bench)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False, default=str))
        return 1 if report.problems else 0
    out = _stdout()
    table = Table("category", "samples")
    for category, count in sorted(report.categories.items()):
        table.add_row(category, f"{count:,}")
    table.add_row("[bold]total[/bold]", f"[bold]{report.total:,}[/bold]")
    out.print(table)
    groups = ", ".join(f"{g} {n:,}" for g, n in sorted(report.groups.items()))
    out.print(f"{bench.name}: {report.total:,} usable samples ({groups or 'none'}), {report.images:,} images opened, "
              f"{len(report.problems):,} problem(s)", markup=False)
    for problem in report.problems:
        out.print(f"  {problem.file}: {problem.record}: {problem.message}", markup=False, soft_wrap=True)
    return 1 if report.problems else 0
