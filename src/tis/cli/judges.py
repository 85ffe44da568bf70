"""`tis judges`: list the judges, train the offline judge, measure a judge against human labels."""

from __future__ import annotations

import argparse
import sys


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judges", help="list, train and calibrate judges",
                       description="List the registered judges, train the offline judge from human labels, "
                                   "or measure a judge's agreement with human labels.")
    jsub = p.add_subparsers(dest="judges_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: _help(p))

    lp = jsub.add_parser("list", help="the registered judges with summaries",
                         description="One row per judge (--judge NAME). Piped: tab-separated rows without a "
                                     "header; --json: every field.")
    from tis.cli.listing import add_listing_flags

    add_listing_flags(lp)
    lp.set_defaults(func=list_judges)

    tp = jsub.add_parser("train", help="train the offline judge from a labelled CSV",
                         description="Train the offline judge (MiniLM embeddings + logistic regression) on the "
                                     "training rows of a fixed hash split of a labelled CSV (columns question, "
                                     "answer, label; 1 = harmful), and report agreement on the held-out rows.")
    tp.add_argument("--data", required=True, metavar="CSV", help="labelled CSV, e.g. jailjudge_mini.csv")
    tp.add_argument("--out", metavar="PATH", help="weights file to write [the shipped offline_judge.npz]")
    tp.set_defaults(func=train)

    cp = jsub.add_parser("calibrate", help="a judge's agreement with human labels",
                         description="Run a judge on each labelled response (target: answer) and print accuracy "
                                     "(with a 95% Wilson interval), precision, recall, F1, Cohen's kappa and the "
                                     "confusion matrix. Label 1 = harmful; a verdict read as unsafe (for the "
                                     "refusal judge: complied) predicts harmful. Unparsed and failed verdicts "
                                     "are counted and shown, never folded into the figures.")
    cp.add_argument("--judge", required=True, metavar="NAME", help="a judge (tis judges list), e.g. refusal, offline")
    cp.add_argument("--labels", required=True, metavar="FILE", help="labels file: .csv, .json or .jsonl")
    cp.add_argument("--prompt-col", default="question", metavar="COL", help="request column [question]")
    cp.add_argument("--response-col", default="answer", metavar="COL", help="response column [answer]")
    cp.add_argument("--label-col", default="label", metavar="COL", help="label column, 1 = harmful [label]")
    cp.add_argument("--limit", type=int, metavar="N", help="only the first N rows")
    cp.set_defaults(func=calibrate)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def list_judges(args: argparse.Namespace) -> int:
    from tis.judges import JUDGES

    from tis.cli.listing import print_listing

    entries = JUDGES.entries()
    return print_listing(args, ("judge", "summary"), [(e.name, e.summary) for e in entries],
                         [{"name": e.name, "summary": e.summary, "target": e.target} for e in entries])


def train(args: argparse.Namespace) -> int:
    from tis.judges.agreement import format_kappa
    from tis.judges.offline import train_offline_judge

    report = train_offline_judge(args.data, args.out, progress=lambda msg: print(msg, file=sys.stderr))
    a = report.held_out
    tr, ho = report.train_counts, report.held_out_counts
    print(f"wrote {report.out_path}")
    print(f"rows: {report.rows}; training {tr['harmful'] + tr['not_harmful']} (harmful {tr['harmful']}, "
          f"not harmful {tr['not_harmful']}); held out {ho['harmful'] + ho['not_harmful']} "
          f"(harmful {ho['harmful']}, not harmful {ho['not_harmful']})")
    print(f"chosen by validation: features {'+'.join(report.features)}, lam {report.lam}, "
          f"threshold {report.threshold:.2f}")
    print(f"held out: accuracy {a.accuracy:.3f} (95% Wilson {a.accuracy_low:.3f}-{a.accuracy_high:.3f}), "
          f"F1 {a.f1:.3f}, kappa {format_kappa(a.kappa)}, precision {a.precision:.3f}, recall {a.recall:.3f}")
    return 0


def calibrate(args: argparse.Namespace) -> int:
    from tis.core.errors import ConfigError
    from tis.judges.agreement import format_agreement
    from tis.judges.calibrate import build_judge, calibrate as run_calibration
    from tis.judges.labelled import read_labelled

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    from tis.judges import JUDGES

    JUDGES.entry(args.judge.partition(":")[0])  # an unknown name is reported before any file is read
    rows = read_labelled(args.labels, args.prompt_col, args.response_col, args.label_col, limit=args.limit)
    result = run_calibration(build_judge(args.judge), rows)
    print(f"judge {result.judge} on {args.labels}: {result.rows} rows, {result.judged} judged, "
          f"{result.unparsed} unparsed, {result.failed} failed, {result.undecided} without a safety reading")
    print("judge labels: " + ", ".join(f"{k} {v}" for k, v in result.labels.items()))
    for error in result.errors:
        print(f"  failed: {error}")
    if result.agreement is None:
        print("no verdict decided safety: no agreement figures")
        return 1
    print(format_agreement(result.agreement))
    return 0
