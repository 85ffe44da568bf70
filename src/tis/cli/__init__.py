"""The `tis` command. Only the standard library and tis' light modules load at start-up.

One module per command group here, each with `add_commands(subparsers)`; parsers set
`func(args) -> int`. Heavy work is imported inside the command functions."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tis import __version__

# sub-command modules under tis.cli, each with add_commands(subparsers)
COMMAND_MODULES = ("eval", "benchmarks", "judges", "models", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tis",
        description="Think in Safety: evaluate multimodal reasoning models on safety benchmarks, judging the "
                    "thought and the answer separately.",
    )
    parser.add_argument("--version", action="version", version=f"tis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"tis.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tis.cli.{name}":
                raise
            continue
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tis.core.errors import TisError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TisError as exc:
        print(f"tis: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = None
        return 0
    except KeyboardInterrupt:
        print("tis: interrupted; everything finished so far is stored: re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
