"""`tis judges`: list the judges, train the offline judge, measure a judge against human labels."""

from __future__ import annotations

import argparse
import sys

from tis.cli import group_help


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judges", help="list, train and calibrate judges",
                       description="List the registered judges, train the offline judge from human labels, "
                                   "or measure a judge's agreement with human labels.")
    jsub = p.add_subparsers(dest="judges_command", metavar="SUBCOMMAND")
    p.set_defaults(func=group_help(p))

    lp = jsub.add_parser("list", help="the registered judges with summaries",
                         description="One row per judge (--judge NAME). Piped: tab-separated rows without a "
                                     "header; --json: every field.")
    from tis.cli.listing import add_listing_flags

    add_listing_flags(lp)
    lp.set_defaults(func=list_judges)

    tp = jsub.add_parser("train", help="train the offline judge from labelled files",
                         description="Train the offline harm judge (MiniLM embeddings + reader's cues + logistic "
                                     "regression) on the fitting rows of a fixed hash split of each labelled file "
                                     "(columns question, answer, label; 1 = harmful), choose on the validation rows, "
                                     "and report agreement on the test rows of each set and across sets. A file in "
                                     "XSTest's layout is read for harm: completions of its safe prompts and refusals "
                                     "of its unsafe ones are not harmful; a set with one label throughout is an "
                                     "anchor (a quarter of a set's weight, no part in the choices).")
    tp.add_argument("--data", required=True, action="append", metavar="FILE",
                    help="labelled file (repeat for several sets), e.g. jailjudge_mini.csv")
    tp.add_argument("--out", metavar="PATH", help="weights file to write [the shipped offline_judge.npz]")
    tp.add_argument("--encoding", default="utf-8-sig", metavar="NAME", help="text encoding of the files [utf-8-sig]")
    tp.add_argument("--with-request", action="store_true",
                    help="also try the request's embedding (and its product with the response's) as features")
    tp.set_defaults(func=train)

    rp = jsub.add_parser("train-refusal", help="train the refusal judge from XSTest-style completions",
                         description="Fit the refusal judge's cue weights on completions labelled by people "
                                     "(XSTest layout: completion, final_label, model; full and partial refusals "
                                     "are refusals), choosing its settings by training on one model and testing "
                                     "on the others.")
    rp.add_argument("--data", required=True, metavar="CSV", help="e.g. xstest_dev.csv")
    rp.add_argument("--out", metavar="PATH", help="model file to write [the shipped refusal_model.json]")
    rp.add_argument("--encoding", default="utf-8-sig", metavar="NAME", help="text encoding of the file [utf-8-sig]")
    rp.set_defaults(func=train_refusal)

    vp = jsub.add_parser("thoughts", help="measure the offline judge's thought reading on labelled thoughts",
                         description="Build labelled thoughts (TiS thoughts: safe; harmful responses of the "
                                     "labelled sets' test rows inside a reasoning frame: unsafe) and print the "
                                     "false-alarm rate and the recall of the offline judge's thought reading, "
                                     "per part (development / test).")
    vp.add_argument("--tis", required=True, metavar="JSON", help="TiS records (sharegpt JSON)")
    vp.add_argument("--data", required=True, action="append", metavar="FILE", help="labelled file (repeatable)")
    vp.add_argument("--per-set", type=int, default=120, metavar="N",
                    help="harmful and safe test rows per set to frame [120]")
    vp.add_argument("--weights", metavar="PATH", help="offline judge weights [shipped]")
    vp.add_argument("--encoding", default="utf-8-sig", metavar="NAME", help="text encoding of the labelled files")
    vp.set_defaults(func=thoughts)

    cp = jsub.add_parser("calibrate", help="a judge's agreement with human labels",
                         description="Run a judge on each labelled response (target: answer) and print accuracy "
                                     "(with a 95% Wilson interval), precision, recall, F1, Cohen's kappa and the "
                                     "confusion matrix. Label 1 = harmful; a verdict read as unsafe (for the "
                                     "refusal judge: complied) predicts harmful. Unparsed and failed verdicts "
                                     "are counted and shown, never folded into the figures.")
    cp.add_argument("--judge", required=True, action="append", metavar="NAME",
                    help="a judge (tis judges list), e.g. refusal, offline; repeat for a judge x set table")
    cp.add_argument("--labels", required=True, action="append", metavar="FILE",
                    help="labels file: .csv, .json or .jsonl; repeat for a judge x set table")
    cp.add_argument("--encoding", default="utf-8-sig", metavar="NAME",
                    help="text encoding of the labels files [utf-8-sig: UTF-8 with or without a BOM]")
    cp.add_argument("--rows", choices=("all", "test"), default="all",
                    help="all rows, or only the test rows of the offline judge's fixed split (rows it never "
                         "saw when it was trained on that file) [all]")
    cp.add_argument("--xstest", choices=("refusal", "harm"), default="refusal",
                    help="how a file in XSTest's layout is read: refusal (1 = full compliance, people's labels; "
                         "for refusal judges) or harm (completions of its safe prompts and full refusals of its "
                         "unsafe ones, all not harmful; the rest left out; for harm judges) [refusal]")
    cp.add_argument("--prompt-col", default="question", metavar="COL", help="request column [question]")
    cp.add_argument("--response-col", default="answer", metavar="COL", help="response column [answer]")
    cp.add_argument("--label-col", default="label", metavar="COL", help="label column, 1 = harmful [label]")
    cp.add_argument("--limit", type=int, metavar="N", help="only the first N rows")
    cp.set_defaults(func=calibrate)


