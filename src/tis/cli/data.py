"""`tis data`: build safety-thought fine-tuning sets, check any sharegpt / messages set, show a record."""

from __future__ import annotations

import argparse
import json
import sys

from tis.cli import group_help
from tis.cli.listing import add_listing_flags, print_registry


def add_commands(sub: argparse._SubParsersAction) -> None:
    from tis.core.config import add_config_flags
    from tis.data.config import BuildConfig

    p = sub.add_parser("data", help="build, check and inspect safety fine-tuning sets with thoughts")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    b = dsub.add_parser("build", help="run the stages of a build config (resumable)",
                        description="Sources -> caption -> questions -> reason -> filter -> balance -> export, as "
                                    "the YAML config says (docs/data.md). Re-running the same command resumes: no "
                                    "finished teacher call or judgement is made again. Flags override the file.")
    b.add_argument("config", metavar="CONFIG.yaml", help="the build config")
    add_config_flags(b, BuildConfig)
    b.set_defaults(func=build)

    c = dsub.add_parser("check", help="check a sharegpt / messages set before training on it",
                        description="Schema, <image> count against images, images exist and open, exactly one "
                                    "closed thought at the start of each answer, empty thoughts, leakage phrases, "
                                    "thought/answer decision mismatch (by --judge, else a guess), duplicates. "
                                    "Exit 1 when any record would train wrongly.")
    c.add_argument("file", help="sharegpt JSON, messages JSON / JSONL, or Parquet")
    c.add_argument("--judge", default=None, metavar="SPEC",
                   help="a judge of refusal (refused / complied) that reads each thought and answer, e.g. "
                        "llm:openai:MODEL@URL?rubric=refusal; a disagreement is an error")
    c.add_argument("--no-images", action="store_true", help="do not look for the image files (a set shipped without them)")
    c.add_argument("--leakage-phrases", default=None, metavar="FILE", help="your own leakage phrase list")
    c.add_argument("--limit", type=int, default=50, help="bad records listed (default 50; 0: all)")
    c.add_argument("--json", action="store_true", help="print the whole report as JSON")
    c.set_defaults(func=check)

    s = dsub.add_parser("show", help="a built record with its lineage and its teacher calls")
    s.add_argument("build", metavar="BUILD_DIR", help="the build folder (config `out`)")
    s.add_argument("record", help="the record's id, or its index in the export")
    s.set_defaults(func=show)

    ls = dsub.add_parser("sources", help="the training-set sources a build can read")
    add_listing_flags(ls)
    ls.set_defaults(func=list_sources)

    sp = dsub.add_parser("spec", help="print the shipped safety specification (YAML) to start your own from")
    sp.set_defaults(func=print_spec)
    p.set_defaults(func=group_help(p))


def build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tis.core.config import config_from_args
    from tis.core.console import console
    from tis.data.build import run_build
    from tis.data.config import BuildConfig

    from tis.core.config import load_config_file

    from_file = load_config_file(BuildConfig, args.config)
    cfg = config_from_args(BuildConfig, args, config_file=args.config).resolved(Path(args.config).resolve().parent,
                                                                                 from_file)
    result = run_build(cfg)
    kept = len(result.kept)
    console.print(f"built {kept} record(s) of {len(result.records)} item(s) in {result.wall_s:.1f}s; "
                  f"export: {result.out / 'export'}")
    for reason, n in sorted(result.drops.items(), key=lambda kv: -kv[1]):
        console.print(f"  dropped {n:>5}  {reason}")
    failed = sum(u.get("failed", 0) for u in result.usage.values())
    if failed:
        console.print(f"{failed} teacher call(s) failed after retries: re-run the same command to try them again")
        return 1
    print(result.out / "export")
    return 0


def check(args: argparse.Namespace) -> int:
    from tis.data.check import check_file

    judge = None
    if args.judge:
        from tis.judges.spec import parse_judge_spec

        judge = parse_judge_spec(args.judge)
    report = check_file(args.file, judge=judge, leakage_phrases=args.leakage_phrases, open_images=not args.no_images)
    if args.no_images:
        report.findings = [f for f in report.findings if not (f.kind == "image" and "missing" in f.detail)]
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(f"{report.file}: {report.records} record(s), {report.bad_records} would train wrongly")
        for kind, n in report.counts().items():
            print(f"  {n:>6}  {kind}")
        shown = report.findings if not args.limit else report.findings[: args.limit]
        for f in shown:
            print(f"  {f.severity:<7} {f.line()}")
        if len(shown) < len(report.findings):
            print(f"  ... {len(report.findings) - len(shown)} more (--limit 0 lists all, --json prints all)")
    return 1 if report.errors else 0


def show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tis.core.errors import ConfigError
    from tis.data.build import EXPORT, read_records

    build_dir = Path(args.build)
    records = read_records(build_dir)
    match = [r for r in records if r.id == args.record]
    if not match and args.record.isdigit():
        lineage = build_dir / EXPORT / "lineage.jsonl"
        if lineage.is_file():
            with open(lineage, encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    if row["index"] == int(args.record):
                        match = [r for r in records if r.id == row["id"]]
                        break
    if not match:
        raise ConfigError(f"no record '{args.record}' in {build_dir} (give an id from records.jsonl or an export index)")
    rec = match[0]
    out = rec.model_dump()
    keys = [k for k in (rec.lineage.get("caption_key"), rec.lineage.get("questions_key"),
                        rec.lineage.get("reason_key")) if k]
    if keys and (build_dir / "tis.sqlite").is_file():
        from tis.pipeline.store import RunStore

        with RunStore(build_dir) as store:
            gens = store.generations(keys)
            out["teacher_calls"] = {k: {"stage": store.stage_of(k), "parents": store.lineage(k),
                                        "raw": gens[k].generation.raw if k in gens else None,
                                        "usage": gens[k].generation.usage.model_dump()
                                        if k in gens and gens[k].generation.usage else None}
                                    for k in keys}
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False, default=str)
    print()
    return 0


def list_sources(args: argparse.Namespace) -> int:
    from tis.sources.train_base import TRAIN_SOURCES

    return print_registry(args, TRAIN_SOURCES, "source")


def print_spec(args: argparse.Namespace) -> int:
    from tis.data.spec import default_spec_path

    sys.stdout.write(default_spec_path().read_text(encoding="utf-8"))
    return 0
