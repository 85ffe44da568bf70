"""The `tis` command. Only the standard library and tis' light modules load at start-up.

One module per command group here, each with `add_commands(subparsers)`; parsers set
`func(args) -> int`. Heavy work is imported inside the command functions. A command module that
fails to import stops `tis` at start-up with one line naming it: a command never goes missing silently."""

from __future__ import annotations

import argparse
import errno
import importlib
import sqlite3
import sys
from collections.abc import Sequence

from tis import __version__

# sub-command modules under tis.cli, each with add_commands(subparsers)
COMMAND_MODULES = ("eval", "benchmarks", "judges", "models", "report", "interop", "data", "train", "study")


class CommandImportError(Exception):
    """A command module that does not import: tis is broken or half installed."""


def _command_module(name: str):
    module_name = name if "." in name else f"tis.cli.{name}"
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # any failure: a missing module, a missing dependency, a bug
        raise CommandImportError(
            f"the command module {module_name} does not import ({type(exc).__name__}: {exc}); "
            "reinstall tis (pip install -e .) or fix that module") from exc


def build_parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `tis` parser with the commands of `modules` (names under tis.cli, or dotted module paths)."""
    parser = argparse.ArgumentParser(
        prog="tis",
        description="Think in Safety: evaluate multimodal reasoning models on safety benchmarks (judging the "
                    "thought and the answer separately), build safety fine-tuning sets whose answers carry a "
                    "safety-oriented thought, and fine-tune on them.",
    )
    parser.add_argument("--version", action="version", version=f"tis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES if modules is None else modules:
        module = _command_module(name)
        if not callable(getattr(module, "add_commands", None)):
            raise CommandImportError(f"the command module {module.__name__} has no add_commands(subparsers)")
        try:
            module.add_commands(sub)
        except Exception as exc:  # e.g. two config fields giving the same flag
            raise CommandImportError(f"the command module {module.__name__} cannot set up its commands "
                                     f"({type(exc).__name__}: {exc})") from exc
    return parser


def group_help(parser: argparse.ArgumentParser):
    """The `func` of a command group run without its sub-command: print the group's help, exit 2."""
    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2
    return show


def os_error_message(exc: OSError) -> str:
    """One line for a failed file operation: the path, what went wrong, and what to do."""
    path = exc.filename if exc.filename is not None else None
    why = exc.strerror or str(exc)
    hints = {errno.EACCES: "check the permissions, or write somewhere else (--out)",
             errno.EPERM: "check the permissions, or write somewhere else (--out)",
             errno.EROFS: "the file system is read-only: write somewhere else (--out)",
             errno.ENOSPC: "free some space or write somewhere else",
             errno.ENOTDIR: "a file is in the way where a folder is expected",
             errno.EEXIST: "a file is in the way where a folder is expected",
             errno.EISDIR: "a folder is in the way where a file is expected"}
    hint = hints.get(exc.errno or 0)
    where = f"{path}: " if path is not None else ""
    if exc.filename2 is not None:
        where = f"{path} -> {exc.filename2}: "
    return f"{where}{why}" + (f" ({hint})" if hint else "")


def main(argv: Sequence[str] | None = None) -> int:
    from tis.core.errors import TisError

    try:
        parser = build_parser()
    except CommandImportError as exc:
        print(f"tis: error: {exc}", file=sys.stderr)
        return 2
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
    except OSError as exc:  # a file that cannot be written or read: the path and why, never a traceback
        print(f"tis: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc) and "unable to open" not in str(exc):
            raise
        print(f"tis: error: the run store cannot be written ({exc}): the run directory is read-only; "
              "copy it somewhere writable", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tis: interrupted; everything finished so far is stored: re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
