"""`tis models`: the model backends and the shipped model profiles."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="model backends and model profiles")
    msub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    ls = msub.add_parser("list", help="the model profiles: thought format, base model, sampling")
    ls.add_argument("--profiles", dest="profile_files", action="append", default=[], metavar="FILE")
    ls.set_defaults(func=list_profiles)
    show = msub.add_parser("show", help="one profile in full")
    show.add_argument("name")
    show.add_argument("--profiles", dest="profile_files", action="append", default=[], metavar="FILE")
    show.set_defaults(func=show_profile)
    be = msub.add_parser("backends", help="the model backends (--model KIND:...)")
    be.set_defaults(func=list_backends)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def list_profiles(args: argparse.Namespace) -> int:
    from rich.table import Table

    from tis.core.console import console
    from tis.reasoning.profiles import load_profiles

    table = Table("profile", "family", "thought", "base", "hf id", "temp", "max tokens")
    for prof in load_profiles(args.profile_files).values():
        table.add_row(prof.name, prof.family, prof.format.name, prof.base or "-", prof.hf_id or "-",
                      f"{prof.temperature:g}", str(prof.max_tokens))
    console.print(table)
    return 0


def show_profile(args: argparse.Namespace) -> int:
    from tis.reasoning.profiles import get_profile

    print(get_profile(args.name, args.profile_files).model_dump_json(indent=2))
    return 0


def list_backends(args: argparse.Namespace) -> int:
    from tis.models import MODELS

    for entry in MODELS.entries():
        print(f"{entry.name:8} {entry.summary}")
    return 0
