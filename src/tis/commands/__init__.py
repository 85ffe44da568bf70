"""Sub-commands of `tis`. Each module has `add_commands(subparsers)`; parsers set `func(args) -> int`.

Modules here import only the standard library and tis' light modules at import time; heavy work
is imported inside the command functions.
"""
