"""`tis report`, `tis compare`, `tis export`: read finished runs; no model or judge calls."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write one self-contained HTML report of one or more runs",
        description="Summary table, plots and a sample browser in one HTML file that opens from disk (no "
                    "server, no internet); its numbers go to <name>.summary.json beside it. With several runs the "
                    "first model is the baseline the others are compared with.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `tis eval`")
    p.add_argument("--out", type=Path, help="the HTML file to write [first RUN/report.html]")
    p.add_argument("--max-thumbnails", type=int, default=5000, metavar="N",
                   help="embed at most N image thumbnails; the rest are shown by path [5000]")
    p.set_defaults(func=run_report)

    c = sub.add_parser(
        "compare", help="compare runs on the same samples (the first is the baseline)",
        description="Per benchmark and category: each metric's difference with a paired bootstrap 95% CI, an "
                    "exact McNemar test and the completions that flipped. Runs of one model on several "
                    "benchmarks form one model. --table prints the models x benchmarks table instead.")
    c.add_argument("runs", nargs="+", metavar="RUN")
    c.add_argument("--format", choices=("markdown", "latex", "csv"), default="markdown")
    c.add_argument("--table", action="store_true", help="the models x benchmarks table (a paper's main table)")
    c.add_argument("--out", type=Path, help="write here instead of standard output")
    c.set_defaults(func=run_compare)

    e = sub.add_parser("export", help="export a run (Parquet, JSONL, JailbreakBench, inspect_ai log, HF datasets)",
                       description="parquet / jsonl: one flat record per completion with every verdict; "
                                   "jailbreakbench: the JailbreakBench artifact JSON with its published keys (goal, "
                                   "prompt, response, jailbroken per prompt; method, model, attack success rate per "
                                   "run), tis's extras in extra keys; inspect: an inspect_ai .eval log (thought as "
                                   "reasoning, a score per judge and target) for `inspect view`; hf: a Hugging Face "
                                   "datasets folder with image features and a dataset card.")
    e.add_argument("run", metavar="RUN")
    e.add_argument("--format", choices=("parquet", "jsonl", "jailbreakbench", "inspect", "hf"), required=True)
    e.add_argument("--judge", help="jailbreakbench: the judge deciding `jailbroken` [the run's primary judge]")
    e.add_argument("--include-unjudged", action="store_true",
                   help="jailbreakbench: write prompts without a verdict (failed generation, unparsed or failed "
                        "verdict) as not jailbroken, marked in `verdict_status`, instead of refusing")
    e.add_argument("--no-embed-images", dest="embed_images", action="store_false",
                   help="inspect: refer to images by path instead of embedding them in the log")
    e.add_argument("--out", type=Path, help="output file or folder [RUN/results.parquet, RUN/results.flat.jsonl, "
                                            "RUN/jailbreakbench.json, RUN/<created>_<benchmark>_<id>.eval, "
                                            "RUN/hf_dataset]")
    e.set_defaults(func=run_export)


def _check_runs(n: int, least: int, what: str) -> None:
    from tis.core.errors import ConfigError

    if n < least:
        raise ConfigError(f"{what} needs at least {least} run directories, got {n}")


def run_report(args: argparse.Namespace) -> int:
    from tis.core.errors import ConfigError
    from tis.render import write_report

    if args.max_thumbnails < 0:
        raise ConfigError("--max-thumbnails must be 0 or more")
    runs = [Path(r) for r in args.runs]
    out = args.out or runs[0] / "report.html"
    check_output_path(out, "--out")
    try:
        path = write_report(runs, args.out, max_thumbnails=args.max_thumbnails)
    except OSError as exc:
        where = "" if args.out else " (the run directory is not writable: pass --out FILE elsewhere)"
        raise ConfigError(f"cannot write the report {out}: {exc.strerror or exc}{where}") from None
    print(f"report: {path}")
    return 0


def check_output_path(out: Path, flag: str) -> None:
    """An output path whose folder is a file, or which is itself a folder, named before any work."""
    from tis.core.errors import ConfigError

    if out.is_dir():
        raise ConfigError(f"cannot write {out}: it is a folder; give a file name to {flag}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"cannot write {out}: {parent} is a file, not a folder")
            break


def run_compare(args: argparse.Namespace) -> int:
    from tis.results import compare as cmp
    from tis.results.runs import load_runs

    runs = load_runs(args.runs)
    if args.table:
        table = cmp.main_table(runs)
        text = {"markdown": cmp.table_markdown, "latex": cmp.table_latex, "csv": cmp.table_csv}[args.format](table)
    else:
        _check_runs(len(cmp.models_of(runs)), 2, "tis compare (without --table)")
        result = cmp.compare(runs)
        text = {"markdown": cmp.comparison_markdown, "latex": cmp.comparison_latex,
                "csv": cmp.comparison_csv}[args.format](result)
    if args.out:
        from tis.core.errors import ConfigError

        check_output_path(args.out, "--out")
        if not args.out.parent.is_dir():
            raise ConfigError(f"cannot write {args.out}: folder {args.out.parent} does not exist")
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        print(f"written: {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from tis.results.runs import load_run

    run = load_run(args.run)
    fmt = args.format
    default = {"parquet": "results.parquet", "jsonl": "results.flat.jsonl", "jailbreakbench": "jailbreakbench.json",
               "inspect": "", "hf": "hf_dataset"}[fmt]
    if fmt == "inspect" and args.out is None:
        from tis.interop.inspect_log import default_log_name

        default = default_log_name(run)
    out = args.out or run.dir / default
    if fmt == "hf":
        from tis.interop.hf import write_hf_dataset

        path = write_hf_dataset(run, out)
    elif fmt == "inspect":
        from tis.interop.inspect_log import write_inspect_log
        from tis.render.export import check_writable

        check_writable(out)
        try:
            path = write_inspect_log(run, out, embed_images=args.embed_images)
        except OSError as exc:
            from tis.core.errors import ConfigError

            raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    else:
        from tis.render import export

        if fmt == "parquet":
            path = export.write_parquet(run, out)
        elif fmt == "jsonl":
            path = export.write_jsonl(run, out)
        else:
            path = export.write_jailbreakbench(run, out, args.judge, include_unjudged=args.include_unjudged)
    print(f"written: {path}")
    return 0
