"""`tis import inspect LOG`, `tis import jsonl FILE`: completions made elsewhere become a tis run."""

from __future__ import annotations

import argparse
from pathlib import Path

from tis.cli import group_help

GROUPS = ("jailbreak", "awareness", "over-refusal", "custom")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="turn an inspect_ai log or a JSONL of outputs into a tis run (no model calls)",
                       description="Each completion is split into thought and answer (a thought kept apart, as "
                                   "inspect_ai's reasoning parts, wins; else the thought format splits the text) and "
                                   "stored as a run that `tis judge`, `tis report` and `tis compare` read.")
    isub = p.add_subparsers(dest="import_command", metavar="SOURCE")
    p.set_defaults(func=group_help(p))

    ip = isub.add_parser("inspect", help="an inspect_ai log (.eval or .json)",
                         description="One completion per sample and epoch of the log. The input's system message, "
                                     "text and images make the sample (data-URI images are written to "
                                     "RUN/images); the sample's metadata is kept, its `category` key (see "
                                     "--category-key) is the category.")
    ip.add_argument("log", metavar="LOG", type=Path)
    ip.add_argument("--category-key", default="category", metavar="KEY",
                    help="the sample metadata key holding its category [category]")
    _common(ip, model_default=None)
    ip.set_defaults(func=import_inspect)

    jp = isub.add_parser("jsonl", help="a JSONL of {id, prompt, images, output} from any harness",
                         description="One completion per line: id, prompt, images (paths relative to the file), "
                                     "output; optional reasoning, index, category, system, meta, finish_reason, "
                                     "usage, error.")
    jp.add_argument("file", metavar="FILE", type=Path)
    _common(jp, model_default="imported")
    jp.set_defaults(func=import_jsonl)


def _common(p: argparse.ArgumentParser, *, model_default: str | None) -> None:
    p.add_argument("--model", default=model_default, metavar="NAME",
                   help="the model's name in the run " + ("[the log's model]" if model_default is None
                                                          else f"[{model_default}]"))
    p.add_argument("--benchmark", metavar="NAME", help="benchmark name [the log's task / the file's name]")
    p.add_argument("--group", choices=GROUPS, default="custom",
                   help="the benchmark's group, which picks its metric (jailbreak: attack success; over-refusal: "
                        "refusal rate) [custom]")
    p.add_argument("--thought-format", default="auto", metavar="NAME",
                   help="how to split a thought written in the text (r1, kimi, llava_cot, plain, none, ...) [auto]")
    p.add_argument("--out", default="runs", metavar="DIR", help="parent folder of the run directory [runs]")
    p.add_argument("--name", metavar="NAME", help="run directory name [derived from the source]")
    p.add_argument("--skip-bad", action="store_true", help="skip unusable samples (counted and listed) instead of "
                                                           "stopping at the first")
    p.add_argument("--judge", dest="judges", action="append", metavar="SPEC",
                   help="judge the imported run at once (as `tis judge RUN --judge SPEC`); repeatable")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=True)


def _run_dir(args: argparse.Namespace, benchmark: str, model: str, source: dict) -> Path:
    from tis.core.errors import ConfigError
    from tis.interop.runs import default_run_name

    parent = Path(args.out)
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"--out {parent} is a file, not a folder")
    if args.name is not None and (not args.name or "/" in args.name or args.name in (".", "..")):
        raise ConfigError(f"--name '{args.name}' must be a plain folder name")
    return parent / (args.name or default_run_name(benchmark, model, source))


def _finish(args: argparse.Namespace, outcome) -> int:
    print(f"imported {outcome.completions} completion(s) of {outcome.samples} sample(s): "
          f"{outcome.with_thought} with a thought ({', '.join(f'{k} {v}' for k, v in sorted(outcome.split_sources.items()))})"
          f", {outcome.failed} failed")
    if outcome.problems:
        print(f"skipped {len(outcome.problems)} unusable item(s); listed in summary.json")
    if args.judges:
        from tis.cli.eval import report
        from tis.pipeline.evaluate import rejudge

        return report(rejudge(outcome.run_dir, args.judges, progress=args.progress))
    print(f"run directory: {outcome.run_dir}")
    print(f"next: tis judge {outcome.run_dir} --judge refusal")
    return 0


def import_inspect(args: argparse.Namespace) -> int:
    from tis.interop import inspect_log as il
    from tis.interop.runs import safe_name, write_imported_run

    log = il.read_log(args.log)
    if not log.samples:
        from tis.core.errors import DataError

        raise DataError(f"{args.log}: the log holds no samples (was it written with log_samples off, or read "
                        "header-only?)")
    source = il.log_source(log, args.log)
    benchmark = args.benchmark or safe_name(log.eval.task.split("/")[-1])
    model = args.model or log.eval.model
    run_dir = _run_dir(args, benchmark, model, source)
    problems: list = []
    completions = il.log_completions(log, args.log, run_dir, benchmark=benchmark, group=args.group,
                                     category_key=args.category_key, skip_bad=args.skip_bad, problems=problems)
    outcome = write_imported_run(run_dir, completions, model=model, benchmark=benchmark, group=args.group,
                                 thought_format=args.thought_format, source=source, problems=problems,
                                 generation=il.log_generation(log))
    return _finish(args, outcome)


def import_jsonl(args: argparse.Namespace) -> int:
    from tis.core.types import file_sha256
    from tis.interop.jsonl import read_jsonl
    from tis.interop.runs import safe_name, write_imported_run

    from tis.core.errors import DataError

    if not args.file.is_file():
        raise DataError(f"{args.file}: no such file")
    benchmark = args.benchmark or safe_name(args.file.stem)
    source = {"kind": "jsonl", "file": str(args.file), "id": file_sha256(args.file)}
    run_dir = _run_dir(args, benchmark, args.model, source)
    problems: list = []
    completions = read_jsonl(args.file, benchmark=benchmark, group=args.group, skip_bad=args.skip_bad,
                             problems=problems)
    outcome = write_imported_run(run_dir, completions, model=args.model, benchmark=benchmark, group=args.group,
                                 thought_format=args.thought_format, source=source, problems=problems)
    return _finish(args, outcome)