def list_judges(args: argparse.Namespace) -> int:
    from tis.cli.listing import print_registry
    from tis.judges import JUDGES

    return print_registry(args, JUDGES, "judge")


def train(args: argparse.Namespace) -> int:
    from tis.judges.agreement import format_kappa
    from tis.judges.offline import CANDIDATE_FEATURES, WITH_REQUEST, train_offline_judge

    report = train_offline_judge(args.data, args.out, encoding=args.encoding,
                                 candidates=WITH_REQUEST if args.with_request else CANDIDATE_FEATURES,
                                 progress=lambda msg: print(msg, file=sys.stderr))
    print(f"wrote {report.out_path}")
    print(f"chosen on the validation rows: features {'+'.join(report.features)}, {report.head} head with L2 "
          f"{report.lam}, threshold {report.threshold:.2f}")
    for s in report.sets:
        parts = "; ".join(f"{k} {v['harmful'] + v['not_harmful']} (harmful {v['harmful']}, "
                          f"not harmful {v['not_harmful']})" for k, v in s.counts.items())
        a = s.test
        print(f"{s.name}: {s.rows} rows; {parts}" + ("; an anchor set (one label)" if s.anchor else ""))
        if s.anchor:
            c = a.confusion
            print(f"  test: {c.fp + c.fn} of {a.n} flagged against their label ({1 - a.accuracy:.3f}; accuracy "
                  f"95% Wilson {a.accuracy_low:.3f}-{a.accuracy_high:.3f})")
            continue
        print(f"  test: accuracy {a.accuracy:.3f} (95% Wilson {a.accuracy_low:.3f}-{a.accuracy_high:.3f}), "
              f"F1 {a.f1:.3f}, kappa {format_kappa(a.kappa)}, precision {a.precision:.3f}, recall {a.recall:.3f}")
    if len(report.sets) > 1:
        print("cross-set matrix (accuracy on each set's test rows; rows: trained on):")
        names = [s.name for s in report.sets]
        print("  " + " | ".join(["train \\ test", *names]))
        for source in ["all", *(s.name for s in report.sets if not s.anchor)]:
            cells = {c["test"]: c for c in report.cross_set if c["train"] == source}
            print("  " + " | ".join([source, *(f"{cells[n]['accuracy']:.3f}" for n in names)]))
    if report.non_commercial:
        print("note: a set it was trained on is for non-commercial use only (CC BY-NC 4.0): so are these weights")
    return 0


def train_refusal(args: argparse.Namespace) -> int:
    from tis.judges.refusal import train_refusal_judge

    model = train_refusal_judge(args.data, args.out, encoding=args.encoding,
                                progress=lambda msg: print(msg, file=sys.stderr))
    print(f"chosen by training on one model and testing on the others: lam {model.meta['lam']}, "
          f"threshold {model.threshold:.2f}")
    for c in model.meta["cross_model"]:
        print(f"train on {c['train']}, test on {c['test']}: accuracy {c['learned']['accuracy']:.3f} "
              f"(phrase list {c['phrases']['accuracy']:.3f})")
    return 0


def thoughts(args: argparse.Namespace) -> int:
    from tis.judges.thought_validation import format_thought_report, validate_thoughts

    report = validate_thoughts(args.tis, args.data, weights=args.weights, per_set=args.per_set,
                               encoding=args.encoding, progress=lambda msg: print(msg, file=sys.stderr))
    print(format_thought_report(report))
    return 0


def calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tis.core.errors import ConfigError
    from tis.judges.agreement import format_agreement
    from tis.judges.calibrate import build_judge, calibrate_rows, format_table, table_row
    from tis.judges.labelled import read_harm_labelled, read_labelled

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    from tis.judges import JUDGES

    for spec in args.judge:
        JUDGES.entry(spec.partition(":")[0])  # an unknown name is reported before any file is read
    read = read_harm_labelled if args.xstest == "harm" else read_labelled
    sets = []
    for path in args.labels:
        rows = read(path, args.prompt_col, args.response_col, args.label_col, encoding=args.encoding)
        if args.rows == "test":
            from tis.judges.offline import is_held_out

            rows = [r for r in rows if is_held_out(r.prompt, r.response)]
        rows = rows[:args.limit] if args.limit is not None else rows
        if not rows:
            raise ConfigError(f"{path}: no rows left to judge (--rows {args.rows})")
        sets.append((path, rows))
    if len(args.judge) > 1 or len(sets) > 1:
        table = []
        for spec in args.judge:
            for path, rows in sets:
                result, truth, predicted = calibrate_rows(build_judge(spec), rows)
                table.append(table_row(result.judge, Path(path).stem, result, truth, predicted))
                for error in result.errors:
                    print(f"  {result.judge} on {path}: failed: {error}")
        xstest = ("1 = full compliance" if args.xstest == "refusal"
                  else "harmless completions only, --xstest harm")
        print(f"rows: {args.rows}; label 1 = harmful (XSTest files: {xstest})")
        print(format_table(table))
        return 0 if all(r.calibration.agreement is not None for r in table) else 1
    (path, rows), spec = sets[0], args.judge[0]
    result, _, _ = calibrate_rows(build_judge(spec), rows)
    print(f"judge {result.judge} on {path}: {result.rows} rows, {result.judged} judged, "
          f"{result.unparsed} unparsed, {result.failed} failed, {result.undecided} without a safety reading")
    print("judge labels: " + ", ".join(f"{k} {v}" for k, v in result.labels.items()))
    for error in result.errors:
        print(f"  failed: {error}")
    if result.agreement is None:
        print("no verdict decided safety: no agreement figures")
        return 1
    print(format_agreement(result.agreement))
    return 0
