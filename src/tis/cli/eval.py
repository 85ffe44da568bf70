"""`tis eval`: run a model on a benchmark, split, judge, store, summarise."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a model on a benchmark (resumable)",
        description="Generate, split thought from answer, judge both, store and summarise. Re-running the same "
                    "command resumes an interrupted run and makes no model calls for finished samples.",
    )
    m = p.add_argument_group("model")
    m.add_argument("--model", default=None, help="demo (offline pipeline check; cannot see images) | "
                   "openai:NAME (with --base-url) | hf:PATH_OR_HUB_ID | vllm:PATH_OR_HUB_ID (GPU)  [default: demo]")
    m.add_argument("--base-url", action="append", default=None, metavar="URL",
                   help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; repeat for replicas")
    m.add_argument("--api-key-env", metavar="VAR", help="name of the environment variable holding the API key")
    m.add_argument("--device", help="hf/demo: auto | cpu | cuda[:N]")
    m.add_argument("--dtype", help="hf/demo: auto | float32 | bfloat16 | float16")
    m.add_argument("--batch-size", type=int, help="hf/demo: samples per generate call")
    m.add_argument("--timeout", dest="timeout_s", type=float, help="per-request timeout in seconds [120]")
    m.add_argument("--profile", help="a model profile (tis models list): thought format, sampling, base model")
    m.add_argument("--profiles", dest="profile_files", action="append", default=None, metavar="FILE",
                   help="a TOML file of extra or changed model profiles; repeatable")
    m.add_argument("--thought-format", help="how to split thought from answer: auto | r1 | r1_prefilled | kimi | "
                   "llava_cot | mulberry | plain | none  [the profile's, else auto]")
    b = p.add_argument_group("benchmark")
    b.add_argument("--benchmark", "-b", help="benchmark name (tis benchmarks list) [safebench-tiny]")
    b.add_argument("--data", help="the benchmark's data folder or file, as published")
    b.add_argument("--set", dest="options", action="append", default=None, metavar="KEY=VALUE",
                   help="a benchmark option (e.g. variant=baseline); repeatable")
    b.add_argument("--limit", type=int, help="only the first N samples")
    b.add_argument("--sample", type=int, help="a seeded random subset of N samples (the same every time)")
    b.add_argument("--sample-seed", type=int, help="seed for --sample [0]")
    b.add_argument("--skip-bad", action="store_true", default=None,
                   help="skip unreadable items (counted and listed) instead of stopping")
    g = p.add_argument_group("generation")
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--max-tokens", type=int)
    g.add_argument("--max-thought-tokens", type=int, metavar="N",
                   help="thought budget: hf closes the thought after N tokens and marks the sample truncated; "
                        "over HTTP only --max-tokens bounds it")
    g.add_argument("--seed", type=int)
    g.add_argument("-n", "--num-samples", dest="n", type=int, help="completions per prompt [1]")
    j = p.add_argument_group("judging")
    j.add_argument("--judge", dest="judges", action="append", default=None, metavar="SPEC",
                   help="a judge (tis judges list); repeat for several [offline and refusal]")
    r = p.add_argument_group("running")
    r.add_argument("--concurrency", type=int, help="requests in flight at once [16]")
    r.add_argument("--max-retries", type=int, help="retries on 429 / 5xx / timeouts [5]")
    r.add_argument("--out", help="parent folder of run directories [runs]")
    r.add_argument("--name", help="run directory name [derived from the settings, so a re-run resumes]")
    r.add_argument("--config", help="a YAML file of options (flags override it)")
    r.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    r.add_argument("--no-report", dest="report", action="store_false", default=None,
                   help="do not write report.html into the run directory")
    p.set_defaults(func=run)

    jp = sub.add_parser("judge", help="judge a finished run again with more or other judges (no model calls)",
                        description="Reuses the run's stored generations and only calls the judges; verdicts "
                                    "are stored under each judge's id beside the existing ones.")
    jp.add_argument("run_dir", metavar="RUN")
    jp.add_argument("--judge", dest="judges", action="append", required=True, metavar="SPEC")
    jp.add_argument("--no-progress", dest="progress", action="store_false", default=True)
    jp.set_defaults(func=run_judge)


def run(args: argparse.Namespace) -> int:
    from tis.pipeline.evaluate import evaluate
    from tis.pipeline.config import load_config_file, make_config

    settings = load_config_file(args.config) if args.config else {}
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("func", "command", "config")}
    if "options" in given:
        from tis.sources import parse_options

        given["options"] = {**settings.get("options", {}), **parse_options(given["options"])}
    cfg = make_config(**{**settings, **given})
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
