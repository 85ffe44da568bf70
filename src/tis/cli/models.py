"""`tis models`: the model backends and the shipped model profiles."""

from __future__ import annotations

import argparse

from tis.cli import group_help
from tis.cli.listing import add_listing_flags, print_listing, print_registry


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="model backends and model profiles")
    msub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    ls = msub.add_parser("list", help="the model profiles: aliases, thought format, base model, sampling",
                         description="One row per model profile; --profile takes the name or an alias. Piped: "
                                     "tab-separated rows without a header; --json: every field.")
    ls.add_argument("--profiles", dest="profile_files", action="append", default=[], metavar="FILE",
                    help="a TOML file of extra or changed model profiles; repeatable")
    add_listing_flags(ls)
    ls.set_defaults(func=list_profiles)
    show = msub.add_parser("show", help="one profile in full")
    show.add_argument("name", help="a profile's name, alias or Hugging Face id")
    show.add_argument("--profiles", dest="profile_files", action="append", default=[], metavar="FILE",
                      help="a TOML file of extra or changed model profiles; repeatable")
    show.set_defaults(func=show_profile)
    be = msub.add_parser("backends", help="the model backends (--model KIND:...)")
    add_listing_flags(be)
    be.set_defaults(func=list_backends)
    p.set_defaults(func=group_help(p))


def list_profiles(args: argparse.Namespace) -> int:
    from tis.reasoning.profiles import load_profiles

    profiles = list(load_profiles(args.profile_files).values())
    headers = ("profile", "aliases", "thought", "base", "family", "temp", "max tokens", "hf id")
    rows = [(p.name, list(p.aliases), p.format.name, p.base, p.family, f"{p.temperature:g}", p.max_tokens, p.hf_id)
            for p in profiles]
    records = [{**p.model_dump(mode="json", exclude={"thought_format", "example"}), "thought_format": p.format.name,
                "reasoning": p.reasoning} for p in profiles]
    return print_listing(args, headers, rows, records)


def show_profile(args: argparse.Namespace) -> int:
    from tis.reasoning.profiles import get_profile

    print(get_profile(args.name, args.profile_files).model_dump_json(indent=2))
    return 0


def list_backends(args: argparse.Namespace) -> int:
    from tis.models import MODELS

    return print_registry(args, MODELS, "backend")
