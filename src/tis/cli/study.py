"""`tis study`: the whole study in one command.

    tis study run FILE_OR_NAME [--dry-run] [--out DIR] [--only PREFIX]   (demo and think-in-safety ship)
    tis study plan FILE_OR_NAME            (the same as run --dry-run)
    tis study tables FILE_OR_NAME          (tables and report from the runs done so far)
    tis study list                         (the shipped study files)
"""

from __future__ import annotations

import argparse
import sys


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="run a whole study from one file: pairs, defences, data, fine-tuning, tables",
                       description="A study file names model pairs, benchmark groups, defences, data builds and "
                                   "training runs; every cell is a run in the study folder and a re-run does only "
                                   "what is missing (docs/study.md).")
    ssub = p.add_subparsers(dest="study_command", metavar="SUBCOMMAND")
    from tis.cli import group_help

    p.set_defaults(func=group_help(p))

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("study", metavar="FILE_OR_NAME", help="a study file, or a shipped study's name (tis study list)")
        q.add_argument("--out", metavar="DIR", help="the study folder (default: the file's out, else runs/study-NAME)")

    run = ssub.add_parser("run", help="run every cell not done yet, then write the tables and the report")
    common(run)
    run.add_argument("--dry-run", action="store_true", help="print the plan (cells, model calls, training runs) only")
    run.add_argument("--only", action="append", metavar="TEXT",
                     help="run only cells whose id contains TEXT (e.g. eval:, train:, a model name); repeatable")
    run.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                     help="evaluations of served models (openai:...) run up to N at once, beside the local cells "
                          "[default: 1]")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    run.set_defaults(func=run_cmd)
    plan = ssub.add_parser("plan", help="print the plan (the same as run --dry-run)")
    common(plan)
    plan.set_defaults(func=plan_cmd)
    tables = ssub.add_parser("tables", help="write the tables and the report from the runs done so far")
    common(tables)
    tables.set_defaults(func=tables_cmd)
    lst = ssub.add_parser("list", help="the shipped study files")
    lst.set_defaults(func=list_cmd)


def plan_cmd(args: argparse.Namespace) -> int:
    from tis.study.runner import load_plan, plan_text

    plan = load_plan(args.study, out=args.out)
    sys.stdout.write(plan_text(plan))
    return 0


def run_cmd(args: argparse.Namespace) -> int:
    if args.dry_run:
        return plan_cmd(args)
    from tis.study.runner import load_plan, run_study

    if args.jobs < 1:
        from tis.core.errors import ConfigError

        raise ConfigError("--jobs must be 1 or more")
    plan = load_plan(args.study, out=args.out)
    outcome = run_study(plan, progress=args.progress, only=args.only, jobs=args.jobs)
    print(f"study {plan.study.name}: {len(outcome.ran)} cell(s) run, {len(outcome.failed)} failed or blocked, "
          f"{outcome.generated} completions in {outcome.model_calls} model calls, {outcome.wall_s:.1f} s")
    for cid in outcome.failed:
        print(f"  {cid}: {outcome.results[cid].status} — {outcome.results[cid].error}")
    if outcome.tables:
        for name, title in (("mitigation", "mitigation (mean per group)"),
                            ("thought-refusal", "thoughts opened and closed, and refusals (95% intervals)")):
            table = outcome.tables.get(name)
            if table is not None and table.is_file():
                print(f"\n{title}:\n{table.read_text(encoding='utf-8')}")
        print(f"tables: {plan.out / 'tables'}  (markdown, LaTeX, CSV); summary: {plan.out / 'study.md'}")
    if outcome.report:
        print(f"report: {outcome.report}")
    return 1 if outcome.failed else 0


def tables_cmd(args: argparse.Namespace) -> int:
    from tis.study.report import write_study_outputs
    from tis.study.runner import load_plan

    plan = load_plan(args.study, out=args.out)
    _, report = write_study_outputs(plan)
    print((plan.out / "study.md").read_text(encoding="utf-8"))
    print(f"report: {report}")
    return 0


def list_cmd(args: argparse.Namespace) -> int:
    from tis.study.spec import read_study, shipped_studies

    for name, path in shipped_studies().items():
        try:
            desc = " ".join(read_study(path).description.split())
            desc = desc.split(": ")[0].split(". ")[0][:100]
        except Exception as exc:  # a shipped file that does not read is shown, not hidden
            desc = f"(does not read: {exc})"
        print(f"{name}\t{desc}\t{path}")
    return 0
