"""`tis eval`: run a model on a benchmark, split, judge, store, summarise."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a model on a benchmark (resumable)",
        description="Generate, split thought from answer, judge both, store and summarise. Re-running the same "
                    "command resumes an interrupted run and makes no model calls for finished samples. Every "
                    "option is also a key of a --config file (docs/configuration.md).",
    )
    from tis.core.config import add_config_flags
    from tis.pipeline.config import EvalConfig

    for title in ("model", "benchmark", "generation", "judging", "running"):
        p.add_argument_group(title)  # in this order in --help
    add_config_flags(p, EvalConfig)
    p.add_argument("--config", metavar="FILE.yaml",
                   help="a YAML file of settings; keys are the option names with underscores (base_url: ...), "
                        "listed in docs/configuration.md; flags given override it")
    p.set_defaults(func=run)

    jp = sub.add_parser("judge", help="judge a finished run again with more or other judges (no model calls)",
                        description="Reuses the run's stored generations and only calls the judges; verdicts "
                                    "are stored under each judge's id beside the existing ones.")
    jp.add_argument("run_dir", metavar="RUN")
    jp.add_argument("--judge", dest="judges", action="append", required=True, metavar="SPEC")
    jp.add_argument("--no-progress", dest="progress", action="store_false", default=True)
    jp.set_defaults(func=run_judge)


def run(args: argparse.Namespace) -> int:
    from tis.core.config import config_from_args
    from tis.pipeline.config import EvalConfig
    from tis.pipeline.evaluate import evaluate

    cfg = config_from_args(EvalConfig, args, config_file=args.config)
    if cfg.profile_files:  # a missing or broken file is an error even without --profile; loads its formats
        from tis.reasoning.profiles import check_profile_files

        check_profile_files(cfg.profile_files)
    outcome = evaluate(cfg)
    return report(outcome)


def run_judge(args: argparse.Namespace) -> int:
    from tis.pipeline.evaluate import rejudge

    return report(rejudge(args.run_dir, args.judges, progress=args.progress))


def report(outcome) -> int:
    from tis.core.console import console

    print(outcome.markdown)
    s = outcome.stats
    console.print(
        f"[bold]done[/]: {s['generations_total']} generations ({s['generations_reused']} reused, "
        f"{s['generated']} new, {s['failed']} failed, {s['truncated']} truncated), {s['model_calls']} model calls, "
        f"{s['retries']} retries; verdicts {s['verdicts_new']} new / {s['verdicts_reused']} reused, "
        f"{s['unparsed']} unparsed, {s['judge_failed']} failed; {s['wall_s']:.1f}s"
    )
    if outcome.problems:
        console.print(f"skipped {len(outcome.problems)} unreadable item(s); listed in summary.json")
    if outcome.report:
        print(f"report: {outcome.report}")
    print(f"run directory: {outcome.run_dir}")
    if s["failed"]:
        console.print(
            f"[red]{s['failed']} generation(s) failed[/] (first: {s['first_error']}); they are stored as failed and "
            "left out of the rates: re-run the same command to retry them"
        )
        return 1
    return 0
